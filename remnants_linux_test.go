package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// What gwlock says when the gateway's main process exits and the rest of
// its tree is already exiting.

// TestExitingRemnantsUnnamed: the gateway's main process exits while its
// worker is a zombie that gwlock cannot reap yet. Nothing of the tree lives,
// so no gateway-descendants line may name it "unknown" (nor say it is gone:
// nothing was announced), and the life ends once the zombie is reaped.
//
// The worker stays unreapable by ptrace: the test traces it, so its exit is
// the tracer's to collect first; until then gwlock, its new parent, finds a
// child left (no ECHILD) and no live process among its descendants. Fails
// with the line written whatever the listing found: pids=unknown.
func TestExitingRemnantsUnnamed(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to trace a process it did not start")
	}
	runtime.LockOSThread() // ptrace requests come from the tracing thread
	defer runtime.UnlockOSThread()
	dir := lockDir(t)
	workerPids := filepath.Join(dir, "worker")
	g := startRun(t, dir, nil, "-child-pidfile", workerPids, "-sleep", "60s")
	gateway := g.gatewayPID(t)
	waitFile(t, workerPids)
	worker := readPIDs(t, workerPids)[0]
	if err := unix.PtraceSeize(worker); err != nil {
		t.Skipf("cannot trace the worker: %v", err)
	}
	_ = syscall.Kill(worker, syscall.SIGKILL)
	waitZombie(t, worker)
	_ = syscall.Kill(gateway, syscall.SIGKILL)
	g.waitEvent(t, "child-exit")
	var ws unix.WaitStatus
	if _, err := unix.Wait4(worker, &ws, unix.WALL, nil); err != nil {
		t.Fatalf("wait4 the traced worker: %v", err)
	}
	code, stderr := g.wait(t)
	if code != signalExit(int(syscall.SIGKILL)) {
		t.Fatalf("exit %d, want %d\n%s", code, signalExit(int(syscall.SIGKILL)), stderr)
	}
	if lines := findEvents(parseLogfmt(stderr), "gateway-descendants"); len(lines) > 0 {
		t.Fatalf("gateway-descendants with nothing alive to name: %v", lines)
	}
	if strings.Contains(stderr, "gateway-descendants-gone") {
		t.Fatalf("gateway-descendants-gone after no gateway-descendants:\n%s", stderr)
	}
}

// waitZombie waits until pid has exited and awaits its reaper.
func waitZombie(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(eventWait); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatalf("pid %d: %v, want a zombie", pid, err)
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			return
		}
	}
	t.Fatalf("pid %d not a zombie after %s", pid, eventWait)
}
