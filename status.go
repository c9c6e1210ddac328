package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"gwlock/internal/telemetry"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// report is what status says about a lock.
type report struct {
	Lock  string `json:"lock"`
	State string `json:"state"` // running, restarting, starting, stopped, orphaned, dead, not-running, unknown
	// Reason is why a dead owner's file may be reclaimed.
	Reason       string `json:"reason,omitempty"`
	KernelLocked bool   `json:"kernelLocked"`
	// The launcher (the payload's pid) and the gateway it recorded, each
	// judged alive or not on this host; absent where nothing can be said.
	LauncherPID   int64 `json:"launcherPid,omitempty"`
	LauncherAlive *bool `json:"launcherAlive,omitempty"`
	// LauncherStopped: the live launcher is stopped by a signal.
	LauncherStopped bool  `json:"launcherStopped,omitempty"`
	GatewayPID      int   `json:"gatewayPid,omitempty"`
	GatewayAlive    *bool `json:"gatewayAlive,omitempty"`
	// Holders are the processes that share the held lock (Linux), the
	// gateway's descendants when its launcher is gone.
	Holders       []int         `json:"holders,omitempty"`
	PortListening *bool         `json:"portListening,omitempty"`
	Owner         *ownerPayload `json:"owner,omitempty"`
	Error         string        `json:"error,omitempty"`
	// UnknownReason is, for state unknown, the fact that could not be read.
	UnknownReason string `json:"unknownReason,omitempty"`
}

// inspection is one look at a lock file: what was read, and the judgement.
type inspection struct {
	raw  []byte
	id   fileID
	v    verdict
	held bool // someone else holds the kernel lock
}

// inspectLock judges the lock file at path like an acquirer would, without
// taking it: a free kernel lock is dropped the moment the payload is read, so
// a port probe or a suspended status never keeps a dead owner's lock from the
// starters that would recover it.
//
// It opens the lock's directory through the same checked descriptor as run
// (t.d, which the caller closes): nothing is walked by path after the check.
func inspectLock(c *config, t *lockTarget) (report, *inspection, error) {
	r := report{Lock: t.path}
	d, err := openLockDir(t.dir, t.explicit, false, nil)
	if errors.Is(err, fs.ErrNotExist) {
		r.State = "not-running"
		return r, nil, nil
	}
	if err != nil {
		return r, nil, err
	}
	t.d = d
	f, err := openExisting(d, filepath.Base(t.path))
	if errors.Is(err, fs.ErrNotExist) {
		r.State = "not-running"
		return r, nil, nil
	}
	if err != nil {
		return r, nil, err
	}
	got, err := f.tryLock()
	var e evidence
	if err == nil {
		e, err = lookAt(f, got)
	}
	f.close()
	if err != nil {
		return r, nil, err
	}
	facts := hostProbe{probeHost: c.host}
	in := &inspection{raw: e.raw, id: e.file, held: e.lock == kernelHeld, v: judge(e, c.stale, facts)}
	r.KernelLocked = in.held
	r.Owner, _ = parsePayload(in.raw)
	tree := r.describeOwner(facts, in)
	r.UnknownReason = cmp.Or(r.UnknownReason, in.v.unknownReason)
	port := c.port
	if port == 0 && r.Owner != nil {
		port = r.Owner.Port
	}
	if port > 0 {
		l := portListening(c.host, port, probeTimeout)
		r.PortListening = &l
	}
	r.Reason, r.State = in.v.reason, stateOf(in.v, r.Owner, tree, r.PortListening != nil && *r.PortListening)
	if r.State != "unknown" {
		r.UnknownReason = ""
	}
	return r, in, nil
}

// stateOf names a judged owner's state for status. running is said only
// when a process of the gateway's tree is known to live, or, for a tree
// out of sight, when the port listens: a live launcher whose tree is gone is stopped (a signal stopped
// the launcher: nothing runs until it is continued, backoff or not),
// restarting (a backoff, or between an exit and what follows it), or
// starting (no gateway recorded yet); one whose tree cannot be learnt, or
// cannot be seen from here (another host's, another PID namespace's), is
// unknown.
func stateOf(v verdict, owner *ownerPayload, tree treeState, listening bool) string {
	switch {
	case v.status == ownerAlive:
		return liveState(v, owner, tree, listening)
	case v.status == ownerOrphaned:
		return "orphaned"
	case v.reason != "":
		return "dead"
	}
	return "unknown"
}

// liveState is stateOf for an owner judged alive.
func liveState(v verdict, owner *ownerPayload, tree treeState, listening bool) string {
	switch {
	case tree == treeLives || tree == treeUnseen && listening:
		return "running" // a tree seen alive; one out of sight whose port listens
	case tree == treeUnseen:
		return "unknown"
	case v.stopped && tree == treeGone:
		return "stopped"
	case owner != nil && owner.RestartAt != "":
		return "restarting" // a backoff: no gateway runs until restartAt
	case tree != treeGone:
		return "unknown"
	case owner == nil || owner.ChildPID == 0:
		return "starting"
	}
	return "restarting"
}

// treeState is what status learnt of a live launcher's gateway tree.
type treeState int

const (
	treeNotAsked treeState = iota // the owner is not alive: the verdict speaks
	treeLives
	treeGone
	treeUnknown // a fact about the tree could not be read
	treeUnseen  // the tree runs where this status cannot look
)

// describeOwner fills in who the launcher and the gateway are and whether
// each lives, for an owner of this kernel and PID namespace; another
// host's or namespace's pids prove nothing. It returns what it learnt of
// a live owner's tree.
func (r *report) describeOwner(facts hostFacts, in *inspection) treeState {
	p := r.Owner
	if p == nil {
		if in.v.status == ownerAlive {
			return treeUnseen // no payload names a tree: only the port speaks
		}
		return treeNotAsked
	}
	// The token names the holding to the gateway's tree alone: a report
	// never shows it, to anyone.
	shown := *p
	shown.Token = ""
	r.Owner = &shown
	if where, err := originOf(p, facts); where != originHere || err != nil {
		return r.describeUnseen(p, where, err, facts, in)
	}
	r.LauncherPID = p.PID
	if st := in.v.launcher; st == ownerAlive || st == ownerDead {
		alive := st == ownerAlive
		r.LauncherAlive = &alive
		r.LauncherStopped = alive && in.v.stopped
	}
	// The gateway named is the live process of its tree if one is left (a
	// daemon, once the main process exited; a process found by its token
	// when the launcher died before recording any), else the main process.
	// For a judged orphan the verdict has looked already: the process table
	// is not read twice.
	tree := treeNotAsked
	gw, alive := in.v.gatewayPID, in.v.gatewayPID > 0
	if in.v.status == ownerAlive {
		var err error
		gw, alive, err = gatewayAlive(p, facts)
		tree = map[bool]treeState{true: treeLives, false: treeGone}[alive]
		if err != nil && !alive {
			tree, r.UnknownReason = treeUnknown, err.Error()
		}
	}
	if alive || p.ChildPID > 0 {
		if !alive {
			gw = p.ChildPID
		}
		r.GatewayPID, r.GatewayAlive = gw, &alive
		if tree == treeUnknown {
			r.GatewayAlive = nil
		}
	}
	if in.held && in.v.status == ownerOrphaned {
		r.Holders = flockHolders(in.id, filepath.Base(r.Lock))
	}
	return tree
}

// describeUnseen is describeOwner for a payload whose pids name nothing
// here. Its holder may be alive (the kernel lock says someone holds it),
// but that proves no gateway runs: on this kernel its token can still
// find the tree; elsewhere only the port can speak.
func (r *report) describeUnseen(p *ownerPayload, where origin, unread error, facts hostFacts, in *inspection) treeState {
	if in.v.status != ownerAlive {
		return treeNotAsked
	}
	switch {
	case unread != nil:
		r.UnknownReason = unread.Error()
		return treeUnseen
	case where != originOtherNS:
		r.UnknownReason = "the lock was written on another host (hostname " + strconv.Quote(p.Hostname) + "): its gateway's tree cannot be seen from here"
		return treeUnseen
	}
	gw, err := survivorProcess(p, nil, facts)
	switch {
	case gw > 0:
		alive := true
		r.GatewayPID, r.GatewayAlive = gw, &alive
		return treeLives
	case err != nil:
		r.UnknownReason = err.Error()
		return treeUnknown
	}
	r.UnknownReason = "the lock was written in another PID namespace (" + strconv.Quote(p.PIDNS) + ") and no process carrying its token can be seen from this one"
	return treeUnseen
}

// statusOf prints the report on the lock t and returns the LSB code.
func statusOf(c *config, t lockTarget, stdout, stderr io.Writer, asJSON bool) int {
	r, _, err := inspectLock(c, &t)
	t.d.close()
	code := map[string]int{"running": statusRunning, "restarting": statusRunning, "starting": statusRunning,
		"orphaned": statusRunning, "dead": statusDeadFile, "stopped": statusNotRunning, "not-running": statusNotRunning}[r.State]
	if err != nil {
		r.State, r.Error, code = "unknown", err.Error(), statusUnknown
		fail(stderr, err)
	} else if r.State == "unknown" {
		code = statusUnknown
	}
	if asJSON {
		b, _ := json.Marshal(r.forJSON())
		fmt.Fprintf(stdout, "%s\n", b)
		return code
	}
	fmt.Fprintln(stdout, r.line())
	return code
}

// line is the text form of a report: logfmt, one line.
func (r *report) line() string {
	var b strings.Builder
	// Values gwlock does not choose are quoted as in the event lines: a
	// path with a newline or a space must not forge a line or a key.
	fmt.Fprintf(&b, "lock=%s state=%s", telemetry.Value(r.Lock), telemetry.Value(r.State))
	if r.Reason != "" {
		b.WriteString(" reason=" + telemetry.Value(r.Reason))
	}
	if r.Owner != nil {
		fmt.Fprintf(&b, " pid=%d", r.Owner.PID)
		if r.LauncherStopped {
			b.WriteString(" launcher=stopped")
		} else if r.LauncherAlive != nil {
			b.WriteString(" launcher=" + aliveWord(*r.LauncherAlive))
		}
		if r.Owner.ChildPID > 0 {
			fmt.Fprintf(&b, " child_pid=%d", r.Owner.ChildPID)
		}
		if r.GatewayPID > 0 && r.GatewayPID != r.Owner.ChildPID {
			// The live process of the tree is not the main one (a daemon).
			fmt.Fprintf(&b, " gateway_pid=%d", r.GatewayPID)
		}
		if r.GatewayAlive != nil {
			b.WriteString(" gateway=" + aliveWord(*r.GatewayAlive))
		}
		if len(r.Holders) > 0 {
			b.WriteString(" holders=" + pidList(r.Holders))
		}
		if r.Owner.Port > 0 {
			fmt.Fprintf(&b, " port=%d", r.Owner.Port)
		}
		if r.Owner.LastExit != nil {
			fmt.Fprintf(&b, " last_exit=%d", *r.Owner.LastExit)
		}
		if r.Owner.RestartAt != "" {
			b.WriteString(" restart_at=" + telemetry.Value(r.Owner.RestartAt))
		}
	}
	if r.PortListening != nil {
		fmt.Fprintf(&b, " port_listening=%t", *r.PortListening)
	}
	if r.UnknownReason != "" {
		b.WriteString(" unknown_reason=" + strconv.Quote(r.UnknownReason))
	}
	return b.String()
}

// forJSON is r as status --json prints it: every string gwlock does not
// choose as jsonText writes it. json.Marshal alone would print a bidi
// override as it is and every byte that is not UTF-8 as U+FFFD, so two
// different paths could print the same.
func (r report) forJSON() report {
	r.Lock, r.Error, r.UnknownReason = jsonText(r.Lock), jsonText(r.Error), jsonText(r.UnknownReason)
	if r.Owner == nil {
		return r
	}
	o := *r.Owner
	if telemetry.Printable(o.ConfigPath) != o.ConfigPath {
		o.ConfigPath = jsonText(o.ConfigPath) // an older writer's, as it wrote it
	}
	for _, s := range []*string{&o.CreatedAt, &o.BootID, &o.Hostname, &o.Version, &o.RestartAt, &o.PIDNS, &o.Token} {
		*s = jsonText(*s)
	}
	o.StartTime, o.ChildStartTime = jsonStart(o.StartTime), jsonStart(o.ChildStartTime)
	o.Descendants = slices.Clone(o.Descendants)
	for i := range o.Descendants {
		o.Descendants[i].StartTime = jsonStart(o.Descendants[i].StartTime)
	}
	r.Owner = &o
	return r
}

// jsonText is s as status --json prints it: as it is when it is printable
// UTF-8 (telemetry.Printable leaves it alone) and does not begin with '"';
// else Go-quoted (strconv.Quote: "\u202e", "\xff"), so a reader tells
// every string from every other: one that begins with '"' is unquoted with
// Go's rules, any other is the text itself.
func jsonText(s string) string {
	if telemetry.Printable(s) == s && !strings.HasPrefix(s, `"`) {
		return s
	}
	return strconv.Quote(s)
}

// jsonStart is a recorded start time as status --json prints it: a number
// as it is, a string as jsonText writes it.
func jsonStart(raw json.RawMessage) json.RawMessage {
	st, ok := startTimeText(raw)
	if !ok || !bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`"`)) {
		return raw
	}
	b, _ := json.Marshal(jsonText(st))
	return b
}

func aliveWord(alive bool) string {
	if alive {
		return "alive"
	}
	return "dead"
}

// unlockOf removes a lock file whose owner is provably gone. The judgement
// is made without holding the file's kernel lock (it may probe a port); the
// removal then takes the kernel lock again and goes ahead only if the file
// and its payload are exactly what was judged.
func unlockOf(c *config, t lockTarget, log *telemetry.Logger, stderr io.Writer) int {
	r, in, err := inspectLock(c, &t)
	defer t.d.close()
	if err != nil {
		return fail(stderr, err)
	}
	if in == nil {
		printLine(stderr, "gwlock: unlock %s: nothing to remove, no lock file", t.path)
		return exitOK
	}
	// Only a provably gone owner: a stale-unknown file is left to run's rules.
	if r.State != "dead" || r.Reason == reasonStaleUnknown {
		why := "its owner cannot be proven gone"
		if in.v.status.established() {
			why = "it is " + holderOf(in.v)
		} else if in.v.unknownReason != "" {
			why += ": " + in.v.unknownReason
		}
		printLine(stderr, "gwlock: unlock %s: refused, %s (hint: gwlock status --lock %s shows the owner)", t.path, why, t.path)
		return exitFailure
	}
	base := filepath.Base(t.path)
	f, err := openExisting(t.d, base)
	if errors.Is(err, fs.ErrNotExist) {
		printLine(stderr, "gwlock: unlock %s: nothing to remove, someone else removed it meanwhile", t.path)
		return exitOK
	}
	if err != nil {
		return fail(stderr, err)
	}
	got, err := f.tryLock()
	raw, _, rerr := f.readPayload()
	if err != nil || rerr != nil || (f.kernel && !got) || f.id() != in.id || !bytes.Equal(raw, in.raw) {
		f.close()
		printLine(stderr, "gwlock: unlock %s: refused, the lock changed while it was judged (hint: run gwlock unlock again)", t.path)
		return exitFailure
	}
	removed, err := reclaim(f, t.d, base)
	if err != nil {
		return fail(stderr, err)
	}
	if !removed {
		printLine(stderr, "gwlock: unlock %s: nothing to remove, the path names another file now", t.path)
		return exitOK
	}
	pid := int64(0)
	if r.Owner != nil {
		pid = r.Owner.PID
	}
	// The telemetry line is unlock's one line: what it removed and why.
	log.Warn("stale-lock-recovered", "lock", t.path, "owner_pid", pid, "reason", r.Reason, "waited_ms", 0, "attempt", 1)
	return exitOK
}
