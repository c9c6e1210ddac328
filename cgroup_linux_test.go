package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A cgroup's pids.max (systemd's TasksMax, a container's pids limit) refuses
// clones to root too: where one applies, run makes its threads before it
// takes the lock, as under RLIMIT_NPROC; where none applies it makes none.

func init() { helpers["incgroup"] = helperInCgroup }

// helperInCgroup moves itself into the cgroup directory args[0] and
// executes the test binary with the arguments after it.
func helperInCgroup(args []string) int {
	if len(args) < 2 || os.WriteFile(filepath.Join(args[0], "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0) != nil {
		return 120
	}
	exe, _ := os.Executable()
	_ = syscall.Exec(exe, append([]string{exe}, args[1:]...), os.Environ())
	return 122
}

// pidsCgroup makes a cgroup with the pids controller, limited to max
// tasks, or skips where this host lets the test make none.
func pidsCgroup(t *testing.T, max int) string {
	t.Helper()
	requireRoot(t)
	var dir string
	for _, parent := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup"} {
		d, err := os.MkdirTemp(parent, "gwlock-test-")
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "pids.max")); err == nil {
			dir = d
			break
		}
		_ = os.Remove(d)
	}
	if dir == "" {
		t.Skip("no writable cgroup with the pids controller on this host")
	}
	t.Cleanup(func() {
		killCgroup(dir)
		_ = os.Remove(dir)
	})
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(max)), 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

// killCgroup kills every task left in the cgroup dir, so it can be removed.
func killCgroup(dir string) {
	for range 50 {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		pids := strings.Fields(string(b))
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGatewayExhaustsCgroupPids: a root gwlock in a cgroup whose pids.max
// its gateway exhausts, with GOMAXPROCS 8 and a GC at every allocation: it
// never crashes after publishing the lock, and where the cgroup leaves too
// little room for its threads, the helper and the gateway it ends in exit 71
// before taking it. Fails where run makes its threads only under
// RLIMIT_NPROC, or checks only RLIMIT_NPROC's room: the runtime's fatal
// error ("newosproc", or cgo's "pthread_create failed"), after
// acquire-success.
func TestGatewayExhaustsCgroupPids(t *testing.T) {
	dir := t.TempDir()
	mark := "1.4711"
	t.Cleanup(func() { killSleepers(mark) })
	gateway := []string{"/bin/sh", "-c", "exec 2>/dev/null; (while sleep " + mark + " & do :; done); exit 5"}
	codes := map[int]int{}
	for n := 8; n <= 48; n += 8 {
		cg := pidsCgroup(t, n)
		lock := filepath.Join(dir, "pids"+strconv.Itoa(n)+".lock")
		cmd := helperCmd(t, "incgroup", append([]string{cg, "helper:gwlock", "run", "--lock", lock, "--"}, gateway...)...)
		cmd.Env = append(cmd.Env, "GOMAXPROCS=8", "GOGC=1")
		r := runCmd(t, cmd)
		codes[r.code]++
		// Exit 2 is also the gateway's own when its shell cannot fork at
		// all; gwlock's crash is the runtime's dump.
		crashed := strings.Contains(r.stderr, "fatal error") || strings.Contains(r.stderr, "goroutine ")
		gatewaySaid2 := strings.Contains(r.stderr, "event=child-exit") && strings.Contains(r.stderr, " code=2 ")
		if strings.Contains(r.stderr, "acquire-success") && (crashed || (r.code == exitUsage && !gatewaySaid2)) {
			t.Errorf("pids.max %d: exit %d after the lock was published\n%s", n, r.code, r.stderr)
		}
		if _, err := os.Lstat(lock); err == nil {
			t.Errorf("pids.max %d: lock left behind (exit %d)\n%s", n, r.code, r.stderr)
		}
		killSleepers(mark)
	}
	if codes[5] == 0 || codes[exitOSErr] == 0 {
		t.Errorf("exit codes (code: runs) = %v: want some gateways that ran until their fork failed, 5, and some starts refused for want of room, 71", codes)
	}
}

// TestThreadsLimited: the cgroup's pids.max is read as a limit; the test's
// own cgroup, where this host sets none, is not.
func TestThreadsLimited(t *testing.T) {
	cg := pidsCgroup(t, 1000)
	cmd := helperCmd(t, "incgroup", cg, "helper:threadslimited")
	r := runCmd(t, cmd)
	if r.code != 1 {
		t.Errorf("in a cgroup with pids.max 1000: threadsLimited exit %d (1 = limited)\n%s", r.code, r.stderr)
	}
}

func init() {
	helpers["threadslimited"] = func([]string) int {
		if threadsLimited() {
			return 1
		}
		return 0
	}
}

// TestPidsLimited reads pids.max files in made-up hierarchies: a limit at
// any level above the process counts; "max" everywhere, or the root
// cgroup (which has no pids.max), does not; a path this mount namespace
// does not show falls back to the mount's top, and is a limit when even
// that cannot be read.
func TestPidsLimited(t *testing.T) {
	tree := func(files map[string]string) string {
		root := t.TempDir()
		for path, content := range files {
			p := filepath.Join(root, path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if content != "" {
				if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		return root
	}
	for _, c := range []struct {
		name  string
		files map[string]string
		path  string
		want  bool
	}{
		{"root cgroup", map[string]string{"x": ""}, "/", false},
		{"max all the way", map[string]string{"a/pids.max": "max", "a/b/pids.max": "max"}, "/a/b", false},
		{"limit above", map[string]string{"a/pids.max": "500", "a/b/pids.max": "max"}, "/a/b", true},
		{"limit on the process's own", map[string]string{"a/pids.max": "max", "a/b/pids.max": "12"}, "/a/b", true},
		{"no controller below", map[string]string{"a/b/x": ""}, "/a/b", false},
		{"host path, limited top", map[string]string{"pids.max": "100"}, "/docker/abc", true},
		{"host path, top max", map[string]string{"pids.max": "max"}, "/docker/abc", false},
		{"host path, nothing to read", map[string]string{"x": ""}, "/docker/abc", true},
	} {
		root := tree(c.files)
		if got := pidsLimited([]string{filepath.Join(root, "missing"), root}, c.path); got != c.want {
			t.Errorf("%s: pidsLimited = %t, want %t", c.name, got, c.want)
		}
	}
}
