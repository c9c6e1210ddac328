//go:build unix

package main

import (
	"bytes"
	"fmt"
	"gwlock/internal/proc"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gone reports whether pid has exited (absent, or a zombie awaiting its reaper).
func gone(pid int) bool {
	if syscall.Kill(pid, 0) == syscall.ESRCH {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie main thread with live threads is a live process.
	st, err := proc.ParseStat(b)
	return err == nil && st.Exited()
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for time.Now().Before(deadline) {
		if gone(pid) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("pid %d still alive after %s", pid, eventWait)
}

func waitLines(t *testing.T, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); strings.Count(string(b), "\n") >= n {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s has fewer than %d lines after %s", path, n, eventWait)
}

func readPIDs(t *testing.T, path string) []int {
	t.Helper()
	b, _ := os.ReadFile(path)
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, n)
	}
	return pids
}

func TestTermReachesGatewayAndItsGroup(t *testing.T) {
	dir := lockDir(t)
	lock, pidfile, kids := filepath.Join(dir, "t.lock"), filepath.Join(dir, "pid"), filepath.Join(dir, "kids")
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--", testBinary(t), "helper:gateway",
		"-term-exit", "42", "-pidfile", pidfile, "-child-pidfile", kids, "-sleep", "60s")
	waitFile(t, pidfile)
	gw := readPIDs(t, pidfile)[0]
	if pgid, _ := syscall.Getpgid(gw); pgid != gw {
		t.Fatalf("gateway pgid = %d, want its own group %d", pgid, gw)
	}
	waitFile(t, kids)
	g.signal(t, syscall.SIGTERM)
	code, stderr := g.wait(t)
	if code != 42 {
		t.Fatalf("exit = %d, want the gateway's 42; stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Fatal("lock not released")
	}
	mustEvent(t, parseLogfmt(stderr), "lock-released", "held_ms")
	waitGone(t, readPIDs(t, kids)[0]) // the stop signal reached the whole group
}

func TestStopTimeoutKills(t *testing.T) {
	dir := lockDir(t)
	pidfile := filepath.Join(dir, "pid")
	g := startHelper(t, "gwlock", nil, "run", "--lock", filepath.Join(dir, "k.lock"), "--stop-timeout", "300ms", "--",
		testBinary(t), "helper:gateway", "-ignore-term", "-sleep", "60s", "-pidfile", pidfile)
	waitFile(t, pidfile)
	begin := time.Now()
	g.signal(t, syscall.SIGTERM)
	code, stderr := g.wait(t)
	if code != 128+int(syscall.SIGKILL) {
		t.Fatalf("exit = %d, want %d (killed after --stop-timeout); stderr:\n%s", code, 128+int(syscall.SIGKILL), stderr)
	}
	if took := time.Since(begin); took < 300*time.Millisecond {
		t.Fatalf("SIGKILL after %s, before --stop-timeout", took)
	}
	if ev := mustEvent(t, parseLogfmt(stderr), "child-exit", "pid", "code", "signal", "uptime_ms"); ev["signal"] != "9" {
		t.Fatalf("child-exit signal = %s, want 9", ev["signal"])
	}
}

func TestSignalsForwarded(t *testing.T) {
	dir := lockDir(t)
	sigfile, pidfile := filepath.Join(dir, "sigs"), filepath.Join(dir, "pid")
	g := startHelper(t, "gwlock", nil, "run", "--lock", filepath.Join(dir, "f.lock"), "--",
		testBinary(t), "helper:gateway", "-sigfile", sigfile, "-term-exit", "0", "-sleep", "60s", "-pidfile", pidfile)
	waitFile(t, pidfile)
	want := []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}
	for i, s := range want {
		g.signal(t, s)
		deadline := time.Now().Add(eventWait)
		for time.Now().Before(deadline) {
			b, _ := os.ReadFile(sigfile)
			if strings.Count(string(b), "\n") > i {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	g.signal(t, syscall.SIGINT)
	if code, stderr := g.wait(t); code != 0 {
		t.Fatalf("after SIGINT exit = %d, want 0: SIGINT stops the run and the gateway exits 0\n%s", code, stderr)
	}
	b, _ := os.ReadFile(sigfile)
	got := strings.Fields(strings.ReplaceAll(string(b), " ", "_"))
	if len(got) < len(want) {
		t.Fatalf("gateway received %v, want %v", got, want)
	}
	for i, s := range want {
		if got[i] != strings.ReplaceAll(s.String(), " ", "_") {
			t.Errorf("signal %d = %s, want %s", i, got[i], s)
		}
	}
}

func TestExitCodes(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "e.lock")
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"-exit", "0"}, 0},
		{[]string{"-exit", "3"}, 3},
		{[]string{"-term-exit", "-1", "-exit", "1", "-sleep", "1ms"}, 1},
	} {
		r := runGwlock(t, nil, append([]string{"run", "--lock", lock, "--", testBinary(t), "helper:gateway"}, tc.args...)...)
		if r.code != tc.want {
			t.Errorf("gateway %v: exit %d, want %d", tc.args, r.code, tc.want)
		}
	}
	// A gateway killed by a signal: 128+N.
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-sleep", "60s")
	ev := g.waitEvent(t, "child-start")
	pid, _ := strconv.Atoi(ev["pid"])
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if code, _ := g.wait(t); code != 137 {
		t.Fatalf("gateway killed by SIGKILL: exit %d, want 137", code)
	}
}

// TestRestartKeepsLock: --restart on-failure restarts with backoff, and no
// other starter gets the lock between two runs.
func TestRestartKeepsLock(t *testing.T) {
	dir := lockDir(t)
	lock, pidfile := filepath.Join(dir, "r.lock"), filepath.Join(dir, "pids")
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--restart", "on-failure", "--",
		testBinary(t), "helper:gateway", "-exit", "1", "-pidfile", pidfile)
	g.waitEvent(t, "child-exit")
	ev := g.waitEvent(t, "restart")
	if ev["backoff_ms"] != "1000" || ev["attempt"] != "1" || ev["reason"] == "" {
		t.Fatalf("first restart = %v, want attempt 1 after 1000 ms", ev)
	}
	// In the backoff window no gateway runs, and still nobody else may start one.
	if r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "0", "--", "true"); r.code != exitBusy {
		t.Fatalf("a starter got in during the backoff: exit %d", r.code)
	}
	g.waitEvent(t, "child-start")
	ev = g.waitEvent(t, "restart")
	if ev["backoff_ms"] != "2000" || ev["attempt"] != "2" {
		t.Fatalf("second restart = %v, want attempt 2 after 2000 ms (doubling)", ev)
	}
	g.signal(t, syscall.SIGTERM)
	code, _ := g.wait(t)
	if code != 128+int(syscall.SIGTERM) {
		t.Fatalf("stopped during backoff: exit %d, want 143 for the SIGTERM that stopped it, not the last crash's 1", code)
	}
	if n := len(readPIDs(t, pidfile)); n != 2 {
		t.Fatalf("gateway ran %d times, want 2", n)
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Fatal("lock not released")
	}

	// on-failure does not restart a clean exit.
	r := runGwlock(t, nil, "run", "--lock", lock, "--restart", "on-failure", "--", testBinary(t), "helper:gateway", "-exit", "0")
	if r.code != 0 || len(findEvents(r.events(), "restart")) != 0 {
		t.Fatalf("on-failure after exit 0: code %d, restarts %d", r.code, len(findEvents(r.events(), "restart")))
	}
}

func TestRestartDelay(t *testing.T) {
	n := 0
	var got []time.Duration
	for i := 0; i < 7; i++ {
		var d time.Duration
		d, n = restartDelay(n, time.Second)
		got = append(got, d)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("restartDelay sequence = %v, want %v seconds", got, want)
		}
	}
	if d, next := restartDelay(n, backoffResetUp); d != time.Second || next != 1 {
		t.Fatalf("after a healthy run: restartDelay = %v, %d; want 1s, 1", d, next)
	}
}

// TestHUPRestartsUnderLock: SIGHUP restarts the gateway, and the lock file
// stays the same file, held, the whole time.
func TestHUPRestartsUnderLock(t *testing.T) {
	dir := lockDir(t)
	lock, pidfile := filepath.Join(dir, "h.lock"), filepath.Join(dir, "pids")
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-sleep", "60s", "-pidfile", pidfile)
	waitFile(t, pidfile)
	before, err := os.Stat(lock)
	if err != nil {
		t.Fatal(err)
	}
	g.signal(t, syscall.SIGHUP)
	g.waitEvent(t, "child-exit")
	if ev := g.waitEvent(t, "restart"); ev["reason"] != "SIGHUP" {
		t.Fatalf("restart reason = %s", ev["reason"])
	}
	g.waitEvent(t, "child-start")
	waitLines(t, pidfile, 2)
	after, err := os.Stat(lock)
	if err != nil || !os.SameFile(before, after) {
		t.Fatalf("lock file changed across SIGHUP: %v", err)
	}
	if r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "0", "--", "true"); r.code != exitBusy {
		t.Fatalf("a starter got the lock after SIGHUP: exit %d", r.code)
	}
	if n := len(readPIDs(t, pidfile)); n != 2 {
		t.Fatalf("gateway started %d times, want 2", n)
	}
	g.signal(t, syscall.SIGTERM)
	g.wait(t)
}

// TestReadinessAndNotify: gateway-ready and READY=1 arrive when the port
// accepts, not before; STOPPING=1 on stop. Path and abstract sockets.
func TestReadinessAndNotify(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		dir := lockDir(t)
		sockName := filepath.Join(dir, "notify")
		if abstract {
			sockName = "@gwlock-test-" + strconv.Itoa(os.Getpid())
		}
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockName, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		port := freePort(t)
		g := startHelper(t, "gwlock", []string{"NOTIFY_SOCKET=" + sockName}, "run", "--lock", filepath.Join(dir, "n.lock"),
			"--port", strconv.Itoa(port), "--", testBinary(t), "helper:gateway", "-listen", strconv.Itoa(port), "-listen-after", "300ms", "-sleep", "60s")
		ev := g.waitEvent(t, "gateway-ready")
		if w, _ := strconv.ParseFloat(ev["waited_ms"], 64); w < 250 {
			t.Fatalf("gateway-ready after %.1f ms, but the gateway listens only after 300 ms", w)
		}
		if !portListening("127.0.0.1", port, time.Second) {
			t.Fatal("gateway-ready while the port is not listening")
		}
		buf := make([]byte, 256)
		_ = conn.SetReadDeadline(time.Now().Add(eventWait))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if want := "READY=1\nMAINPID=" + strconv.Itoa(g.cmd.Process.Pid); string(buf[:n]) != want {
			t.Fatalf("notify = %q, want %q", buf[:n], want)
		}
		g.signal(t, syscall.SIGTERM)
		n, err = conn.Read(buf)
		if err != nil || string(buf[:n]) != "STOPPING=1" {
			t.Fatalf("notify on stop = %q, %v; want STOPPING=1", buf[:n], err)
		}
		g.wait(t)
	}
}

// TestPortConflict: a port served by someone else: exit 69, no gateway.
func TestPortConflict(t *testing.T) {
	dir := lockDir(t)
	lock, pidfile := filepath.Join(dir, "p.lock"), filepath.Join(dir, "pid")
	port := listeningPort(t)
	r := runGwlock(t, nil, "run", "--lock", lock, "--port", strconv.Itoa(port), "--", testBinary(t), "helper:gateway", "-pidfile", pidfile)
	if r.code != exitPortConflict {
		t.Fatalf("exit = %d, want %d; %s", r.code, exitPortConflict, r.stderr)
	}
	mustEvent(t, r.events(), "port-conflict", "port", "host")
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Fatal("gateway started despite the port conflict")
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Fatal("lock not released after the port conflict")
	}
}

// TestLockLost: deleting, replacing the lock file or removing its directory
// under a running launcher ends the run with lock-lost and exit 1.
func TestLockLost(t *testing.T) {
	for _, how := range []string{"delete", "replace", "remove-dir"} {
		t.Run(how, func(t *testing.T) {
			parent := lockDir(t)
			dir := filepath.Join(parent, "locks")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			lock, pidfile := filepath.Join(dir, "l.lock"), filepath.Join(parent, "pid")
			g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--stale", "300ms", "--stop-timeout", "2s", "--",
				testBinary(t), "helper:gateway", "-sleep", "60s", "-pidfile", pidfile)
			waitFile(t, pidfile)
			switch how {
			case "delete":
				_ = os.Remove(lock)
			case "replace":
				writeLockFile(t, filepath.Join(dir, "other"), []byte(`{"pid":1}`), 0)
				_ = os.Rename(filepath.Join(dir, "other"), lock)
			case "remove-dir":
				_ = os.RemoveAll(dir)
			}
			ev := g.waitEvent(t, "lock-lost")
			code, stderr := g.wait(t)
			if code != exitFailure {
				t.Fatalf("exit = %d, want 1; stderr:\n%s", code, stderr)
			}
			// The final line stands alone: it names the lock and the reason.
			if want := fmt.Sprintf("gwlock: lock %s lost (%s): gateway stopped", lock, ev["reason"]); ev["reason"] == "" || !strings.Contains(stderr, want) {
				t.Errorf("final line: want %q in\n%s", want, stderr)
			}
			waitGone(t, readPIDs(t, pidfile)[0])
			if how == "replace" {
				if b, _ := os.ReadFile(lock); string(b) != `{"pid":1}` {
					t.Fatalf("the replacement was touched: %q", b)
				}
			}
			if n := strings.Count(stderr, "event=lock-lost"); n != 1 {
				t.Fatalf("lock-lost printed %d times", n)
			}
		})
	}
}

func TestGatewayEnvironment(t *testing.T) {
	dir := lockDir(t)
	lock, envfile := filepath.Join(dir, "v.lock"), filepath.Join(dir, "env")
	if r := runGwlock(t, nil, "run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-envfile", envfile); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if got := strings.TrimSpace(string(waitFile(t, envfile))); got != lock {
		t.Fatalf("GWLOCK_LOCK_PATH = %q, want %q", got, lock)
	}
}

// unshareWorks reports whether PID namespaces can be made here (root on Linux).
func unshareWorks(t *testing.T) {
	t.Helper()
	requireLinux(t)
	if err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run(); err != nil {
		t.Skipf("unshare --pid unavailable here (%v); needs root on Linux", err)
	}
}

// TestPID1ReapsZombies: as PID 1 of a PID namespace gwlock reaps orphans
// re-parented to it. The control run (the gateway as PID 1, reaping nothing)
// shows the count can be non-zero.
func TestPID1ReapsZombies(t *testing.T) {
	unshareWorks(t)
	dir := lockDir(t)
	run := func(name string, pid1 ...string) int {
		report := filepath.Join(dir, "zombies-"+name)
		argv := append([]string{"--pid", "--fork", "--mount-proc", testBinary(t)}, pid1...)
		argv = append(argv, "-orphans", "5", "-zombie-report", report)
		cmd := exec.Command("unshare", argv...)
		cmd.Env = cleanEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(waitFile(t, report))))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := run("gwlock", "helper:gwlock", "run", "--lock", filepath.Join(dir, "z.lock"), "--", testBinary(t), "helper:gateway"); n != 0 {
		t.Fatalf("gwlock as PID 1 left %d zombies", n)
	}
	if n := run("control", "helper:gateway"); n == 0 {
		t.Fatal("control: a PID 1 that reaps nothing left 0 zombies, so the count is blind")
	}
}

// TestSubreaper: with --subreaper, orphans of the gateway are reaped by gwlock.
func TestSubreaper(t *testing.T) {
	requireLinux(t)
	dir := lockDir(t)
	report := filepath.Join(dir, "zombies")
	r := runGwlock(t, nil, "run", "--subreaper", "--lock", filepath.Join(dir, "s.lock"), "--",
		testBinary(t), "helper:gateway", "-orphans", "5", "-zombie-report", report)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if n := strings.TrimSpace(string(waitFile(t, report))); n != "0" {
		t.Fatalf("--subreaper left %s zombies", n)
	}
}

// TestStopWhileWaiting: SIGTERM or Ctrl-C to a gwlock still waiting for the
// lock ends it at once with 128+N, starting nothing and leaving nothing.
func TestStopWhileWaiting(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		dir := lockDir(t)
		lock, pidfile := filepath.Join(dir, "w.lock"), filepath.Join(dir, "pid")
		h := startHelper(t, "holder", nil, "-lock", lock)
		waitStdout(t, h, "held")
		before, _ := os.ReadFile(lock)
		w := startHelper(t, "gwlock-named", nil, "run", "--lock", lock, "--timeout", "60s", "--",
			testBinary(t), "helper:gateway", "-pidfile", pidfile)
		// acquire-contention comes after run registered its signals.
		w.waitEvent(t, "acquire-contention")
		begin := time.Now()
		w.signal(t, sig)
		code, stderr := w.wait(t)
		if code != 128+int(sig) {
			t.Fatalf("%v while waiting: exit %d, want %d\n%s", sig, code, 128+int(sig), stderr)
		}
		if took := time.Since(begin); took > 2*time.Second {
			t.Fatalf("%v while waiting took %s to end gwlock", sig, took)
		}
		if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
			t.Fatal("a gateway started after the stop signal")
		}
		if after, _ := os.ReadFile(lock); !bytes.Equal(before, after) {
			t.Fatal("the holder's lock file changed")
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Fatalf("lock dir holds %d entries, want only the holder's lock", len(ents))
		}
	}
}

func TestShouldRestart(t *testing.T) {
	for _, tc := range []struct {
		policy string
		code   int
		want   bool
	}{
		{"no", 1, false}, {"no", 0, false},
		{"on-failure", 0, false}, {"on-failure", 1, true}, {"on-failure", 137, true},
		{"always", 0, true}, {"always", 3, true},
	} {
		if got := shouldRestartPolicy(tc.policy, tc.code); got != tc.want {
			t.Errorf("shouldRestartPolicy(%s, %d) = %v, want %v", tc.policy, tc.code, got, tc.want)
		}
	}
}

// TestHUPDuringBackoff: SIGHUP while a crashed gateway waits out its backoff
// starts it again at once; --restart always restarts a clean exit too.
func TestHUPDuringBackoff(t *testing.T) {
	dir := lockDir(t)
	lock, pidfile := filepath.Join(dir, "b.lock"), filepath.Join(dir, "pids")
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--restart", "always", "--",
		testBinary(t), "helper:gateway", "-exit", "0", "-pidfile", pidfile)
	g.waitEvent(t, "child-exit")
	if ev := g.waitEvent(t, "restart"); ev["backoff_ms"] != "1000" {
		t.Fatalf("restart after a clean exit under --restart always = %v, want a 1000 ms backoff", ev)
	}
	begin := time.Now()
	g.signal(t, syscall.SIGHUP)
	g.waitEvent(t, "child-start")
	if took := time.Since(begin); took > 500*time.Millisecond {
		t.Fatalf("SIGHUP during the backoff started the gateway after %s, not at once", took)
	}
	waitLines(t, pidfile, 2)
	g.signal(t, syscall.SIGTERM)
	g.wait(t)
}
