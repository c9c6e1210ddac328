package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Running out of processes or descriptors: one line and exit 71 (or the
// runtime's own crash before anything exists), never exit 2 once the lock
// was published, never a lock left behind, never 126 for a fork that failed.

func init() { helpers["withlimit"] = helperWithLimit }

// nprocUID runs the limited gwlocks: RLIMIT_NPROC counts every task of the
// real uid, and is not enforced for root, so the limit is exact only for a
// uid nobody else uses (the kernel needs no passwd entry for it).
const nprocUID = 47113

// helperWithLimit sets one resource limit (nproc or nofile) and executes
// the test binary with the arguments after it: "withlimit nproc 12
// helper:gwlock run ...".
func helperWithLimit(args []string) int {
	n, err := strconv.Atoi(args[1])
	if err != nil || len(args) < 3 {
		return 120
	}
	resource := map[string]int{"nproc": unix.RLIMIT_NPROC, "nofile": unix.RLIMIT_NOFILE}[args[0]]
	if unix.Setrlimit(resource, &unix.Rlimit{Cur: uint64(n), Max: uint64(n)}) != nil {
		return 121
	}
	exe, _ := os.Executable()
	_ = syscall.Exec(exe, append([]string{exe}, args[2:]...), os.Environ())
	return 122
}

// limitedRun runs `gwlock run -- /bin/true` as nprocUID under one limit and
// checks what must hold whatever the limit: no lock left, no 126, and once
// the lock was published no exit 2 and no goroutine dump. It returns the
// exit code.
func limitedRun(t *testing.T, exe, dir, resource string, n int) int {
	t.Helper()
	return limitedRunWith(t, exe, dir, resource, n, nil, "/bin/true")
}

// limitedRunWith is limitedRun with env added and gateway as the command.
func limitedRunWith(t *testing.T, exe, dir, resource string, n int, env []string, gateway ...string) int {
	t.Helper()
	lock := filepath.Join(dir, resource+strconv.Itoa(n)+".lock")
	argv := append([]string{resource, strconv.Itoa(n), "helper:gwlock", "run", "--lock", lock, "--"}, gateway...)
	cmd := asUser(t, helperCmd(t, "withlimit", argv...), nprocUID, exe)
	cmd.Env = append(cmd.Env, env...)
	r := runCmd(t, cmd)
	published := strings.Contains(r.stderr, "event=acquire-success")
	crashed := strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "fatal error")
	switch {
	case r.code == exitNotExecutable:
		t.Errorf("%s %d: exit 126 (not executable) for a gateway that could not be forked\n%s", resource, n, r.stderr)
	case published && (r.code == exitUsage || crashed):
		t.Errorf("%s %d: exit %d after the lock was published, crashed=%t\n%s", resource, n, r.code, crashed, r.stderr)
	case r.code == exitFailure && strings.Contains(r.stderr, "too many open files"):
		t.Errorf("%s %d: exit 1 for a descriptor the OS refused, want 71\n%s", resource, n, r.stderr)
	case r.code == exitOSErr && !strings.Contains(lastLine(r.stderr), "hint: "):
		t.Errorf("%s %d: exit 71 without a hint on its last line\n%s", resource, n, r.stderr)
	}
	if _, err := os.Lstat(lock); err == nil {
		t.Errorf("%s %d: lock %s left behind (exit %d)\n%s", resource, n, lock, r.code, r.stderr)
	}
	return r.code
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// limitedDir is a lock directory of nprocUID's.
func limitedDir(t *testing.T) string {
	t.Helper()
	// Not t.TempDir: its parent is closed to other users.
	parent, err := os.MkdirTemp("", "gwlock-limit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	mustChmod(t, parent, 0o755)
	dir := filepath.Join(parent, "locks")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nprocUID, nprocUID); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestProcessLimit runs gwlock under every RLIMIT_NPROC from 1 to 24. Below
// what the Go runtime needs to start, it may crash before anything exists;
// above, run either has the threads it needs before it publishes the lock
// or ends in one line and exit 71 without taking it. Fails without the
// threads made ahead (a runtime crash, exit 2, after acquire-success, the
// lock left behind) and with a fork failure reported as 126.
func TestProcessLimit(t *testing.T) {
	requireRoot(t)
	exe, dir := sharedTestBinary(t), limitedDir(t)
	codes := map[int]int{}
	for n := 1; n <= 24; n++ {
		codes[limitedRun(t, exe, dir, "nproc", n)]++
	}
	if codes[0] == 0 || codes[exitOSErr] == 0 {
		t.Errorf("exit codes (code: runs) = %v: want some runs refused with 71 and some that ran", codes)
	}
}

// TestDescriptorLimit runs gwlock under RLIMIT_NOFILE from 4 to 16: a lock
// file or a gateway that cannot be made for want of descriptors is exit 71
// with a hint, never 1 or 126, and no lock is left. Fails with the lock
// file's EMFILE left unclassified (exit 1 at 6).
func TestDescriptorLimit(t *testing.T) {
	requireRoot(t)
	exe, dir := sharedTestBinary(t), limitedDir(t)
	codes := map[int]int{}
	for n := 4; n <= 16; n++ {
		codes[limitedRun(t, exe, dir, "nofile", n)]++
	}
	if codes[exitOSErr] == 0 {
		t.Errorf("exit codes (code: runs) = %v: want a fork refused for want of descriptors, 71", codes)
	}
}

// TestGatewayExhaustsProcesses: a gateway that forks until the user's
// process limit refuses (its sleepers in its group, so run's stop ends
// them) leaves gwlock with no thread to spare while it reaps, records the
// tree, stops the sleepers and collects garbage at every allocation
// (GOGC=1) on 8 and 16 Ps. gwlock made every thread it needs before it
// took the lock, so it never crashes after publishing it. Fails with a
// fixed number of threads reserved whatever GOMAXPROCS: the runtime's
// "fatal error: newosproc", exit 2 after acquire-success.
func TestGatewayExhaustsProcesses(t *testing.T) {
	requireRoot(t)
	exe, dir := sharedTestBinary(t), limitedDir(t)
	// Each sleeper lasts a second: gwlock waits for the gateway's
	// descendants before it releases the lock, reaping and recording them
	// with the process table full.
	mark := "1." + strconv.Itoa(nprocUID)
	t.Cleanup(func() { killSleepers(mark) })
	// The subshell forks sleepers until a fork fails; the gateway's own
	// exit, 5, says it ran to that point.
	gateway := []string{"/bin/sh", "-c", "exec 2>/dev/null; (while sleep " + mark + " & do :; done); exit 5"}
	codes := map[int]int{}
	for _, procs := range []string{"8", "16"} {
		for n := 24; n <= 56; n += 8 {
			env := []string{"GOMAXPROCS=" + procs, "GOGC=1"}
			codes[limitedRunWith(t, exe, dir, "nproc", n, env, gateway...)]++
			killSleepers(mark)
		}
	}
	if codes[5] == 0 {
		t.Errorf("exit codes (code: runs) = %v: want some gateways that ran until their fork failed, 5", codes)
	}
}
