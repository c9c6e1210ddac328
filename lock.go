package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"gwlock/internal/telemetry"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The lock protocol. A lock is a file at a fixed path. Its holder is the process
// whose file is at that path and that holds the kernel lock (flock on POSIX,
// LockFileEx on Windows) on it. The kernel lock is the truth about liveness; the
// JSON payload inside the file is for people and for files written by holders
// that cannot use a kernel lock (legacy writers, filesystems without flock).
//
// Each OS file (lock_posix.go, lock_windows.go) defines the same unexported
// functions. Names (base, name) are single components in a *checkedDir, the
// checked directory: on POSIX it holds the directory open and every call is
// relative to that descriptor (openat, linkat, unlinkat, renameat, fstatat),
// so no path is walked again after the check and a directory swapped for a
// symlink cannot redirect a create, link or delete (Invariant 4). On Windows
// it carries the path.
//
//	openLockDir(path string, explicit, prepare bool, log *telemetry.Logger) (*checkedDir, error)
//	    checks the directory (Invariant 7) and returns it open. prepare (run)
//	    creates a missing default dir and tightens a loose one of ours; without
//	    it (status, unlock) nothing changes and a missing dir is fs.ErrNotExist.
//	    POSIX judges what it finds by the lock dir rules below.
//	(*checkedDir).names() ([]string, error)
//	(*checkedDir).close() error
//	createOwnerFile(d *checkedDir, base string) (*lockFile, error)
//	    a new private file in d, kernel-locked if the filesystem allows, not
//	    yet at the lock path; f.kernel says whether the kernel lock is held.
//	(*lockFile).writePayload(b []byte) error
//	(*lockFile).publish(d *checkedDir, base string) error
//	    places the file at base atomically; fs.ErrExist if a file is there.
//	openLockPath(d *checkedDir, name string) (*lockFile, error)
//	    opens the file name for openExisting, without following a symlink
//	    and without blocking; the OS's error as it is.
//	classifyOpenError(d *checkedDir, name string, err error) error
//	    says what openLockPath's error means: fs.ErrNotExist, a refusal, a
//	    third party's handle (errFileInUse), or a failure.
//	(*lockFile).checkExisting(path string) error
//	    an *unsafeError if the opened file is not a regular file we own;
//	    records its identity.
//	(*lockFile).tryLock() (bool, error)
//	    false with f.kernel cleared where the filesystem has no kernel locks
//	    (NFS without lockd): the lock then rests on the payload and a heartbeat.
//	(*lockFile).waitLock(deadline time.Time, cancel <-chan struct{}) (bool, error)
//	    blocks until the kernel lock is ours, the deadline passes or cancel is
//	    closed; the file must not be used again by the caller when it returns false.
//	(*lockFile).stat() (size int64, mtime time.Time, err error)
//	(*lockFile).readAt(b []byte, off int64) (int, error)   0, nil at the end
//	(*lockFile).namedBy(d *checkedDir, name string) (bool, error)
//	    whether name still names this file (dev, inode); false on ENOENT.
//	(*lockFile).touch() error                 refresh the mtime (heartbeat)
//	(*lockFile).close() error                 drops the kernel lock
//	removeLockPath(d *checkedDir, name string) error
//	reclaimWithoutKernelLock(cur *lockFile, d *checkedDir, base string) (bool, error)
//	defaultLockDir() string
//	processProbe(pid int) pidState
//	processStartTime(pid int) (string, bool)
//	bootID() string
//
// Any of them may fail with an error that matches errFileInUse: a third
// party (an antivirus scanner, an indexer) has the file open for a moment.
// acquire retries such failures within its timeout, release within
// releaseInUseLimit.
//
// What is unspecified: the order in which waiters are served (the kernel's),
// and the file's contents while a legacy writer is creating it.

const (
	maxPayloadWrite = 4 << 10                // payloads we write stay under this
	maxPayloadRead  = 64 << 10               // never read more than this from a lock file
	payloadPad      = 512                    // payloads are padded so an update is one pwrite of the same size
	childFieldsRoom = 96 + maxDescendants*48 // the gateway's pid, start time and descendants fit in this
	bornGrace       = 2 * time.Second
	maxPID          = 1<<31 - 1
)

// unsafeError is a lock directory or lock path that gwlock refuses to touch
// (exit 77): another user's, writable by others, a symlink, not a regular file.
type unsafeError struct {
	What, Path, Why, Hint string
}

func (e *unsafeError) Error() string {
	return fmt.Sprintf("%s %s: %s", e.What, e.Path, e.Why)
}

// refusal is one kind of refusal (exit 77): what is refused, and the hint
// that says what to do instead. Each kind is declared once, below or (where
// only one OS meets it) in its OS file, and every refusal is made by of.
type refusal struct{ what, hint string }

func (r refusal) of(path, why string) error {
	return &unsafeError{What: r.what, Path: path, Why: why, Hint: r.hint}
}

var (
	notRegularLockPath = refusal{"lock path", "remove it or choose another --lock"}
	foreignLockFile    = refusal{"lock file", "another user holds this path; use a lock dir of your own"}
	foreignLockDir     = refusal{"lock dir", "use a directory you own"}
	notDirLockDir      = refusal{"lock dir", "remove it or choose another --lock-dir"}
	looseLockDir       = refusal{"lock dir", "chmod go-w or chmod +t it, or choose another --lock-dir"}
	unrealLockDir      = refusal{"lock dir", "name the real directory with --lock-dir or --lock"} // reached through a link not followed
	squattedLockDir    = refusal{"lock dir", "remove it, or pass --lock-dir naming a directory of your own"}
)

// whyDirNotFile is the refusal of a directory at the lock path.
const whyDirNotFile = "is a directory, not a regular file"

// The lock dir rules. lock_posix.go describes what it finds as a dirEntry
// and never judges it itself; the rules are pure, and tested on every OS.
// Windows applies none of them: it follows no reparse point at all, keeps
// its default dir in the user's profile rather than a shared /tmp, and
// judges a lock dir's owner by foreignOwner (us, Administrators or SYSTEM).

// dirEntry is what the lock dir rules know about one file: what it is, who
// owns it, its permission bits and, for a symlink, its target.
type dirEntry struct {
	path       string // for messages
	kind       string // as in "is a FIFO": kindDir, kindSymlink, "FIFO", "socket", "device", "special file"
	uid        uint32
	mode       uint32 // permission bits (0o7777)
	target     string // a symlink's target, or "(unreadable)"
	targetRead bool
}

const (
	kindDir     = "directory"
	kindSymlink = "symlink"
	modeSticky  = 0o1000 // S_ISVTX: only a file's owner may remove or rename it
)

// maxSymlinks bounds the links followed in one path, as the kernel does (40).
const maxSymlinks = 40

// explicitDirRefusal: a lock dir the user named must be ours or root's, and
// nobody else may write to it unless it is sticky (/tmp).
func explicitDirRefusal(path string, dir dirEntry, me int) error {
	if int(dir.uid) != me && dir.uid != 0 {
		return foreignLockDir.of(path, fmt.Sprintf("is owned by uid %d, neither us (uid %d) nor root", dir.uid, me))
	}
	if dir.mode&0o022 != 0 && dir.mode&modeSticky == 0 {
		return looseLockDir.of(path, fmt.Sprintf("is writable by others (mode %04o) without the sticky bit", dir.mode))
	}
	return nil
}

// defaultDirRefusal: the default dir must be a real directory of ours. Its
// parent, /tmp, is anybody's to write, so anything else there was put there
// by someone else.
func defaultDirRefusal(path string, found dirEntry, me int) error {
	switch {
	case found.kind == kindSymlink:
		return squattedLockDir.of(path, fmt.Sprintf("is a symlink to %s owned by uid %d; the default lock dir must be a real directory", found.target, found.uid))
	case found.kind != kindDir:
		return squattedLockDir.of(path, fmt.Sprintf("is a %s owned by uid %d, not a directory", found.kind, found.uid))
	case int(found.uid) != me:
		return squattedLockDir.of(path, fmt.Sprintf("is owned by uid %d, not by us (uid %d): another user created it", found.uid, me))
	}
	return nil
}

// linkRefusal says why the walk to the lock dir path may not follow link,
// found in dir (nil: dir could not be checked) after followed other links,
// or nil if it may. A symlink is followed only if nobody but root or us can
// have made or changed it: it is owned by root or us and sits in a directory
// owned by root or us that nobody else can write (/var/run -> /run, macOS
// /tmp -> /private/tmp). The refusal says where it points.
func linkRefusal(path string, link dirEntry, dir *dirEntry, followed, me int) error {
	why := ""
	switch {
	case !link.targetRead:
		why = "its target cannot be read"
	case link.uid != 0 && int(link.uid) != me:
		why = "gwlock follows only symlinks owned by root or us"
	case dir == nil:
		why = "its directory cannot be checked"
	case dir.uid != 0 && int(dir.uid) != me:
		why = fmt.Sprintf("its directory %s is owned by uid %d, who could change it", dir.path, dir.uid)
	case dir.mode&0o022 != 0:
		why = fmt.Sprintf("its directory %s can be written by others (mode %04o), who could replace it", dir.path, dir.mode)
	case followed >= maxSymlinks:
		why = fmt.Sprintf("more than %d symlinks", maxSymlinks)
	default:
		return nil
	}
	return unrealLockDir.of(path, fmt.Sprintf("%s a symlink to %s owned by uid %d; %s", whereIs(path, link.path), link.target, link.uid, why))
}

// whereIs starts a refusal met at here on the way to path: path itself
// "is", or it "goes through here, which is".
func whereIs(path, here string) string {
	if filepath.Clean(here) != filepath.Clean(path) {
		return "goes through " + here + ", which is"
	}
	return "is"
}

// busyError is the result of an acquisition that ran out of time while a live
// (or not provably dead) owner held the lock.
type busyError struct {
	Path       string
	OwnerPID   int64
	Status     ownerStatus
	GatewayPID int
	Waited     time.Duration
}

func (e *busyError) Error() string {
	return fmt.Sprintf("lock %s: %s after waiting %s", e.Path, holderText(e.OwnerPID, e.Status, e.GatewayPID), e.Waited.Round(time.Millisecond))
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

// ownerPayload is the JSON written into the lock file. Readers accept the
// seed's schema {pid, createdAt, configPath, startTime?} and ignore unknown fields.
type ownerPayload struct {
	PID        int64           `json:"pid"`
	CreatedAt  string          `json:"createdAt"`
	ConfigPath string          `json:"configPath"`
	StartTime  json.RawMessage `json:"startTime,omitempty"`
	BootID     string          `json:"bootId,omitempty"`
	Hostname   string          `json:"hostname,omitempty"`
	Port       int             `json:"port,omitempty"`
	ChildPID   int             `json:"childPid,omitempty"`
	// ChildStartTime tells the recorded gateway from a process that reused its PID.
	ChildStartTime json.RawMessage `json:"childStartTime,omitempty"`
	// Descendants are the other live processes of the gateway's tree (its
	// workers, a daemon that left its group), as gwlock last saw them.
	Descendants []procRef `json:"descendants,omitempty"`
	// SessionID is the launcher's session, where the gateway's process group
	// lives: a group of the gateway's number in another session is not it.
	SessionID int    `json:"sessionId,omitempty"`
	Flock     bool   `json:"flock"`
	Version   string `json:"version,omitempty"`
	// RestartAt is when the next gateway starts, set only while a restart
	// backoff runs (RFC 3339 UTC, milliseconds); LastExit is the code the
	// last gateway exited with.
	RestartAt string `json:"restartAt,omitempty"`
	LastExit  *int   `json:"lastExit,omitempty"`
	// Token names this holding of the lock. The gateway gets it as
	// GWLOCK_LOCK_TOKEN and every process of its tree inherits it, so a
	// judge finds the tree in the process table when the record lags.
	Token string `json:"token,omitempty"`
	// PIDNS is the launcher's PID namespace: a pid written in another one
	// names some other process here, or none.
	PIDNS string `json:"pidNs,omitempty"`
}

// parsePayload decodes a lock file's contents. Any type mismatch, trailing data
// or truncation makes the whole payload unparsable: a half-understood owner is
// judged like an unknown one, never half-trusted.
func parsePayload(b []byte) (*ownerPayload, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("empty payload")
	}
	var p ownerPayload
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after payload")
	}
	starts := []json.RawMessage{p.StartTime, p.ChildStartTime}
	for _, d := range p.Descendants {
		starts = append(starts, d.StartTime)
	}
	for _, st := range starts {
		if len(st) > 0 {
			if _, ok := startTimeText(st); !ok {
				return nil, errors.New("a start time is neither a string nor a number")
			}
		}
	}
	if p.Port < 0 || p.Port > 65535 {
		p.Port = 0
	}
	return &p, nil
}

// startTimeText normalises a recorded start time: the seed wrote numbers,
// gwlock writes strings; both compare as the same text.
func startTimeText(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, s != ""
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return "", false
	}
	return n.String(), true
}

// encode renders the payload padded with spaces to a fixed size, so that a
// later update (childPid) is one write of the same length and a reader never
// sees a shorter tail glued to older bytes.
func (p *ownerPayload) encode() ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if len(b) >= maxPayloadWrite {
		return nil, fmt.Errorf("payload of %d bytes exceeds %d: shorten --config", len(b), maxPayloadWrite)
	}
	// The size depends on the payload without its gateway fields plus room
	// for them, so recording a gateway later never changes the length.
	fixed := *p
	fixed.ChildPID, fixed.ChildStartTime, fixed.Descendants = 0, nil, nil
	fb, err := json.Marshal(&fixed)
	if err != nil {
		return nil, err
	}
	size := ((len(fb)+childFieldsRoom)/payloadPad + 1) * payloadPad
	if size < len(b)+1 {
		size = (len(b)/payloadPad + 1) * payloadPad
	}
	if size > maxPayloadWrite {
		size = maxPayloadWrite
	}
	out := make([]byte, size)
	copy(out, b)
	for i := len(b); i < size-1; i++ {
		out[i] = ' '
	}
	out[size-1] = '\n'
	return out, nil
}

// procRef names one process for good: a pid and its start time.
type procRef struct {
	PID       int             `json:"pid"`
	StartTime json.RawMessage `json:"startTime,omitempty"`
}

// maxDescendants bounds the recorded descendants, and so the payload.
const maxDescendants = 8

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

type pidState int

const (
	pidUnknown pidState = iota
	pidAbsent
	pidPresent
)

// hostFacts is what the judgement needs to know about this host. It is an
// interface so the judgement stays a pure function that tests and fuzzers drive.
type hostFacts interface {
	hostname() string
	bootID() string
	selfPID() int
	selfStartTime() string
	probe(pid int) pidState
	startTime(pid int) (string, bool)
	listening(port int) bool
	// groupAlive says a live process of session sid is in process group pgid.
	groupAlive(pgid, sid int) bool
	// pidNS is our PID namespace ("" where there are none).
	pidNS() string
	// tagged names a live process, not us, whose environment carries token
	// (the GWLOCK_LOCK_TOKEN a launcher gave its gateway): a process of that
	// gateway's tree. False where the OS cannot tell.
	tagged(token string) (int, bool)
	// lockCreator names the process that took the kernel lock now held on
	// file (inherited descriptors keep the creator's pid); false where the
	// OS cannot tell.
	lockCreator(file fileID) (int, bool)
}

// verdict is what the judgement concluded about a lock file's owner.
type verdict struct {
	status     ownerStatus
	reason     string // non-empty exactly when the file may be reclaimed
	pid        int64  // the launcher named in the payload
	gatewayPID int    // for an orphaned owner: its gateway, if that is who lives
	port       int
}

// established says a live owner is certain: --if-running ok may stop waiting.
func (s ownerStatus) established() bool {
	return s == ownerAlive || s == ownerOrphaned
}

// judgeOwner decides whether a lock file whose kernel lock is free (or
// unsupported) may be reclaimed. kernelFree says the kernel lock was just
// taken by us, i.e. whoever wrote the file no longer holds it.
//
// A free kernel lock proves death only for a payload written on this host
// (same hostname and boot id): on a shared filesystem whose locks are local
// (NFS local_lock, some FUSE mounts) another host's owner holds nothing we can
// see. A free port never proves death: the owner may still be booting. A
// listening port can prove life. A PID from another host, or a PID outside
// 1..2^31-1, proves nothing and is never passed to kill. A launcher that is
// gone while the gateway it recorded (childPid with the same childStartTime)
// lives is an orphaned owner, never a dead one.
func judgeOwner(raw []byte, age, stale time.Duration, kernelFree bool, h hostFacts) verdict {
	p, err := parsePayload(raw)
	if err != nil {
		// A legacy writer creates the file, then writes: give a file being born time.
		return staleRule(verdict{status: ownerUnknown}, age, stale, h)
	}
	v := verdict{status: ownerUnknown, pid: p.PID, port: p.Port}
	if p.Hostname != "" && p.Hostname != h.hostname() {
		return staleRule(v, age, stale, h)
	}
	if boot := h.bootID(); p.BootID != "" && boot != "" && p.BootID != boot {
		v.status, v.reason = ownerDead, reasonHostRebooted
		return v
	}
	if otherPIDNS(p, h) {
		// Written in another PID namespace (a container sharing the lock
		// dir and the hostname): its pids prove nothing here, only its
		// token can find its gateway; else it is judged like a foreign host's.
		if gw, ok := h.tagged(p.Token); ok && p.Token != "" {
			v.status, v.gatewayPID = ownerOrphaned, gw
			return v
		}
		return staleRule(v, age, stale, h)
	}
	if p.Flock && kernelFree && p.Hostname != "" {
		// The launcher is gone; so is the gateway unless it closed the
		// inherited descriptor (daemons that close every file do) and
		// outlived its launcher: then it still runs, and keeps the lock.
		if gw, ok := gatewayAlive(p, h); ok {
			v.status, v.gatewayPID = ownerOrphaned, gw
			return v
		}
		v.status, v.reason = ownerDead, reasonOwnerDead
		return v
	}
	v.status, v.reason = judgeLauncher(p, h)
	if v.status == ownerDead {
		if gw, ok := gatewayAlive(p, h); ok {
			v.status, v.reason, v.gatewayPID = ownerOrphaned, "", gw
		}
	}
	if v.status == ownerUnknown {
		return staleRule(v, age, stale, h)
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
		// We are acquiring, so a file naming our own PID was written by an
		// earlier process with the same PID (PID 1 in a fresh container) unless
		// its start time is ours.
		if haveRecorded && recorded == h.selfStartTime() {
			return ownerAlive, ""
		}
		return ownerDead, reasonPIDReused
	}
	switch h.probe(int(p.PID)) {
	case pidAbsent:
		return ownerDead, reasonOwnerDead
	case pidPresent:
		if haveRecorded {
			if now, ok := h.startTime(int(p.PID)); ok && now != recorded {
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
		switch h.probe(r.PID) {
		case pidPresent:
			if now, ok := h.startTime(r.PID); ok && now == recorded {
				return r.PID, true
			}
			// The number was reused, which the kernel does only once the
			// recorded process and any group it led are gone.
		case pidAbsent:
			if h.groupAlive(r.PID, p.SessionID) {
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
	return h.tagged(p.Token)
}

// describeHolder names whoever keeps the kernel lock of a file we could not
// lock. The kernel says someone holds it; the payload says who should. A
// live launcher is alive. A dead launcher whose lock lives on through the
// descriptor its gateway inherited is orphaned. A kernel lock taken by
// someone else on a dead launcher's file (a judge or status passing by) and
// a payload that names nobody are unknown: no gateway is proven to run.
func describeHolder(raw []byte, file fileID, h hostFacts) verdict {
	v := verdict{status: ownerUnknown}
	p, err := parsePayload(raw)
	if err != nil {
		return v
	}
	v.pid, v.port, v.status = p.PID, p.Port, ownerAlive
	if pidsForeign(p, h) {
		return v // held here by something; the payload's pid is not ours to probe
	}
	if st, _ := judgeLauncher(p, h); st != ownerDead {
		return v
	}
	gw, treeLives := gatewayAlive(p, h)
	if creator, known := h.lockCreator(file); known && creator != int(p.PID) && !treeLives {
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

// lockOptions says which lock to take and how long to try.
type lockOptions struct {
	Path string
	// Dir is Path's directory, checked and open (openLockDir); acquire takes
	// it over: the held lock closes it on release, a failed acquire at once.
	// Nil: acquire checks and opens it as an explicit dir.
	Dir        *checkedDir
	ConfigPath string
	Port       int
	Host       string
	Timeout    time.Duration // 0: try once
	Poll       time.Duration // longest pause between retries that cannot be event-driven
	Stale      time.Duration
	Log        *telemetry.Logger
	Cancel     <-chan struct{} // closed: give up waiting (a stop signal arrived)
	// CancelReady, if set, is closed once Cancel can fire (run's signals are
	// registered). acquire waits for it before it first waits for a holder,
	// so a gwlock that is waiting can always be stopped.
	CancelReady <-chan struct{}
	// StopIfAlive returns the busy result as soon as a live owner is
	// established (--if-running ok), instead of waiting out Timeout.
	StopIfAlive bool
	facts       hostFacts // nil: this host
}

// heldLock is an acquired lock. Release it exactly once.
type heldLock struct {
	path     string
	dir      *checkedDir
	base     string
	f        *lockFile
	payload  ownerPayload
	acquired time.Time
	mu       sync.Mutex
	released bool
	lost     bool // lock-lost already reported
	shared   bool // others share the file and hold its kernel lock: never unlink
}

// acquire takes the lock at opts.Path, waiting up to opts.Timeout for a live
// owner and reclaiming the file of a dead one. Running out of time is a
// *busyError, not a failure of gwlock.
func acquire(opts lockOptions) (*heldLock, error) {
	dir := opts.Dir
	if dir == nil {
		var err error
		if dir, err = openLockDir(filepath.Dir(opts.Path), true, false, opts.Log); err != nil {
			return nil, err
		}
	}
	l, err := acquireIn(dir, filepath.Base(opts.Path), opts)
	if err != nil {
		dir.close()
	}
	return l, err
}

// acquireIn is acquire in an open directory; the held lock keeps dir. Each
// attempt is one pass of explicit steps: publish our file; if another is
// there, open and judge it; reclaim it if its owner is dead, else report the
// contention and wait for it to change (in the kernel where possible).
func acquireIn(dir *checkedDir, base string, opts lockOptions) (*heldLock, error) {
	a := newAcquisition(dir, base, opts)
	a.log.Info("acquire-start", "lock", opts.Path, "config", opts.ConfigPath,
		"timeout_ms", ms(opts.Timeout), "poll_ms", ms(opts.Poll), "stale_ms", ms(opts.Stale),
		"pid", os.Getpid(), "port", opts.Port)
	own, err := newOwnerFile(dir, base, a.payload)
	if err != nil {
		return nil, err
	}
	a.own, a.payload.Flock, a.named = own, own.kernel, own.tmpName != ""
	for {
		a.attempts++
		l, err := a.attempt()
		if err != nil {
			a.own.discard()
			return nil, err
		}
		if l != nil {
			return l, nil
		}
	}
}

// acquisition is the state of one acquire across its attempts.
type acquisition struct {
	opts                 lockOptions
	log                  *telemetry.Logger
	facts                hostFacts
	dir                  *checkedDir
	base                 string
	payload              ownerPayload
	own                  *lockFile
	named                bool // our file has a temp name (no O_TMPFILE)
	start, deadline      time.Time
	attempts, recoveries int
	lastOwner            string
	pause, inUsePause    time.Duration
}

func newAcquisition(dir *checkedDir, base string, opts lockOptions) *acquisition {
	facts := opts.facts
	if facts == nil {
		facts = localFacts
	}
	start := time.Now()
	return &acquisition{opts: opts, log: opts.Log, facts: facts, dir: dir, base: base,
		payload: newPayload(opts), start: start, deadline: start.Add(opts.Timeout), pause: time.Millisecond, inUsePause: time.Millisecond}
}

// attempt makes one try: the held lock, or nil to try again, or an error
// (a busy result included) that ends the acquisition.
func (a *acquisition) attempt() (*heldLock, error) {
	placed, err := a.publish()
	if err != nil || placed {
		return a.held(placed), err
	}
	var cur *lockFile
	err = untilFree(a.deadline, a.opts.Cancel, func() (err error) { cur, err = openExisting(a.dir, a.base); return err })
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // released between our link and our open
	}
	if err != nil {
		return nil, err
	}
	got, err := cur.tryLock()
	var v verdict
	if err == nil {
		v, err = judgeFile(cur, got, a.opts.Stale, a.facts)
	}
	switch {
	case err != nil:
		cur.close()
		return nil, a.inUse(err)
	case v.reason != "":
		return nil, a.inUse(a.reclaim(cur, v))
	}
	if err := a.contended(cur, v); err != nil {
		return nil, err
	}
	return nil, a.wait(cur, got)
}

// publish places our file at the path: true if it is ours now, false if
// another file is there (or our temp file had to be made again).
func (a *acquisition) publish() (bool, error) {
	err := untilFree(a.deadline, a.opts.Cancel, func() error { return a.own.publish(a.dir, a.base) })
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	case errors.Is(err, errTempGone):
		// Our named temp file was swept (we were stopped for longer than the
		// birth grace): make a new one and try again.
		a.own.discard()
		a.own, err = newOwnerFile(a.dir, a.base, a.payload)
		return false, err
	}
	return false, err
}

// inUse turns a third party's open handle (a Windows scanner) met while
// judging or reclaiming into a pause and another attempt, within --timeout.
func (a *acquisition) inUse(err error) error {
	if errors.Is(err, errFileInUse) && pauseInUse(&a.inUsePause, a.deadline, a.opts.Cancel) {
		return nil
	}
	return err
}

// held turns a published file into the held lock.
func (a *acquisition) held(placed bool) *heldLock {
	if !placed {
		return nil
	}
	if a.named || a.recoveries > 0 {
		// A crash happened here, or we may be one of many that use named
		// temp files: clear what killed acquisitions left.
		sweepTemps(a.dir, a.base, a.opts.Stale)
	}
	a.log.Info("acquire-success", "lock", a.opts.Path, "waited_ms", ms(time.Since(a.start)),
		"attempts", a.attempts, "stale_recoveries", a.recoveries)
	return &heldLock{path: a.opts.Path, dir: a.dir, base: a.base, f: a.own, payload: a.payload, acquired: time.Now()}
}

// reclaim removes a dead owner's file (cur is closed by it); the next
// attempt publishes at once.
func (a *acquisition) reclaim(cur *lockFile, v verdict) error {
	removed, err := reclaim(cur, a.dir, a.base)
	if removed {
		a.recoveries++
		a.log.Warn("stale-lock-recovered", "lock", a.opts.Path, "owner_pid", v.pid,
			"reason", v.reason, "waited_ms", ms(time.Since(a.start)), "attempt", a.attempts)
	}
	return err
}

// contended reports a live or unjudgeable owner, once per distinct owner,
// and ends the acquisition with a busy result when --if-running ok has its
// answer or the time is up. On a nil return cur is still open.
func (a *acquisition) contended(cur *lockFile, v verdict) error {
	if a.opts.CancelReady != nil && a.lastOwner == "" {
		<-a.opts.CancelReady // a waiting gwlock must be stoppable
	}
	if key := fmt.Sprintf("%d/%s/%d", v.pid, v.status, v.gatewayPID); key != a.lastOwner {
		a.lastOwner = key
		a.log.Info("acquire-contention", "lock", a.opts.Path, "owner_pid", v.pid, "owner_status", string(v.status),
			gatewayKey(v), "waited_ms", ms(time.Since(a.start)), "attempt", a.attempts)
	}
	waited := time.Since(a.start)
	busy := &busyError{Path: a.opts.Path, OwnerPID: v.pid, Status: v.status, GatewayPID: v.gatewayPID, Waited: waited}
	switch {
	case a.opts.StopIfAlive && v.status.established():
	case !time.Now().Before(a.deadline):
		a.log.Warn("acquire-timeout", "lock", a.opts.Path, "owner_pid", v.pid, "owner_status", string(v.status),
			gatewayKey(v), "waited_ms", ms(waited), "timeout_ms", ms(a.opts.Timeout), "attempts", a.attempts)
	default:
		return nil
	}
	cur.close()
	return busy
}

// wait lets the owner's file change before the next attempt, and closes cur.
// A kernel lock held by someone else is waited on in the kernel, so the next
// attempt starts within microseconds of the holder's release or death; an
// owner without one (payload only, or one whose kernel lock we hold) is
// polled, backing off up to --poll.
func (a *acquisition) wait(cur *lockFile, got bool) error {
	if !got && cur.kernel {
		_, err := cur.waitLock(a.deadline, a.opts.Cancel) // closes cur on timeout or cancel
		cur.close()
		if err == nil && canceled(a.opts.Cancel) {
			err = errCanceled
		}
		return err
	}
	cur.close()
	if !sleepUntil(a.pause, a.deadline, a.opts.Cancel) {
		return errCanceled
	}
	if a.pause *= 2; a.pause > a.opts.Poll {
		a.pause = a.opts.Poll
	}
	return nil
}

// errFileInUse matches failures caused by a third party that has a lock file
// open for a moment: on Windows, an antivirus scanner or indexer that opened
// it without FILE_SHARE_DELETE (a rename needs DELETE access) or without any
// sharing, or a deleted file that keeps its name until its last handle
// closes. POSIX never returns it.
var errFileInUse = errors.New("file in use by another program")

// releaseInUseLimit bounds how long release waits for a third party to close
// the lock file (a variable so tests can shorten it).
var releaseInUseLimit = 5 * time.Second

// untilFree runs op again, with pauses, for as long as it fails with
// errFileInUse and deadline has not passed.
func untilFree(deadline time.Time, cancel <-chan struct{}, op func() error) error {
	pause := time.Millisecond
	for {
		err := op()
		if !errors.Is(err, errFileInUse) || !pauseInUse(&pause, deadline, cancel) {
			return err
		}
	}
}

// pauseInUse waits before another try at an operation a third party blocked:
// 1 ms doubling to 50 ms; false once deadline passes or cancel closes.
func pauseInUse(pause *time.Duration, deadline time.Time, cancel <-chan struct{}) bool {
	if !time.Now().Before(deadline) || !sleepUntil(*pause, deadline, cancel) {
		return false
	}
	if *pause < 50*time.Millisecond {
		*pause *= 2
	}
	return true
}

// judgeFile decides about the owner of an existing lock file. got says we
// just took its kernel lock; if the kernel lock is held by someone else, the
// owner is alive whatever the payload says.
func judgeFile(cur *lockFile, got bool, stale time.Duration, facts hostFacts) (verdict, error) {
	raw, mtime, err := cur.readPayload()
	if err != nil {
		return verdict{}, err
	}
	if cur.kernel && !got {
		return describeHolder(raw, cur.id(), facts), nil
	}
	return judgeOwner(raw, time.Since(mtime), stale, got, facts), nil
}

// openExisting opens the file name in d without following a symlink and
// without blocking: fs.ErrNotExist if there is none, an *unsafeError if it
// is not a regular file we own.
func openExisting(d *checkedDir, name string) (*lockFile, error) {
	f, err := openLockPath(d, name)
	if err != nil {
		return nil, classifyOpenError(d, name, err)
	}
	if err := f.checkExisting(d.join(name)); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// readPayload reads the lock file's contents, at most maxPayloadRead bytes,
// and its mtime.
func (f *lockFile) readPayload() ([]byte, time.Time, error) {
	size, mtime, err := f.stat()
	if err != nil {
		return nil, time.Time{}, &fs.PathError{Op: "stat lock file", Path: "lock file", Err: err}
	}
	buf := make([]byte, min(size, maxPayloadRead))
	n := 0
	for n < len(buf) {
		m, err := f.readAt(buf[n:], int64(n))
		if err != nil {
			return nil, time.Time{}, &fs.PathError{Op: "read lock file", Path: "lock file", Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], mtime, nil
}

// errTempGone: publishing found our own temp file gone.
var errTempGone = errors.New("temp lock file vanished before it was published")

// newOwnerFile creates our private lock file and writes the payload into it.
func newOwnerFile(dir *checkedDir, base string, payload ownerPayload) (*lockFile, error) {
	own, err := createOwnerFile(dir, base)
	if err != nil {
		return nil, err
	}
	payload.Flock = own.kernel
	b, err := payload.encode()
	if err == nil {
		err = own.writePayload(b)
	}
	if err != nil {
		own.discard()
		return nil, &fs.PathError{Op: "write lock payload in", Path: dir.path, Err: err}
	}
	return own, nil
}

// reclaim removes a dead owner's file. cur holds the file's kernel lock where
// the filesystem has one; the path is removed only if it still names cur's file,
// so a successor that replaced it in the meantime is never touched.
func reclaim(cur *lockFile, dir *checkedDir, base string) (bool, error) {
	defer cur.close()
	if testHookBeforeReclaim != nil {
		testHookBeforeReclaim()
	}
	// Whatever the filesystem, the path must still name the judged file: the
	// judgement took time, and the owner may have released and a successor
	// published meanwhile. Without a kernel lock this check narrows, but
	// cannot close, the window before the rename (see reclaimWithoutKernelLock).
	same, err := cur.namedBy(dir, base)
	if err != nil || !same {
		return false, err
	}
	if !cur.kernel {
		return reclaimWithoutKernelLock(cur, dir, base)
	}
	if err := removeLockPath(dir, base); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, &fs.PathError{Op: "remove stale lock", Path: dir.join(base), Err: err}
	}
	return true, nil
}

// sweepTemps removes temp files that acquisitions killed before publishing
// left in dir. Each creator flocks its temp file from birth, so a temp file
// whose kernel lock we can take belongs to a dead process; without kernel
// locks, age decides. Only names of this lock's own pattern are touched, and
// each only after checking that the name still denotes the file we judged.
func sweepTemps(dir *checkedDir, base string, stale time.Duration) {
	names, err := dir.names()
	if err != nil {
		return
	}
	prefix := "." + base + "."
	for _, name := range names {
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, tempSuffix) {
			continue
		}
		f, err := openExisting(dir, name)
		if err != nil {
			continue
		}
		// A creator flocks its temp file a few syscalls after creating it, so
		// a free kernel lock alone proves nothing for a young file: its
		// creator, named in the file name, must also be gone.
		_, mtime, rerr := f.readPayload()
		got, _ := f.tryLock()
		if !f.kernel {
			got = time.Since(mtime) > stale
		}
		if got && rerr == nil && (time.Since(mtime) > bornGrace || tempCreatorGone(name, prefix)) {
			if same, _ := f.namedBy(dir, name); same {
				_ = removeLockPath(dir, name)
			}
		}
		f.close()
	}
}

// tempSuffix ends every temp file gwlock makes beside a lock.
const tempSuffix = ".tmp"

// tempName is the one format of a temp file beside the lock base:
// .<base>.<tag>.<unique>.tmp, which sweepTemps matches. An acquisition's own
// file is tagged with its creator's pid (ownTempName), which tempCreatorGone
// reads back; a file renamed out of the way is tagged with why.
func tempName(base, tag string) string {
	return "." + base + "." + tag + "." + uniqueSuffix() + tempSuffix
}

// ownTempName names this process's new lock file before it is published.
func ownTempName(base string) string { return tempName(base, strconv.Itoa(os.Getpid())) }

// uniqueSuffix names temp files. It needs to be unlikely to collide, not
// secret (O_EXCL refuses a collision): crypto/rand would add half a megabyte.
func uniqueSuffix() string {
	n := tempCounter.Add(1)
	return strconv.FormatUint(uint64(time.Now().UnixNano())^(n<<48), 36)
}

var tempCounter atomic.Uint64

// tempCreatorGone reads the creator's PID from a temp name
// (.<lock>.<pid>.<random>.tmp) and reports whether that process is gone.
func tempCreatorGone(name, prefix string) bool {
	rest := strings.TrimPrefix(name, prefix)
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return false
	}
	pid, err := strconv.Atoi(rest[:dot])
	return err == nil && pid > 0 && pid != os.Getpid() && processProbe(pid) == pidAbsent
}

// testHookBeforeReclaim lets tests widen the window between judging a dead
// owner and removing its file, so concurrent recoveries really overlap.
var testHookBeforeReclaim func()

// sleepUntil pauses for d, never past deadline; false if cancel closed first.
func sleepUntil(d time.Duration, deadline time.Time, cancel <-chan struct{}) bool {
	if left := time.Until(deadline); left < d {
		d = left
	}
	if d <= 0 {
		return !canceled(cancel)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-cancel:
		return false
	}
}

func canceled(cancel <-chan struct{}) bool {
	select {
	case <-cancel:
		return true
	default:
		return false
	}
}

// errCanceled: a stop signal arrived while waiting for the lock.
var errCanceled = errors.New("stopped by a signal while waiting for the lock")

func newPayload(opts lockOptions) ownerPayload {
	self := selfFacts()
	return ownerPayload{
		PID:        int64(os.Getpid()),
		CreatedAt:  time.Now().UTC().Format(payloadTime),
		ConfigPath: opts.ConfigPath,
		StartTime:  self.startTimeJSON,
		BootID:     self.bootID,
		Hostname:   self.hostname,
		Port:       opts.Port,
		Version:    version,
		SessionID:  self.sessionID,
		Token:      newToken(),
		PIDNS:      self.pidNS,
	}
}

// newToken is 128 random bits in hex: unique across hosts, containers and
// PID namespaces, where a pid and a start time are not.
func newToken() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return ""
	}
	return hex.EncodeToString(b[:])
}

// release removes the lock file and drops the kernel lock, in that order, so a
// waiter never finds our file unlocked at the path. If the path no longer
// names our file, it is left alone: it is somebody else's now.
//
// If a third party keeps the file open for longer than releaseInUseLimit,
// release fails and says so: the kernel lock is dropped all the same, and the
// file left behind says flock:true, so the next starter finds its kernel lock
// free and reclaims it at once (owner-dead). It never claims the lock is
// released while the file is still ours at the path.
func (l *heldLock) release(log *telemetry.Logger) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	defer func() { l.released = true }()
	defer l.dir.close()
	defer l.f.close()
	if l.shared {
		// The gateway's descendants still hold the lock: the file stays
		// published, and the kernel lock keeps guarding it until they exit.
		log.Warn("lock-left-held", "lock", l.path, "reason", "the gateway's descendants still hold it")
		return nil
	}
	same, err := l.f.namedBy(l.dir, l.base)
	if err != nil {
		return err
	}
	if !same {
		l.reportLostLocked(log)
		return nil
	}
	err = untilFree(time.Now().Add(releaseInUseLimit), nil, func() error { return removeLockPath(l.dir, l.base) })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &fs.PathError{Op: "remove lock", Path: l.path, Err: err}
	}
	log.Info("lock-released", "lock", l.path, "held_ms", ms(time.Since(l.acquired)))
	return nil
}

// fileID identifies a file whatever its name: (dev, inode) on POSIX.
type fileID struct{ a, b uint64 }

// othersHold reports whether processes other than this launcher still share
// the lock: the gateway's descendants that inherited its descriptor. Closing
// our descriptor drops the kernel lock only if nobody else shares it, so the
// hold moves to a second descriptor of the same file, which then tries the
// lock. When it fails, the sharers hold it; waitAlone waits them out.
func (l *heldLock) othersHold() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.f.kernel {
		return false, nil // no kernel lock to tell by
	}
	second, err := openExisting(l.dir, l.base)
	if err != nil {
		return false, err
	}
	if second.id() != l.f.id() {
		second.close()
		return false, nil // not ours any more: the heartbeat reports lock-lost
	}
	l.f.close()
	l.f = second
	got, err := second.tryLock()
	l.shared = err == nil && !got
	return l.shared, err
}

// waitAlone blocks until the lock's other sharers are gone and the kernel
// lock is ours again, on the descriptor othersHold opened.
func (l *heldLock) waitAlone() error {
	l.mu.Lock()
	f := l.f
	l.mu.Unlock()
	// No deadline: the gateway's descendants may run for months. A stop
	// signal reaches them (signalTree); their exit ends this wait.
	got, err := f.waitLock(time.Now().Add(100*365*24*time.Hour), nil)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || !got {
		return fmt.Errorf("lock %s: waiting for the gateway's descendants: %v", l.path, err)
	}
	l.shared = false
	return nil
}

// sharers lists the other processes that hold this lock through a
// descriptor they inherited, where the OS can tell.
func (l *heldLock) sharers() []int {
	l.mu.Lock()
	id := l.f.id()
	l.mu.Unlock()
	return flockHolders(id, l.base)
}

// check is the heartbeat: it reports whether the path still names our file
// and refreshes the file's mtime so payload-only judges see a live holder.
func (l *heldLock) check() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return false, nil
	}
	same, err := l.f.namedBy(l.dir, l.base)
	if err != nil || !same {
		return false, err
	}
	return true, l.f.touch()
}

// lostReason is why a held lock is lost: the one lock-lost line says it.
const lostReason = "path no longer names our lock file"

// reportLost says once, in the one lock-lost line, that the lock is lost;
// true the first time. A released lock is not lost.
func (l *heldLock) reportLost(log *telemetry.Logger) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reportLostLocked(log)
}

func (l *heldLock) reportLostLocked(log *telemetry.Logger) bool {
	if l.lost || l.released {
		return false
	}
	l.lost = true
	log.Error("lock-lost", "lock", l.path, "reason", lostReason)
	return true
}

// setChild records the gateway's PID and start time in the payload: status
// names it, and a judge without the kernel lock finds an orphaned gateway
// alive after its launcher died. pid 0 says no gateway runs now; the
// recorded descendants are cleared with a new gateway.
func (l *heldLock) setChild(pid int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.payload.ChildPID, l.payload.ChildStartTime, l.payload.Descendants = pid, startTimeOf(pid), nil
	l.payload.RestartAt = ""
	return l.rewrite()
}

// payloadTime is the payload's time format: RFC 3339, milliseconds.
const payloadTime = "2006-01-02T15:04:05.000Z07:00"

// setRestarting records a restart backoff: no gateway until at.
func (l *heldLock) setRestarting(at time.Time, lastExit int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.payload.ChildPID, l.payload.ChildStartTime, l.payload.Descendants = 0, nil, nil
	l.payload.RestartAt, l.payload.LastExit = at.UTC().Format(payloadTime), &lastExit
	return l.rewrite()
}

// setDescendants records the processes of the gateway's tree other than its
// main process, the first maxDescendants of them. It writes only on a change.
func (l *heldLock) setDescendants(pids []int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var refs []procRef
	for _, pid := range pids {
		if st := startTimeOf(pid); pid != l.payload.ChildPID && st != nil && len(refs) < maxDescendants {
			refs = append(refs, procRef{PID: pid, StartTime: st})
		}
	}
	if fmt.Sprint(refs) == fmt.Sprint(l.payload.Descendants) {
		return nil
	}
	l.payload.Descendants = refs
	return l.rewrite()
}

func (l *heldLock) rewrite() error {
	b, err := l.payload.encode()
	if err != nil {
		return err
	}
	return l.f.writePayload(b)
}

func startTimeOf(pid int) json.RawMessage {
	if st, ok := processStartTime(pid); ok && pid > 0 {
		return json.RawMessage(strconv.Quote(st))
	}
	return nil
}

// join names an entry of the directory, for messages and for people.
func (d *checkedDir) join(name string) string { return filepath.Join(d.path, name) }

// derivedLockName is the seed's scheme: the first 8 hex digits of the SHA-256
// of the config's absolute path.
func derivedLockName(configPath string) string {
	sum := sha256.Sum256([]byte(configPath))
	return "gateway." + hex.EncodeToString(sum[:4]) + ".lock"
}

// selfFacts are this process's own identity, computed once.
type self struct {
	pid           int
	sessionID     int
	hostname      string
	bootID        string
	startTime     string
	startTimeJSON json.RawMessage
	pidNS         string
}

var selfOnce = sync.OnceValue(func() self {
	s := self{pid: os.Getpid(), sessionID: sessionID(), pidNS: pidNamespace()}
	s.hostname, _ = os.Hostname()
	s.bootID = bootID()
	if st, ok := processStartTime(s.pid); ok {
		s.startTime = st
		s.startTimeJSON = json.RawMessage(strconv.Quote(st))
	}
	return s
})

func selfFacts() self { return selfOnce() }

// hostProbe is hostFacts for this host.
type hostProbe struct{ probeHost string }

var localFacts hostFacts = hostProbe{probeHost: "127.0.0.1"}

func (hostProbe) hostname() string                    { return selfFacts().hostname }
func (hostProbe) bootID() string                      { return selfFacts().bootID }
func (hostProbe) pidNS() string                       { return selfFacts().pidNS }
func (hostProbe) selfPID() int                        { return selfFacts().pid }
func (hostProbe) selfStartTime() string               { return selfFacts().startTime }
func (hostProbe) probe(pid int) pidState              { return processProbe(pid) }
func (hostProbe) startTime(pid int) (string, bool)    { return processStartTime(pid) }
func (hostProbe) groupAlive(pgid, sid int) bool       { return processGroupAlive(pgid, sid) }
func (hostProbe) lockCreator(file fileID) (int, bool) { return flockCreator(file) }
func (hostProbe) tagged(token string) (int, bool)     { return taggedProcess(token) }
func (h hostProbe) listening(port int) bool {
	return portListening(h.probeHost, port, probeTimeout)
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
