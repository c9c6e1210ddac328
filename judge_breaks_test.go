//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Each test here makes one guarantee's race happen on purpose, so that a
// one-line break of the code that keeps it fails every run.

// TestNoFlockReclaimChecksWhatItRenamed: on a filesystem without kernel
// locks, a successor publishes between the reclaimer's check that the path
// names the dead owner's file and its rename. What the rename took is then
// the successor's file: it must be put back, never removed.
func TestNoFlockReclaimChecksWhatItRenamed(t *testing.T) {
	dir := lockDir(t)
	d := mustOpenDir(t, dir)
	lock := filepath.Join(dir, "n.lock")
	writeLockFile(t, lock, []byte(`{"pid":1}`), 0)
	cur, err := openExisting(d, "n.lock")
	if err != nil {
		t.Fatal(err)
	}
	cur.kernel = false // as on NFS without lockd
	successor := []byte(`{"pid":2,"successor":true}`)
	testHookBeforeRename = func() {
		next := filepath.Join(dir, "next")
		writeLockFile(t, next, successor, 0)
		if err := os.Rename(next, lock); err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookBeforeRename = nil }()
	removed, err := reclaim(cur, d, "n.lock")
	if removed || err != nil {
		t.Errorf("reclaim after a successor published = %v, %v; want false, nil", removed, err)
	}
	if got, err := os.ReadFile(lock); err != nil || !bytes.Equal(got, successor) {
		t.Fatalf("the successor's lock file is gone or changed: %q, %v", got, err)
	}
}

// TestPasserByKeepsNoOrphanUnknown: a live orphaned gateway (a daemon that
// closed its lock descriptor, its launcher SIGKILLed) while a passer-by
// (here the test itself, as a status or a judging starter would) holds the
// file's kernel lock for a moment. The tree lives: the owner is orphaned,
// named by its gateway, not unknown.
func TestPasserByKeepsNoOrphanUnknown(t *testing.T) {
	dir := lockDir(t)
	lock, daemon := startOrphan(t, dir, orphanShapes["daemon-closed"])
	f, err := os.OpenFile(lock, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("the daemon's lock should be free to take: %v", err)
	}
	ev := contendMustWait(t, dir, lock)
	if ev["gateway_pid"] != strconv.Itoa(daemon) {
		t.Errorf("gateway_pid = %s, want the daemon %d", ev["gateway_pid"], daemon)
	}
	if code, rep := statusReport(t, lock); code != statusRunning || rep.State != "orphaned" || rep.GatewayPID != daemon {
		t.Errorf("status: exit %d state %q gateway %d, want orphaned naming %d", code, rep.State, rep.GatewayPID, daemon)
	}
}

// TestIfRunningOKWaitsForAJudgement: --if-running ok facing an owner it
// cannot judge yet (a young lock file without a payload) must wait like
// fail, not give up: here the file goes away while it waits, and it takes
// the lock and runs the gateway.
func TestIfRunningOKWaitsForAJudgement(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "w.lock")
	writeLockFile(t, lock, nil, 0)
	ran := filepath.Join(dir, "ran")
	b := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--timeout", eventWait.String(), "--if-running", "ok",
		"--", testBinary(t), "helper:gateway", "-pidfile", ran)
	if ev := b.waitEvent(t, "acquire-contention"); ev["owner_status"] != "unknown" {
		t.Fatalf("acquire-contention = %v, want owner_status=unknown", ev)
	}
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	if code, out := b.wait(t); code != 0 {
		t.Fatalf("--if-running ok gave up on an owner it could not judge yet: exit %d\n%s", code, out)
	}
	mustExist(t, ran)
}

// TestReleaseUnlinksBeforeUnlocking: at the moment release unlinks the
// lock file its kernel lock must still be held, so that a waiter never
// gets the kernel lock of a file still linked at the path (it would then
// hold a lock nobody else can see is taken, beside the next publisher). A
// waiter blocked in flock on the old file, once it gets the lock, must
// find the file unlinked.
func TestReleaseUnlinksBeforeUnlocking(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "r.lock")
	l, err := acquire(lockOptions{Path: lock, ConfigPath: lock, Timeout: time.Second, Poll: 10 * time.Millisecond, Stale: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waiter, err := os.Open(lock)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	got := make(chan error, 1)
	go func() { got <- syscall.Flock(int(waiter.Fd()), syscall.LOCK_EX) }()
	looked := false
	testHookBeforeUnlink = func() {
		looked = true
		probe, err := os.Open(lock)
		if err != nil {
			t.Errorf("lock file gone before release unlinked it: %v", err)
			return
		}
		defer probe.Close()
		if err := syscall.Flock(int(probe.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != unix.EWOULDBLOCK {
			t.Errorf("flock at the moment of unlink = %v, want EWOULDBLOCK: release unlocked before it unlinked", err)
		}
	}
	defer func() { testHookBeforeUnlink = nil }()
	if err := l.release(nil); err != nil {
		t.Fatal(err)
	}
	if !looked {
		t.Fatal("release never unlinked the file")
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(eventWait):
		t.Fatal("the waiter never got the released file's kernel lock")
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(waiter.Fd()), &st); err != nil || st.Nlink != 0 {
		t.Fatalf("the waiter got the kernel lock of a file with %d links (%v), want 0", st.Nlink, err)
	}
}
