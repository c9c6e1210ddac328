package main

import (
	"errors"
	"fmt"
	"gwlock/internal/telemetry"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// The lock protocol. A lock is a file at a fixed path. Its holder is the process
// whose file is at that path and that holds the kernel lock (flock on POSIX,
// LockFileEx on Windows) on it. The kernel lock is the truth about liveness; the
// JSON payload inside the file is for people and for files written by holders
// that cannot use a kernel lock (legacy writers, filesystems without flock).
//
// acquire (this file) publishes a complete private file at the path in one
// step (link or O_EXCL), so a reader never sees a half-written lock; finding
// another file there, it asks judge (judge.go) about its owner, reclaims the
// file of an owner proven dead, and otherwise waits. The held lock (held.go)
// keeps the payload current and, on release, unlinks before it unlocks. The
// payload is in payload.go, temp names in names.go, refusals of unsafe paths
// in refusal.go and lockdir.go, and what the judge learns of this host in
// facts.go (from gwlock/internal/proc).
//
// Each OS file (lock_posix.go with lockdir_posix.go, lock_windows.go)
// defines the same unexported functions. Names (base, name) are single
// components in a *checkedDir, the checked directory: on POSIX it holds the
// directory open and every call is relative to that descriptor (openat,
// linkat, unlinkat, renameat, fstatat), so no path is walked again after the
// check and a directory swapped for a symlink cannot redirect a create, link
// or delete. On Windows it carries the path.
//
//	openLockDir(path string, explicit, prepare bool, log *telemetry.Logger) (*checkedDir, error)
//	    checks the directory and returns it open. prepare (run) creates a
//	    missing default dir and tightens a loose one of ours; without it
//	    (status, unlock) nothing changes and a missing dir is fs.ErrNotExist.
//	    POSIX judges what it finds by the lock dir rules (lockdir.go).
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
//	(*lockFile).id() fileID                   the file's identity
//
// Any of them may fail with an error that matches errFileInUse: a third
// party (an antivirus scanner, an indexer) has the file open for a moment.
// acquire retries such failures within its timeout, release within
// releaseInUseLimit.
//
// What is unspecified: the order in which waiters are served (the kernel's),
// and the file's contents while a legacy writer is creating it.

const (
	bornGrace = 2 * time.Second
	maxPID    = 1<<31 - 1
)

// busyError is the result of an acquisition that ran out of time while a live
// (or not provably dead) owner held the lock.
type busyError struct {
	Path       string
	OwnerPID   int64
	Status     ownerStatus
	GatewayPID int
	Waited     time.Duration
	holder     string // holderOf the last verdict
}

func (e *busyError) Error() string {
	holder := e.holder
	if holder == "" {
		holder = holderText(e.OwnerPID, e.Status, e.GatewayPID)
	}
	return fmt.Sprintf("lock %s: %s after waiting %s", e.Path, holder, e.Waited.Round(time.Millisecond))
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
		var e evidence
		if e, err = lookAt(cur, got); err == nil {
			v = judge(e, a.opts.Stale, a.facts)
		}
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
	if key := fmt.Sprintf("%d/%s/%d/%t", v.pid, v.status, v.gatewayPID, v.stopped); key != a.lastOwner {
		a.lastOwner = key
		a.log.Info("acquire-contention", "lock", a.opts.Path, "owner_pid", v.pid, "owner_status", string(v.status),
			gatewayKey(v), ownerDetail(v), "waited_ms", ms(time.Since(a.start)), "attempt", a.attempts)
	}
	waited := time.Since(a.start)
	busy := &busyError{Path: a.opts.Path, OwnerPID: v.pid, Status: v.status, GatewayPID: v.gatewayPID, Waited: waited, holder: holderOf(v)}
	switch {
	case a.opts.StopIfAlive && v.status.established():
	case !time.Now().Before(a.deadline):
		a.log.Warn("acquire-timeout", "lock", a.opts.Path, "owner_pid", v.pid, "owner_status", string(v.status),
			gatewayKey(v), ownerDetail(v), "waited_ms", ms(waited), "timeout_ms", ms(a.opts.Timeout), "attempts", a.attempts)
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

// join names an entry of the directory, for messages and for people.
func (d *checkedDir) join(name string) string { return filepath.Join(d.path, name) }

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
