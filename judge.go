package main

import (
	"errors"
	"fmt"
	"gwlock/internal/proc"
	"log/slog"
	"slices"
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
	// stopped: the live launcher is stopped by a signal and runs nothing.
	stopped bool
	// unknownReason is, for an unknown owner, the fact that could not be
	// read (the unknown_reason of contention lines and status).
	unknownReason string
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
// known makes the owner unknown, and the verdict says why (unknownReason).
// The positive facts are a free kernel lock on a file written on this
// kernel in our PID namespace (originOf: the boot id decides, whatever the
// hostname says; the hostname only where a boot id is unknown) and no live
// process of its recorded tree; another boot id with our hostname; a launcher pid the kernel says is absent, or present
// with another start time (reused), with no live process of its recorded
// tree. "No live process of the tree" is itself a fact to learn: every
// recorded process answered absent or reused, its group answered empty,
// and the token search read every process it had to. A fact that could not
// be read (too many open files, no memory, permission denied, a /proc
// hidden by hidepid or missing in a chroot, a malformed answer) proves
// nothing either way: the owner is unknown, never dead, and such an owner
// is never reclaimed, not even by age; only a listening port can still
// prove it alive. A fact this OS does not offer at all (the token search
// off Linux) is not a failure: the judgement does without it, as the
// contract's limits say. An owner unknown for want of facts that a
// payload cannot give (another host's, an unparsable file) becomes
// reclaimable only by age (--stale) with its port silent.
//
// A kernel lock held by someone else proves a holder alive: the launcher,
// or its gateway's tree that inherited the descriptor (orphaned). A free
// port never proves death (the owner may be booting); a listening one can
// prove life. A pid from another host or PID namespace, or outside
// 1..2^31-1, proves nothing and is never passed to kill.
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
	where, unread := originOf(p, h)
	if unread != nil {
		v.unknownReason = unread.Error()
		return staleRule(v, e.age, stale, h)
	}
	var launcherReason string
	if where == originHere {
		var launcherUnread error
		v.launcher, launcherReason, launcherUnread = judgeLauncher(p, h)
		if v.launcher == ownerUnknown && launcherUnread != nil {
			v.unknownReason = launcherUnread.Error()
		}
	}
	if e.lock == kernelHeld {
		return judgeHeld(p, v, where, e.file, h)
	}
	return judgeUnheld(p, v, where, launcherReason, e, stale, h)
}

// judgeUnheld judges the owner of a file whose kernel lock we hold or the
// filesystem lacks. A free kernel lock proves the launcher gone only for a
// payload written on this kernel: on a shared filesystem whose locks are
// local (NFS local_lock, some FUSE mounts) another host's owner holds
// nothing we can see. A launcher that is gone while its recorded gateway
// lives is an orphaned owner, never a dead one.
func judgeUnheld(p *ownerPayload, v verdict, where origin, launcherReason string, e evidence, stale time.Duration, h hostFacts) verdict {
	switch where {
	case originElsewhere:
		return staleRule(v, e.age, stale, h)
	case originEarlyBoot:
		v.status, v.reason = ownerDead, reasonHostRebooted
		return v
	case originOtherNS:
		// Written in another PID namespace of this kernel (a container
		// sharing the lock dir): its pids prove nothing here, only its
		// token can find its gateway; else it is judged like a foreign host's.
		gw, err := survivorProcess(p, nil, h)
		switch {
		case gw > 0:
			v.status, v.gatewayPID = ownerOrphaned, gw
			return v
		case err != nil:
			v.unknownReason = err.Error()
		}
		return staleRule(v, e.age, stale, h)
	}
	if p.Flock && e.lock == kernelFree && namesHost(p) {
		// The launcher is gone; so is the gateway unless it closed the
		// inherited descriptor (daemons that close every file do) and
		// outlived its launcher: then it still runs, and keeps the lock.
		v.status, v.reason, v.unknownReason = ownerDead, reasonOwnerDead, ""
	} else {
		v.status, v.reason = v.launcher, launcherReason
	}
	if v.status == ownerDead {
		gw, alive, err := gatewayAlive(p, h)
		switch {
		case alive:
			v.status, v.reason, v.gatewayPID = ownerOrphaned, "", gw
		case err != nil:
			v.status, v.reason, v.unknownReason = ownerUnknown, "", err.Error()
		}
	}
	if v.status == ownerUnknown {
		return staleRule(v, e.age, stale, h)
	}
	return v
}

// origin is where a payload was written, as far as this judge can tell.
type origin int

const (
	originHere      origin = iota // this kernel and PID namespace: its pids name processes here
	originOtherNS                 // this kernel, another PID namespace: its pids name nothing here
	originEarlyBoot               // this host before it rebooted: nothing of it runs
	originElsewhere               // another host: nothing of it can be seen from here
)

// originOf says where the payload was written. The boot id names the
// kernel: a payload carrying ours was written on this kernel whatever
// hostname it carries (a UTS namespace, a renamed host), and its token and
// pids are valid here (its pids in its own PID namespace only). One
// carrying another boot id was written before a reboot when its hostname
// is ours, else on another host. Only when either side's boot id is
// unknown (an OS without one, a payload of an older writer) does the
// hostname alone say. It fails when the fact that decides cannot be
// learnt: then nobody can say whose pids the payload names.
func originOf(p *ownerPayload, h hostFacts) (origin, error) {
	boot := h.bootID()
	sameKernel := p.BootID != "" && boot != "" && p.BootID == boot
	if !sameKernel && p.Hostname != "" {
		host := h.hostname()
		switch {
		case host == "":
			return originHere, errors.New("cannot learn this host's name")
		case p.Hostname != host:
			return originElsewhere, nil
		}
	}
	if p.BootID != "" && boot != "" && !sameKernel {
		return originEarlyBoot, nil
	}
	if p.PIDNS != "" && h.pidNS() == "" {
		return originHere, errors.New("cannot learn this process's PID namespace (/proc/self/ns/pid)")
	}
	if p.PIDNS != "" && p.PIDNS != h.pidNS() {
		return originOtherNS, nil
	}
	return originHere, nil
}

// namesHost says the payload names the host it was written on (a hostname
// or a boot id): a free kernel lock proves its launcher gone only then.
func namesHost(p *ownerPayload) bool { return p.Hostname != "" || p.BootID != "" }

// judgeLauncher judges the payload's pid, the launcher, by the process table
// alone: alive, dead with a reason, or unknown, with the fact that could
// not be read when there was one.
func judgeLauncher(p *ownerPayload, h hostFacts) (ownerStatus, string, error) {
	if p.PID <= 0 || p.PID > maxPID {
		return ownerUnknown, "", nil
	}
	recorded, haveRecorded := startTimeText(p.StartTime)
	if int(p.PID) == h.selfPID() {
		// We are judging, so a file naming our own PID was written by an
		// earlier process with the same PID (PID 1 in a fresh container)
		// unless its start time is ours.
		if haveRecorded && recorded == h.selfStartTime() {
			return ownerAlive, "", nil
		}
		return ownerDead, reasonPIDReused, nil
	}
	st, err := h.probe(int(p.PID))
	switch {
	case st == pidAbsent:
		return ownerDead, reasonOwnerDead, nil
	case st == pidUnknown, err != nil:
		// Present with an error: the pid exists, but whether it exited
		// (a zombie) could not be read.
		return ownerUnknown, "", err
	case !haveRecorded:
		return ownerAlive, "", nil
	}
	now, err := h.startTime(int(p.PID))
	switch {
	case err != nil:
		return ownerUnknown, "", err
	case now != recorded && !startTimesComparable(p, h):
		return ownerUnknown, "", errOtherTimeNS
	case now != recorded:
		return ownerDead, reasonPIDReused, nil
	}
	return ownerAlive, "", nil
}

// startTimesComparable says the start times the payload recorded can be
// compared with what this judge reads: the launcher and the judge are in
// one time namespace, whose boot-time offset every start time carries. A
// payload that names none (an older gwlock's) is taken as written in ours.
func startTimesComparable(p *ownerPayload, h hostFacts) bool {
	return p.TimeNS == "" || p.TimeNS == h.timeNS()
}

// errOtherTimeNS: another start time than recorded proves no reuse when
// the two were read in different time namespaces.
var errOtherTimeNS = errors.New("the launcher ran in another time namespace (timeNs): the start times it recorded cannot be compared with this one's")

// Who counts as the gateway (the one rule, which judge follows): the processes the launcher recorded (pid and
// start time), whatever uid they run as, their process group in the
// launcher's session, and any process that carries the holding's token
// (GWLOCK_LOCK_TOKEN) and runs, by its real uid, as the judge's uid (the
// lock file's owner, the launcher's) or as a uid the launcher saw its
// tree run as (treeUids). The token is known to the launcher's uid (the
// lock file is private to it), to root, and to the gateway's tree; a
// process of any other uid that carries it, non-dumpable or not, is not
// the gateway.
//
// gatewayAlive reports whether the gateway the payload records still runs:
// its main process, a process left in its process group (a child of a
// wrapper script that was not exec'd), or a recorded descendant that left
// the group (a daemon), or that one's group, or a process found by the
// token. Recorded start times are required: without them a reused PID
// would pass for the gateway and keep a dead lock forever. The pid
// returned names a live process of the tree, or the group that lives on.
// Not alive with an error: no process of the tree was found, but some fact
// could not be read, so nobody can say none lives.
func gatewayAlive(p *ownerPayload, h hostFacts) (int, bool, error) {
	var unread error
	var groups []int
	refs := append([]procRef{{PID: p.ChildPID, StartTime: p.ChildStartTime}}, p.Descendants...)
	for _, r := range refs {
		recorded, ok := startTimeText(r.StartTime)
		if r.PID <= 0 || r.PID > maxPID || !ok || r.PID == h.selfPID() {
			continue
		}
		alive, gone, err := recordedAlive(r.PID, recorded, startTimesComparable(p, h), h)
		switch {
		case alive:
			return r.PID, true, nil
		case gone && p.SessionID > 0:
			// The process is gone, but the group it led may live on.
			groups = append(groups, r.PID)
		}
		if unread == nil {
			unread = err
		}
	}
	// Nothing recorded lives, but the record can lag the tree: a launcher
	// killed between starting the gateway and writing its pid, or before it
	// saw a daemon that left the group within its first 100 ms. Every
	// process of the tree inherited the payload's token in its environment.
	// The groups and the token are looked for in one pass over the table.
	gw, err := survivorProcess(p, groups, h)
	if gw > 0 {
		return gw, true, nil
	}
	if unread == nil {
		unread = err
	}
	return 0, false, unread
}

// recordedAlive says whether the recorded process pid, started at
// recorded, lives, or is gone (absent; a pid reused by another process is
// not gone: the kernel reuses a number only once the process and any group
// it led are gone); an error when that could not be learnt, or when
// another start time proves nothing because the two were read in different
// time namespaces (comparable false).
func recordedAlive(pid int, recorded string, comparable bool, h hostFacts) (alive, gone bool, err error) {
	st, err := h.probe(pid)
	switch {
	case st == pidAbsent:
		return false, true, nil
	case st == pidUnknown, err != nil:
		return false, false, err
	}
	now, err := h.startTime(pid)
	switch {
	case err != nil:
		return false, false, err
	case now != recorded && !comparable:
		return false, false, errOtherTimeNS
	}
	return now == recorded, false, nil
}

// survivorProcess is a live process of the tree the payload names, 0 when
// none: a process left in one of groups (the launcher's session), or one
// that carries the payload's token and runs as a uid of the tree (see
// judge). An OS without a token search answers for the groups alone: there
// the record speaks.
func survivorProcess(p *ownerPayload, groups []int, h hostFacts) (int, error) {
	q := proc.TreeQuery{Groups: groups, Session: p.SessionID, Token: p.Token}
	if p.Token != "" {
		q.UIDs = treeUIDs(p, h)
		if startTimesComparable(p, h) {
			// Else a process of the tree may read as older than its
			// launcher: none is passed over for its age.
			q.BornAfter, _ = startTimeText(p.StartTime)
		}
	}
	gw, err := h.survivor(q)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		return 0, nil
	case gw == 0 && err == nil && p.Token != "" && p.TreeUIDsOverflow:
		// The search left out uids the tree ran as: none found is no
		// fact. Searching every uid instead would let any user pin the
		// lock with a token a process of the tree leaked to it.
		return 0, errTreeUIDsOverflow
	}
	return gw, err
}

// errTreeUIDsOverflow: the launcher saw its tree run as more uids than a
// payload records, so a process of one it left out may carry the token.
var errTreeUIDsOverflow = errors.New("the gateway's tree ran as more uids than recorded (treeUidsOverflow): a process of an unrecorded uid may carry its token")

// treeUIDs are the uids a process carrying the token may run as to count
// as the gateway's: the judge's own (the lock file's owner, so the
// launcher's) and those the launcher saw its tree run as.
func treeUIDs(p *ownerPayload, h hostFacts) []int {
	uids := []int{h.selfUID()}
	for _, u := range p.TreeUIDs {
		if u >= 0 && !slices.Contains(uids, u) {
			uids = append(uids, u)
		}
	}
	return uids
}

// judgeHeld names whoever keeps the kernel lock of a file we could not
// lock. The kernel says someone holds it; the payload says who should. A
// launcher whose pid or start time could not be read is unknown. A
// live launcher is alive (stopped, if a signal stopped it). A dead
// launcher whose lock lives on through the descriptor its gateway
// inherited is orphaned. A kernel lock taken by someone else on a dead
// launcher's file (a judge or status passing by) whose tree is gone, or
// whose holder or tree cannot be learnt, is unknown: no gateway is proven
// to run.
func judgeHeld(p *ownerPayload, v verdict, where origin, file fileID, h hostFacts) verdict {
	if v.unknownReason != "" {
		return v // the launcher could not be judged: the holder may be anyone
	}
	v.status = ownerAlive
	if where != originHere || v.launcher != ownerDead {
		if v.launcher == ownerAlive {
			v.stopped, _ = h.stopped(int(p.PID)) // said, never judged by
		}
		return v // held here by something; a foreign payload's pid is not ours to probe
	}
	gw, treeLives, treeUnread := gatewayAlive(p, h)
	if treeLives {
		v.status, v.gatewayPID = ownerOrphaned, gw
		return v
	}
	creator, err := h.lockCreator(file)
	switch {
	case err == nil && creator == int(p.PID) && creator > 0:
		// The launcher's own lock, kept by a process that inherited it.
		v.status = ownerOrphaned
	case treeUnread != nil:
		v.status, v.unknownReason = ownerUnknown, treeUnread.Error()
	case err != nil:
		v.status, v.unknownReason = ownerUnknown, "cannot tell who holds the kernel lock: "+err.Error()
	default:
		v.status = ownerUnknown
		v.unknownReason = fmt.Sprintf("the kernel lock is held by pid %d, not by the dead launcher's tree", creator)
	}
	return v
}

// staleRule: an owner that cannot be judged becomes reclaimable only when the
// file is older than --stale (and than the birth grace) and its port is
// silent; one that could not be judged because a fact could not be read
// never does.
func staleRule(v verdict, age, stale time.Duration, h hostFacts) verdict {
	if v.port > 0 && h.listening(v.port) {
		v.status, v.unknownReason = ownerAlive, ""
		return v
	}
	if v.unknownReason != "" {
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

// holderOf is holderText for a verdict: a stopped launcher and the fact an
// unknown owner's judgement lacked are said too.
func holderOf(v verdict) string {
	text := holderText(v.pid, v.status, v.gatewayPID)
	switch {
	case v.stopped:
		text += ", stopped by a signal (it runs nothing until continued)"
	case v.status == ownerUnknown && v.unknownReason != "":
		text += ": " + v.unknownReason
	}
	return text
}

// ownerDetail is the telemetry pair that says more of a judged owner: a
// launcher stopped by a signal (launcher=stopped), or the fact an unknown
// owner's judgement could not read (unknown_reason); an empty Attr, which
// slog's handlers skip, otherwise.
func ownerDetail(v verdict) slog.Attr {
	switch {
	case v.stopped:
		return slog.String("launcher", "stopped")
	case v.status == ownerUnknown && v.unknownReason != "":
		return slog.String("unknown_reason", v.unknownReason)
	}
	return slog.Attr{}
}

// gatewayKey is the gateway_pid telemetry pair of an orphaned owner whose
// gateway is known; an empty Attr, which slog's handlers skip, otherwise.
func gatewayKey(v verdict) slog.Attr {
	if v.gatewayPID <= 0 {
		return slog.Attr{}
	}
	return slog.Int("gateway_pid", v.gatewayPID)
}
