package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWindowsGatewayDiesWithLauncher: on Windows the gateway sits in a job
// object that kills it when the launcher's handle closes, so killing the
// launcher frees the lock and no orphaned gateway keeps running.
func TestWindowsGatewayDiesWithLauncher(t *testing.T) {
	dir := lockDir(t)
	lock, pidfile := filepath.Join(dir, "w.lock"), filepath.Join(dir, "pid")
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-sleep", "60s", "-pidfile", pidfile)
	gw, _ := strconv.Atoi(strings.TrimSpace(string(waitFile(t, pidfile))))
	_ = g.cmd.Process.Kill()
	deadline := time.Now().Add(eventWait)
	for processProbe(gw) == pidPresent {
		if time.Now().After(deadline) {
			t.Fatalf("gateway %d outlived its launcher", gw)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "5s", "--", testBinary(t), "helper:gateway", "-exit", "4")
	if r.code != 4 {
		t.Fatalf("next starter: exit %d, want the gateway's 4\n%s", r.code, r.stderr)
	}
}

// TestWindowsExitCode: the gateway's exit code passes through.
func TestWindowsExitCode(t *testing.T) {
	dir := lockDir(t)
	r := runGwlock(t, nil, "run", "--lock", filepath.Join(dir, "e.lock"), "--", testBinary(t), "helper:gateway", "-exit", "9")
	if r.code != 9 {
		t.Fatalf("exit %d, want 9", r.code)
	}
	if _, err := os.Stat(filepath.Join(dir, "e.lock")); !os.IsNotExist(err) {
		t.Fatalf("lock file left behind: %v", err)
	}
}
