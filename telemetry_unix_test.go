//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stalledExit is how much longer than its own work a gwlock with a stalled
// stderr may take to exit. A healthy one needs milliseconds; one blocked in
// write(2) never exits at all.
const stalledExit = 5 * time.Second

// stalledStderr returns the write end of a pipe, to be a gwlock's stderr,
// whose read end the test holds and never reads: a stuck log collector.
// fill makes the pipe full (a goroutine blocks writing into it) and returns
// once a writer would block. Both ends stay blocking, as in production.
func stalledStderr(t *testing.T) (w *os.File, fill func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	wfd := int(w.Fd()) // Fd puts the descriptor in blocking mode
	t.Cleanup(func() { w.Close() })
	t.Cleanup(func() { r.Close() }) // first: the blocked filler gets EPIPE
	return w, func() {
		t.Helper()
		go func() { _, _ = w.Write(make([]byte, 1<<20)) }()
		deadline := time.Now().Add(eventWait)
		for {
			fds := []unix.PollFd{{Fd: int32(wfd), Events: unix.POLLOUT}}
			n, err := unix.Poll(fds, 0)
			if err != nil && err != unix.EINTR {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("pipe still writable after %s", eventWait)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// mustExitWithin waits for cmd, failing (and killing it) after bound.
func mustExitWithin(t *testing.T, cmd *exec.Cmd, bound time.Duration) (code int, took time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		took = time.Since(start)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), took
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, took
	case <-time.After(bound):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("gwlock still running %s later with its stderr stalled: blocked in a write", bound)
	}
	return 0, 0
}

// TestStalledStderrTimeout: a full stderr does not stretch --timeout.
func TestStalledStderrTimeout(t *testing.T) {
	dir := lockDir(t)
	lock, pidfile := filepath.Join(dir, "s.lock"), filepath.Join(dir, "pid")
	h := startHelper(t, "holder", nil, "-lock", lock)
	waitStdout(t, h, "held")
	w, fill := stalledStderr(t)
	fill()
	cmd := helperCmd(t, "gwlock", "run", "--lock", lock, "--timeout", "1s", "--", testBinary(t), "helper:gateway", "-pidfile", pidfile)
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	code, took := mustExitWithin(t, cmd, time.Second+stalledExit)
	t.Logf("--timeout 1s with stderr full: exit %d after %s", code, took)
	if code != exitBusy {
		t.Fatalf("exit %d, want %d", code, exitBusy)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Fatal("a gateway started beside the holder")
	}
}

// startStalled runs gwlock with a gateway, then stalls its stderr once the
// gateway runs: every line from then on (child-exit, lock-released) meets a
// full pipe. It returns gwlock, the gateway's pid and the lock.
func startStalled(t *testing.T, gatewayArgs ...string) (*exec.Cmd, int, string) {
	t.Helper()
	dir := lockDir(t)
	lock, pidfile := filepath.Join(dir, "s.lock"), filepath.Join(dir, "pid")
	w, fill := stalledStderr(t)
	args := append([]string{"run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-pidfile", pidfile}, gatewayArgs...)
	cmd := helperCmd(t, "gwlock", args...)
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	pid, err := strconv.Atoi(strings.TrimSpace(string(waitFile(t, pidfile))))
	if err != nil {
		t.Fatal(err)
	}
	fill()
	return cmd, pid, lock
}

func mustBeReleased(t *testing.T, lock string, gateway int) {
	t.Helper()
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Errorf("lock file %s left behind: %v", lock, err)
	}
	waitGone(t, gateway)
}

// TestStalledStderrTerm: SIGTERM stops the gateway and gwlock exits with
// its code, releasing the lock, although nothing it says can be written.
func TestStalledStderrTerm(t *testing.T) {
	cmd, gateway, lock := startStalled(t, "-sleep", "60s")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, took := mustExitWithin(t, cmd, stalledExit)
	t.Logf("SIGTERM with stderr full: exit %d after %s", code, took)
	if code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %d, want %d (the gateway died of SIGTERM)", code, 128+int(syscall.SIGTERM))
	}
	mustBeReleased(t, lock, gateway)
}

// TestStalledStderrGatewayExits: a gateway that exits by itself (here on a
// SIGTERM from outside gwlock) ends the run promptly, lock released.
func TestStalledStderrGatewayExits(t *testing.T) {
	cmd, gateway, lock := startStalled(t, "-term-exit", "7")
	if err := syscall.Kill(gateway, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, took := mustExitWithin(t, cmd, stalledExit)
	t.Logf("gateway exit with stderr full: exit %d after %s", code, took)
	if code != 7 {
		t.Errorf("exit %d, want the gateway's 7", code)
	}
	mustBeReleased(t, lock, gateway)
}
