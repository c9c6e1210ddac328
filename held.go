package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"gwlock/internal/telemetry"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

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
	err = untilFree(time.Now().Add(releaseInUseLimit), nil, func() error {
		if testHookBeforeUnlink != nil {
			testHookBeforeUnlink()
		}
		return removeLockPath(l.dir, l.base)
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &fs.PathError{Op: "remove lock", Path: l.path, Err: err}
	}
	log.Info("lock-released", "lock", l.path, "held_ms", ms(time.Since(l.acquired)))
	return nil
}

// testHookBeforeUnlink lets tests look at the kernel lock at the moment
// release unlinks the file.
var testHookBeforeUnlink func()

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
	l.noteUIDs([]int{pid})
	return l.rewrite()
}

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
	// The main process is looked at again: a gateway may switch user after
	// it started (setpriv, su, its own setuid()).
	newUID := l.noteUIDs(append([]int{l.payload.ChildPID}, pids...))
	if !newUID && slices.EqualFunc(refs, l.payload.Descendants, sameProc) {
		return nil
	}
	l.payload.Descendants = refs
	return l.rewrite()
}

// sameProc says two records name the same process.
func sameProc(a, b procRef) bool {
	return a.PID == b.PID && bytes.Equal(a.StartTime, b.StartTime)
}

// noteUIDs adds to the payload's tree uids the real uids the processes
// pids run as, other than ours, for the holding's whole life (a uid once
// seen stays: a re-forked process of it may still run); true if the
// payload changed. Past maxTreeUIDs a new uid sets TreeUIDsOverflow
// instead, never silently dropped: a judge then cannot prove the tree
// gone by its token. A process whose uid cannot be read adds none.
func (l *heldLock) noteUIDs(pids []int) bool {
	changed := false
	for _, pid := range pids {
		uid, ok := processUID(pid)
		if pid <= 0 || !ok || uid == os.Geteuid() || slices.Contains(l.payload.TreeUIDs, uid) {
			continue
		}
		switch {
		case len(l.payload.TreeUIDs) < maxTreeUIDs:
			l.payload.TreeUIDs = append(l.payload.TreeUIDs, uid)
			changed = true
		case !l.payload.TreeUIDsOverflow:
			l.payload.TreeUIDsOverflow = true
			changed = true
		}
	}
	return changed
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
