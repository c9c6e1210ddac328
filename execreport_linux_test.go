package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The exec helper's report is its own: whatever its runtime writes, a
// gateway that was executed is supervised, with the lock held, and its exit
// is run's.

// TestRuntimeOutputIsNoHelperDeath runs gateways whose environment makes
// every Go runtime talk on stderr at start (GODEBUG=inittrace=1) and while
// it runs (schedtrace=1), the exec helper's too: gwlock supervises the one
// gateway, a second run finds the lock held, and run exits with the
// gateway's code. Fails when the helper's runtime output is taken for its
// death: run exits 71 and releases the lock while its gateway runs on.
// The helper here is gwlock itself, the one with a runtime to talk.
func TestRuntimeOutputIsNoHelperDeath(t *testing.T) {
	dir := lockDir(t)
	for _, godebug := range []string{"inittrace=1", "schedtrace=1"} {
		lock := filepath.Join(dir, strings.TrimSuffix(godebug, "=1")+".lock")
		pidfile := filepath.Join(dir, strings.TrimSuffix(godebug, "=1")+".pid")
		env := []string{"GODEBUG=" + godebug}
		run := helperCmd(t, "gwlock-gohelper", "run", "--lock", lock, "--",
			testBinary(t), "helper:gateway", "-pidfile", pidfile, "-term-exit", "7")
		run.Env = append(run.Env, env...)
		// A file, not a pipe: schedtrace writes every millisecond.
		stderr, err := os.Create(filepath.Join(dir, strings.TrimSuffix(godebug, "=1")+".stderr"))
		if err != nil {
			t.Fatal(err)
		}
		defer stderr.Close()
		run.Stderr = stderr
		if err := run.Start(); err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(waitFile(t, pidfile))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		second := runGwlock(t, env, "run", "--lock", lock, "--timeout", "0", "--", "true")
		if second.code != exitBusy {
			t.Errorf("GODEBUG=%s: a second run while the gateway runs: exit %d, want %d\n%s", godebug, second.code, exitBusy, second.stderr)
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		_ = run.Wait()
		if code := run.ProcessState.ExitCode(); code != 7 {
			b, _ := os.ReadFile(stderr.Name())
			t.Errorf("GODEBUG=%s: run exit %d, want the gateway's 7\n%s", godebug, code, lastLines(string(b), 5))
		}
		if _, err := os.Lstat(lock); err == nil {
			t.Errorf("GODEBUG=%s: lock left behind", godebug)
		}
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
