package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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
// functions:
//
//	createOwnerFile(dir, base string) (*lockFile, error)
//	    a new private file in dir, kernel-locked if the filesystem allows, not
//	    yet at the lock path; f.kernel says whether the kernel lock is held.
//	(*lockFile).writePayload(b []byte) error
//	(*lockFile).publish(path string) error
//	    places the file at path atomically; fs.ErrExist if a file is there.
//	openExisting(path string) (*lockFile, error)
//	    opens the file at path without following a symlink and without
//	    blocking; an *unsafeError if it is not a regular file we own.
//	(*lockFile).tryLock() (bool, error)
//	    false with f.kernel cleared where the filesystem has no kernel locks
//	    (NFS without lockd): the lock then rests on the payload and a heartbeat.
//	(*lockFile).waitLock(deadline time.Time, cancel <-chan struct{}) (bool, error)
//	    blocks until the kernel lock is ours, the deadline passes or cancel is
//	    closed; the file must not be used again by the caller when it returns false.
//	(*lockFile).readPayload() ([]byte, time.Time, error)  at most maxPayloadRead bytes
//	(*lockFile).namedBy(path string) (bool, error)
//	    whether path still names this file (dev, inode); false on ENOENT.
//	(*lockFile).touch() error                 refresh the mtime (heartbeat)
//	(*lockFile).close() error                 drops the kernel lock
//	removeLockPath(path string) error
//	prepareDir(dir string, explicit bool, log *telemetry) error
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
	maxPayloadWrite = 4 << 10  // payloads we write stay under this
	maxPayloadRead  = 64 << 10 // never read more than this from a lock file
	payloadPad      = 512      // payloads are padded so an update is one pwrite of the same size
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

// busyError is the result of an acquisition that ran out of time while a live
// (or not provably dead) owner held the lock.
type busyError struct {
	Path     string
	OwnerPID int64
	Status   ownerStatus
	Waited   time.Duration
}

func (e *busyError) Error() string {
	return fmt.Sprintf("lock %s: held by pid %d (%s) after waiting %s", e.Path, e.OwnerPID, e.Status, e.Waited.Round(time.Millisecond))
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
	Flock      bool            `json:"flock"`
	Version    string          `json:"version,omitempty"`
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
	if len(p.StartTime) > 0 {
		if _, ok := startTimeText(p.StartTime); !ok {
			return nil, errors.New("startTime is neither a string nor a number")
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
	size := (len(b)/payloadPad + 1) * payloadPad
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

type ownerStatus string

const (
	ownerAlive   ownerStatus = "alive"
	ownerDead    ownerStatus = "dead"
	ownerUnknown ownerStatus = "unknown"
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
}

// verdict is what the judgement concluded about a lock file's owner.
type verdict struct {
	status ownerStatus
	reason string // non-empty exactly when the file may be reclaimed
	pid    int64
	port   int
}

// judgeOwner decides whether a lock file whose kernel lock is free (or
// unsupported) may be reclaimed. kernelFree says the kernel lock was just
// taken by us, i.e. whoever wrote the file no longer holds it.
//
// A free port never proves death: the owner may still be booting. A listening
// port can prove life. A PID from another host, or a PID outside 1..2^31-1,
// proves nothing and is never passed to kill.
func judgeOwner(raw []byte, age, stale time.Duration, kernelFree bool, h hostFacts) verdict {
	p, err := parsePayload(raw)
	if err != nil {
		// A legacy writer creates the file, then writes: give a file being born time.
		return staleRule(verdict{status: ownerUnknown}, age, stale, h)
	}
	v := verdict{status: ownerUnknown, pid: p.PID, port: p.Port}
	if p.Flock && kernelFree {
		v.status, v.reason = ownerDead, reasonOwnerDead
		return v
	}
	if p.Hostname != "" && p.Hostname != h.hostname() {
		return staleRule(v, age, stale, h)
	}
	if boot := h.bootID(); p.BootID != "" && boot != "" && p.BootID != boot {
		v.status, v.reason = ownerDead, reasonHostRebooted
		return v
	}
	if p.PID <= 0 || p.PID > maxPID {
		return staleRule(v, age, stale, h)
	}
	recorded, haveRecorded := startTimeText(p.StartTime)
	if int(p.PID) == h.selfPID() {
		// We are acquiring, so a file naming our own PID was written by an
		// earlier process with the same PID (PID 1 in a fresh container) unless
		// its start time is ours.
		if haveRecorded && recorded == h.selfStartTime() {
			v.status = ownerAlive
			return v
		}
		v.status, v.reason = ownerDead, reasonPIDReused
		return v
	}
	switch h.probe(int(p.PID)) {
	case pidAbsent:
		v.status, v.reason = ownerDead, reasonOwnerDead
		return v
	case pidPresent:
		if haveRecorded {
			if now, ok := h.startTime(int(p.PID)); ok && now != recorded {
				v.status, v.reason = ownerDead, reasonPIDReused
				return v
			}
		}
		v.status = ownerAlive
		return v
	}
	return staleRule(v, age, stale, h)
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
	Path       string
	ConfigPath string
	Port       int
	Host       string
	Timeout    time.Duration // 0: try once
	Poll       time.Duration // longest pause between retries that cannot be event-driven
	Stale      time.Duration
	Log        *telemetry
	Cancel     <-chan struct{} // closed: give up waiting (a stop signal arrived)
	// CancelReady, if set, is closed once Cancel can fire (run's signals are
	// registered). acquire waits for it before it first waits for a holder,
	// so a gwlock that is waiting can always be stopped.
	CancelReady <-chan struct{}
	facts       hostFacts // nil: this host
}

// heldLock is an acquired lock. Release it exactly once.
type heldLock struct {
	path     string
	f        *lockFile
	payload  ownerPayload
	acquired time.Time
	mu       sync.Mutex
	released bool
	lost     bool // lock-lost already reported
}

// acquire takes the lock at opts.Path, waiting up to opts.Timeout for a live
// owner and reclaiming the file of a dead one. Running out of time is a
// *busyError, not a failure of gwlock.
func acquire(opts lockOptions) (*heldLock, error) {
	log := opts.Log
	facts := opts.facts
	if facts == nil {
		facts = localFacts
	}
	start := time.Now()
	deadline := start.Add(opts.Timeout)
	dir, base := filepath.Split(opts.Path)
	log.info("acquire-start", "lock", opts.Path, "config", opts.ConfigPath,
		"timeout_ms", ms(opts.Timeout), "poll_ms", ms(opts.Poll), "stale_ms", ms(opts.Stale),
		"pid", os.Getpid(), "port", opts.Port)

	payload := newPayload(opts)
	own, err := newOwnerFile(dir, base, payload)
	if err != nil {
		return nil, err
	}
	payload.Flock = own.kernel
	var (
		named                = own.tmpName != ""
		attempts, recoveries int
		lastOwner            string
		pause                = time.Millisecond
		inUsePause           = time.Millisecond
	)
	for {
		attempts++
		err := untilFree(deadline, opts.Cancel, func() error { return own.publish(opts.Path) })
		if err == nil {
			if named || recoveries > 0 {
				// A crash happened here, or we may be one of many that use
				// named temp files: clear what killed acquisitions left.
				sweepTemps(dir, base, opts.Stale)
			}
			log.info("acquire-success", "lock", opts.Path, "waited_ms", ms(time.Since(start)),
				"attempts", attempts, "stale_recoveries", recoveries)
			return &heldLock{path: opts.Path, f: own, payload: payload, acquired: time.Now()}, nil
		}
		if errors.Is(err, errTempGone) {
			// Our named temp file was swept (we were stopped for longer than
			// the birth grace): make a new one.
			own.discard()
			if own, err = newOwnerFile(dir, base, payload); err != nil {
				return nil, err
			}
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			own.discard()
			return nil, err
		}
		var cur *lockFile
		err = untilFree(deadline, opts.Cancel, func() (err error) { cur, err = openExisting(opts.Path); return err })
		if errors.Is(err, fs.ErrNotExist) {
			continue // released between our link and our open
		}
		if err != nil {
			own.discard()
			return nil, err
		}
		got, err := cur.tryLock()
		for err == nil {
			var v verdict
			if v, err = judgeFile(cur, got, opts.Stale, facts); err != nil {
				break
			}
			if v.reason != "" {
				var removed bool
				if removed, err = reclaim(cur, opts.Path); removed {
					recoveries++
					log.warn("stale-lock-recovered", "lock", opts.Path, "owner_pid", v.pid,
						"reason", v.reason, "waited_ms", ms(time.Since(start)), "attempt", attempts)
				}
				break
			}
			if got {
				// We hold the kernel lock of a file whose payload-only owner is
				// alive or unknown: let go of it before waiting.
				cur.close()
			}
			if opts.CancelReady != nil && lastOwner == "" {
				<-opts.CancelReady
			}
			if key := fmt.Sprintf("%d/%s", v.pid, v.status); key != lastOwner {
				lastOwner = key
				log.info("acquire-contention", "lock", opts.Path, "owner_pid", v.pid,
					"owner_status", string(v.status), "waited_ms", ms(time.Since(start)), "attempt", attempts)
			}
			if !time.Now().Before(deadline) {
				cur.close()
				own.discard()
				waited := time.Since(start)
				log.warn("acquire-timeout", "lock", opts.Path, "owner_pid", v.pid, "waited_ms", ms(waited),
					"timeout_ms", ms(opts.Timeout), "attempts", attempts)
				return nil, &busyError{Path: opts.Path, OwnerPID: v.pid, Status: v.status, Waited: waited}
			}
			if !got && cur.kernel {
				// Event-driven: sleep in the kernel until the holder releases or
				// dies, then judge the same file again while holding its lock.
				if got, err = cur.waitLock(deadline, opts.Cancel); err == nil && !got {
					if canceled(opts.Cancel) {
						err = errCanceled
					}
					break // timed out; the next attempt reports it
				}
				continue
			}
			// No event to wait for: a payload-only owner. Back off up to --poll.
			if !sleepUntil(pause, deadline, opts.Cancel) {
				err = errCanceled
				break
			}
			if pause *= 2; pause > opts.Poll {
				pause = opts.Poll
			}
			break
		}
		cur.close()
		if errors.Is(err, errFileInUse) && pauseInUse(&inUsePause, deadline, opts.Cancel) {
			continue // a scanner had the file open while we judged or reclaimed it
		}
		if err != nil {
			own.discard()
			return nil, err
		}
	}
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
		v := verdict{status: ownerAlive}
		if p, perr := parsePayload(raw); perr == nil {
			v.pid, v.port = p.PID, p.Port
		}
		return v, nil
	}
	return judgeOwner(raw, time.Since(mtime), stale, got, facts), nil
}

// errTempGone: publishing found our own temp file gone.
var errTempGone = errors.New("temp lock file vanished before it was published")

// newOwnerFile creates our private lock file and writes the payload into it.
func newOwnerFile(dir, base string, payload ownerPayload) (*lockFile, error) {
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
		return nil, &fs.PathError{Op: "write lock payload in", Path: dir, Err: err}
	}
	return own, nil
}

// reclaim removes a dead owner's file. cur holds the file's kernel lock where
// the filesystem has one; the path is removed only if it still names cur's file,
// so a successor that replaced it in the meantime is never touched.
func reclaim(cur *lockFile, path string) (bool, error) {
	defer cur.close()
	if testHookBeforeReclaim != nil {
		testHookBeforeReclaim()
	}
	if !cur.kernel {
		return reclaimWithoutKernelLock(cur, path)
	}
	same, err := cur.namedBy(path)
	if err != nil || !same {
		return false, err
	}
	if err := removeLockPath(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, &fs.PathError{Op: "remove stale lock", Path: path, Err: err}
	}
	return true, nil
}

// sweepTemps removes temp files that acquisitions killed before publishing
// left in dir. Each creator flocks its temp file from birth, so a temp file
// whose kernel lock we can take belongs to a dead process; without kernel
// locks, age decides. Only names of this lock's own pattern are touched, and
// each only after checking that the name still denotes the file we judged.
func sweepTemps(dir, base string, stale time.Duration) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	prefix := "." + base + "."
	for _, name := range names {
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, tempSuffix) {
			continue
		}
		path := filepath.Join(dir, name)
		f, err := openExisting(path)
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
			if same, _ := f.namedBy(path); same {
				_ = removeLockPath(path)
			}
		}
		f.close()
	}
}

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
		CreatedAt:  time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		ConfigPath: opts.ConfigPath,
		StartTime:  self.startTimeJSON,
		BootID:     self.bootID,
		Hostname:   self.hostname,
		Port:       opts.Port,
		Version:    version,
	}
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
func (l *heldLock) release(log *telemetry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	l.released = true
	defer l.f.close()
	same, err := l.f.namedBy(l.path)
	if err != nil {
		return err
	}
	if !same {
		if !l.lost {
			log.error("lock-lost", "lock", l.path, "reason", "path no longer names our lock file")
		}
		return nil
	}
	err = untilFree(time.Now().Add(releaseInUseLimit), nil, func() error { return removeLockPath(l.path) })
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &fs.PathError{Op: "remove lock", Path: l.path, Err: err}
	}
	log.info("lock-released", "lock", l.path, "held_ms", ms(time.Since(l.acquired)))
	return nil
}

// check is the heartbeat: it reports whether the path still names our file
// and refreshes the file's mtime so payload-only judges see a live holder.
func (l *heldLock) check() (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return false, nil
	}
	same, err := l.f.namedBy(l.path)
	if err != nil || !same {
		return false, err
	}
	return true, l.f.touch()
}

func (l *heldLock) markLost() {
	l.mu.Lock()
	l.lost = true
	l.mu.Unlock()
}

// setChild records the gateway's PID in the payload, for status and people.
func (l *heldLock) setChild(pid int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.payload.ChildPID = pid
	b, err := l.payload.encode()
	if err != nil {
		return err
	}
	return l.f.writePayload(b)
}

// derivedLockName is the seed's scheme: the first 8 hex digits of the SHA-256
// of the config's absolute path.
func derivedLockName(configPath string) string {
	sum := sum256([]byte(configPath))
	return "gateway." + hex.EncodeToString(sum[:4]) + ".lock"
}

// selfFacts are this process's own identity, computed once.
type self struct {
	pid           int
	hostname      string
	bootID        string
	startTime     string
	startTimeJSON json.RawMessage
}

var selfOnce = sync.OnceValue(func() self {
	s := self{pid: os.Getpid()}
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

func (hostProbe) hostname() string                 { return selfFacts().hostname }
func (hostProbe) bootID() string                   { return selfFacts().bootID }
func (hostProbe) selfPID() int                     { return selfFacts().pid }
func (hostProbe) selfStartTime() string            { return selfFacts().startTime }
func (hostProbe) probe(pid int) pidState           { return processProbe(pid) }
func (hostProbe) startTime(pid int) (string, bool) { return processStartTime(pid) }
func (h hostProbe) listening(port int) bool {
	return portListening(h.probeHost, port, probeTimeout)
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
