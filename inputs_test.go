package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestGatewayEnv: GWLOCK_LOCK_PATH replaces every inherited entry, whatever
// its position, and leaves everything else as it was.
func TestGatewayEnv(t *testing.T) {
	set := map[string]string{"GWLOCK_LOCK_PATH": "/run/gwlock/new.lock"}
	tests := []struct {
		name string
		base []string
		want []string
	}{
		{"none inherited", []string{"A=1", "B=2"}, []string{"A=1", "B=2", "GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}},
		{"one inherited", []string{"GWLOCK_LOCK_PATH=/bogus", "A=1"}, []string{"A=1", "GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}},
		{"two inherited", []string{"GWLOCK_LOCK_PATH=/a", "A=1", "GWLOCK_LOCK_PATH=/b"}, []string{"A=1", "GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}},
		{"empty inherited", []string{"GWLOCK_LOCK_PATH="}, []string{"GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}},
		{"prefix is another name", []string{"GWLOCK_LOCK_PATHS=x", "GWLOCK_LOCK=y"}, []string{"GWLOCK_LOCK_PATHS=x", "GWLOCK_LOCK=y", "GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}},
		{"drive directory entry", []string{"=C:=C:\\gw", "A=1"}, []string{"=C:=C:\\gw", "A=1", "GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}},
	}
	if runtime.GOOS == "windows" {
		tests = append(tests, struct {
			name string
			base []string
			want []string
		}{"other case on Windows", []string{"Gwlock_Lock_Path=/bogus"}, []string{"GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}})
	}
	for _, tc := range tests {
		if got := gatewayEnv(tc.base, set); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: gatewayEnv(%q) = %q, want %q", tc.name, tc.base, got, tc.want)
		}
	}
}

// TestInheritedLockPathReplaced: a gateway started under an environment that
// already carries GWLOCK_LOCK_PATH (a nested gwlock, a stale export) reads
// the lock it really runs under. Go's os.Getenv returns the first of two
// duplicates, so an appended entry would lose.
func TestInheritedLockPathReplaced(t *testing.T) {
	dir := lockDir(t)
	lock, envfile := filepath.Join(dir, "v.lock"), filepath.Join(dir, "env")
	inherited := []string{"GWLOCK_LOCK_PATH=/bogus"}
	r := runGwlock(t, inherited, "run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-envfile", envfile)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if got := strings.TrimSpace(string(waitFile(t, envfile))); got != lock {
		t.Errorf("gateway's GWLOCK_LOCK_PATH = %q, want %q", got, lock)
	}
	if runtime.GOOS != "linux" {
		return
	}
	// Go deduplicates its own environment at start; the kernel's copy of a
	// running gateway's environment shows every entry it was given.
	pidfile := filepath.Join(dir, "pid")
	bg := startHelper(t, "gwlock", inherited, "run", "--lock", lock, "--",
		testBinary(t), "helper:gateway", "-pidfile", pidfile, "-sleep", "60s")
	pid := strings.TrimSpace(string(waitFile(t, pidfile)))
	raw, err := os.ReadFile("/proc/" + pid + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, kv := range strings.Split(string(raw), "\x00") {
		if strings.HasPrefix(kv, "GWLOCK_LOCK_PATH=") {
			entries = append(entries, kv)
		}
	}
	if len(entries) != 1 || entries[0] != "GWLOCK_LOCK_PATH="+lock {
		t.Errorf("gateway's environment has %q, want exactly GWLOCK_LOCK_PATH=%s", entries, lock)
	}
	bg.signal(t, os.Interrupt)
	bg.wait(t)
}
