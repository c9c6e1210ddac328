package main

import (
	"fmt"
	"log/slog"
	"time"
)

// ownerStatus is what the judge found of a lock file's owner.
type ownerStatus string

const (
	ownerAlive    ownerStatus = "alive"
	ownerOrphaned ownerStatus = "orphaned" // the launcher is gone, its gateway holds the lock
	ownerDead     ownerStatus = "dead"
	ownerUnknown  ownerStatus = "unknown"
)

// Reasons a lock file may be reclaimed; they appear in stale-lock-recovered.
const (
	reasonOwnerDead    = "owner-dead"
	reasonPIDReused    = "pid-reused"
	reasonHostRebooted = "host-rebooted"
	reasonStaleUnknown = "stale-unknown-owner"
)

// verdict is what the judgement concluded about a lock file's owner.
type verdict struct {
	status     ownerStatus
	reason     string // non-empty exactly when the file may be reclaimed
	pid        int64  // the launcher named in the payload
	gatewayPID int    // for an orphaned owner: its gateway, if that is who lives
	port       int
	// launcher is the launcher's own judgement by the process table (alive,
	// dead or unknown), for a payload whose pids name processes here; ""
	// when they do not or the payload is unreadable.
	launcher ownerStatus
}

// established says a live owner is certain: --if-running ok may stop waiting.
func (s ownerStatus) established() bool {
	return s == ownerAlive || s == ownerOrphaned
}

// kernelLock is what the kernel lock of a lock file said when it was judged.
type kernelLock int

const (
	kernelNone kernelLock = iota // the filesystem has none: the payload alone speaks
	kernelFree                   // we took it: whoever wrote the file holds it no more
	kernelHeld                   // someone else holds it
)

// evidence is one look at a lock file: all the judge is given beside the
// host's facts.
type evidence struct {
	raw  []byte        // the payload as read
	age  time.Duration // since the file's mtime (a holder without kernel locks refreshes it)
	lock kernelLock
	file fileID
}

// lookAt reads the evidence of the open lock file cur; got says we just
// took its kernel lock.
func lookAt(cur *lockFile, got bool) (evidence, error) {
	raw, mtime, err := cur.readPayload()
	if err != nil {
		return evidence{}, err
	}
	e := evidence{raw: raw, age: time.Since(mtime), lock: kernelNone, file: cur.id()}
	switch {
	case got:
		e.lock = kernelFree
	case cur.kernel:
		e.lock = kernelHeld
	}
	return e, nil
}

// judge is the one judgement of a lock file's owner: run's acquisition,
// status, unlock and the reclaim of a file without kernel locks all ask it,
// and a file may be removed only when its verdict has a reason.
//
// The rule: only a positive fact proves an owner dead; anything that is not
// known makes the owner unknown. The positive facts are a free kernel lock
// on a file written on this host (same hostname and boot id) and no live
// process of its recorded tree; another boot id; a launcher pid the kernel
// says is absent, or present with another start time (reused), with no
// live process of its recorded tree. An owner that stays unknown becomes
// reclaimable only by age (--stale) with its port silent.
//
// A kernel lock held by someone else proves a holder alive: the launcher,
// or its gateway's tree that inherited the descriptor (orphaned). A free
// port never proves death (the owner may be booting); a listening one can
// prove life. A pid from another host or PID namespace, or outside
// 1..2^31-1, proves nothing and is never passed to kill.
//
// Where a fact could not be read, hostFacts says so with an error. Not yet
// everywhere does the judgement follow the rule with it: gatewayAlive still
// passes over a recorded process whose state, start time or group it could
// not read, and a token search that failed, as if none of them ran.
func judge(e evidence, stale time.Duration, h hostFacts) verdict {
	p, err := parsePayload(e.raw)
	if err != nil {
		if e.lock == kernelHeld {
			return verdict{status: ownerUnknown}
		}
		// A legacy writer creates the file, then writes: give a file being born time.
		return staleRule(verdict{status: ownerUnknown}, e.age, stale, h)
	}
	v := verdict{status: ownerUnknown, pid: p.PID, port: p.Port}
	var launcherReason string
	if !pidsForeign(p, h) {
		v.launcher, launcherReason = judgeLauncher(p, h)
	}
	if e.lock == kernelHeld {
		return judgeHeld(p, v, e.file, h)
	}
	return judgeUnheld(p, v, launcherReason, e, stale, h)
}

// judgeUnheld judges the owner of a file whose kernel lock we hold or the
// filesystem lacks. A free kernel lock proves the launcher gone only for a
// payload written on this host: on a shared filesystem whose locks are
// local (NFS local_lock, some FUSE mounts) another host's owner holds
// nothing we can see. A launcher that is gone while its recorded gateway
// lives is an orphaned owner, never a dead one.
func judgeUnheld(p *ownerPayload, v verdict, launcherReason string, e evidence, stale time.Duration, h hostFacts) verdict {
	if p.Hostname != "" && p.Hostname != h.hostname() {
		return staleRule(v, e.age, stale, h)
	}
	if boot := h.bootID(); p.BootID != "" && boot != "" && p.BootID != boot {
		v.status, v.reason = ownerDead, reasonHostRebooted
		return v
	}
	if otherPIDNS(p, h) {
		// Written in another PID namespace (a container sharing the lock
		// dir and the hostname): its pids prove nothing here, only its
		// token can find its gateway; else it is judged like a foreign host's.
		if gw, err := h.tagged(p.Token); err == nil && gw > 0 && p.Token != "" {
			v.status, v.gatewayPID = ownerOrphaned, gw
			return v
		}
		return staleRule(v, e.age, stale, h)
	}
	if p.Flock && e.lock == kernelFree && p.Hostname != "" {
		// The launcher is gone; so is the gateway unless it closed the
		// inherited descriptor (daemons that close every file do) and
		// outlived its launcher: then it still runs, and keeps the lock.
		v.status, v.reason = ownerDead, reasonOwnerDead
	} else {
		v.status, v.reason = v.launcher, launcherReason
	}
	if v.status == ownerDead {
		if gw, ok := gatewayAlive(p, h); ok {
			v.status, v.reason, v.gatewayPID = ownerOrphaned, "", gw
		}
	}
	if v.status == ownerUnknown {
		return staleRule(v, e.age, stale, h)
	}
	return v
}

// pidsForeign says the payload's pids name nothing here: it was written on
// another host or in another PID namespace.
func pidsForeign(p *ownerPayload, h hostFacts) bool {
	return (p.Hostname != "" && p.Hostname != h.hostname()) || otherPIDNS(p, h)
}

// otherPIDNS says the payload was written in a PID namespace other than ours.
func otherPIDNS(p *ownerPayload, h hostFacts) bool {
	ns := h.pidNS()
	return p.PIDNS != "" && ns != "" && p.PIDNS != ns
}

// judgeLauncher judges the payload's pid, the launcher, by the process table
// alone: alive, dead with a reason, or unknown.
func judgeLauncher(p *ownerPayload, h hostFacts) (ownerStatus, string) {
	if p.PID <= 0 || p.PID > maxPID {
		return ownerUnknown, ""
	}
	recorded, haveRecorded := startTimeText(p.StartTime)
	if int(p.PID) == h.selfPID() {
		// We are judging, so a file naming our own PID was written by an
		// earlier process with the same PID (PID 1 in a fresh container)
		// unless its start time is ours.
		if haveRecorded && recorded == h.selfStartTime() {
			return ownerAlive, ""
		}
		return ownerDead, reasonPIDReused
	}
	switch st, _ := h.probe(int(p.PID)); st {
	case pidAbsent:
		return ownerDead, reasonOwnerDead
	case pidPresent:
		if haveRecorded {
			if now, err := h.startTime(int(p.PID)); err == nil && now != recorded {
				return ownerDead, reasonPIDReused
			}
		}
		return ownerAlive, ""
	}
	return ownerUnknown, ""
}

// gatewayAlive reports whether the gateway the payload records still runs:
// its main process, a process left in its process group (a child of a
// wrapper script that was not exec'd), or a recorded descendant that left
// the group (a daemon), or that one's group. Recorded start times are
// required: without them a reused PID would pass for the gateway and keep a
// dead lock forever. The pid returned names a live process of the tree, or
// the group that lives on.
func gatewayAlive(p *ownerPayload, h hostFacts) (int, bool) {
	refs := append([]procRef{{PID: p.ChildPID, StartTime: p.ChildStartTime}}, p.Descendants...)
	for _, r := range refs {
		recorded, ok := startTimeText(r.StartTime)
		if r.PID <= 0 || r.PID > maxPID || !ok || r.PID == h.selfPID() {
			continue
		}
		switch st, _ := h.probe(r.PID); st {
		case pidPresent:
			if now, err := h.startTime(r.PID); err == nil && now == recorded {
				return r.PID, true
			}
			// The number was reused, which the kernel does only once the
			// recorded process and any group it led are gone.
		case pidAbsent:
			if alive, _ := h.groupAlive(r.PID, p.SessionID); alive {
				return r.PID, true
			}
		}
	}
	// Nothing recorded lives, but the record can lag the tree: a launcher
	// killed between starting the gateway and writing its pid, or before it
	// saw a daemon that left the group within its first 100 ms. Every
	// process of the tree inherited the payload's token in its environment.
	if p.Token == "" {
		return 0, false
	}
	gw, err := h.tagged(p.Token)
	return gw, err == nil && gw > 0
}

// judgeHeld names whoever keeps the kernel lock of a file we could not
// lock. The kernel says someone holds it; the payload says who should. A
// live launcher is alive. A dead launcher whose lock lives on through the
// descriptor its gateway inherited is orphaned. A kernel lock taken by
// someone else on a dead launcher's file (a judge or status passing by) and
// a payload that names nobody are unknown: no gateway is proven to run.
func judgeHeld(p *ownerPayload, v verdict, file fileID, h hostFacts) verdict {
	v.status = ownerAlive
	if pidsForeign(p, h) || v.launcher != ownerDead {
		return v // held here by something; a foreign payload's pid is not ours to probe
	}
	gw, treeLives := gatewayAlive(p, h)
	if creator, err := h.lockCreator(file); err == nil && creator != int(p.PID) && !treeLives {
		v.status = ownerUnknown
		return v
	}
	v.status, v.gatewayPID = ownerOrphaned, gw
	return v
}

// staleRule: an owner that cannot be judged becomes reclaimable only when the
// file is older than --stale (and than the birth grace) and its port is silent.
func staleRule(v verdict, age, stale time.Duration, h hostFacts) verdict {
	if v.port > 0 && h.listening(v.port) {
		v.status = ownerAlive
		return v
	}
	limit := stale
	if limit < bornGrace {
		limit = bornGrace
	}
	if age >= limit {
		v.reason = reasonStaleUnknown
	}
	return v
}

// holderText says who holds a lock in words that are true for each status:
// an orphaned owner's launcher is named as gone, never as alive.
func holderText(pid int64, status ownerStatus, gatewayPID int) string {
	switch {
	case status == ownerOrphaned && gatewayPID > 0:
		return fmt.Sprintf("held by orphaned gateway pid %d (its launcher pid %d is gone)", gatewayPID, pid)
	case status == ownerOrphaned:
		return fmt.Sprintf("held by the orphaned descendants of launcher pid %d (gone)", pid)
	case pid <= 0:
		return fmt.Sprintf("held by an owner that names no pid (%s)", status)
	}
	return fmt.Sprintf("held by pid %d (%s)", pid, status)
}

// gatewayKey is the gateway_pid telemetry pair of an orphaned owner whose
// gateway is known; an empty Attr, which slog's handlers skip, otherwise.
func gatewayKey(v verdict) slog.Attr {
	if v.gatewayPID <= 0 {
		return slog.Attr{}
	}
	return slog.Int("gateway_pid", v.gatewayPID)
}
