//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 9: the lock lives exactly as long as the gateway, whatever shape the
// gateway's life takes, and every report about the holder is true. These
// tests need Linux: the subreaper, the parent-death signal and /proc.

// runningGwlock is a `gwlock run` in the background whose gateway writes its
// pid (and every signal it gets) to files in dir.
type runningGwlock struct {
	*background
	lock, pidfile, sigfile string
}

func startRun(t *testing.T, dir string, runFlags []string, gatewayFlags ...string) *runningGwlock {
	t.Helper()
	r := &runningGwlock{lock: filepath.Join(dir, "g.lock"), pidfile: filepath.Join(dir, "pid"), sigfile: filepath.Join(dir, "sig")}
	args := append([]string{"run", "--lock", r.lock}, runFlags...)
	args = append(args, "--", testBinary(t), "helper:gateway", "-pidfile", r.pidfile, "-sigfile", r.sigfile)
	r.background = startHelper(t, "gwlock", nil, append(args, gatewayFlags...)...)
	return r
}

// gatewayPID waits for the (first) gateway, or daemon, to say it is up.
func (r *runningGwlock) gatewayPID(t *testing.T) int {
	t.Helper()
	waitFile(t, r.pidfile)
	return readPIDs(t, r.pidfile)[0]
}

func mustExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("%s: %v, want it in place", path, err)
	}
}

func mustNotExist(t *testing.T, path, why string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("%s exists (%v): %s", path, err, why)
	}
}

func statusReport(t *testing.T, lock string) (int, report) {
	t.Helper()
	r := runGwlock(t, nil, "status", "--json", "--lock", lock)
	var rep report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	return r.code, rep
}

// TestDaemonizingGatewayKeepsLock (issue 9, case 1): a gateway whose main
// process starts a daemon in a new session and exits 0 at once. gwlock must
// keep the lock, keep reporting a running owner, refuse a second starter,
// and release and exit only when the daemon is gone, with the daemon's code.
// The daemon either keeps the inherited lock descriptor or closes it, as
// daemons that close every file do: the tree, not the descriptor, decides.
func TestDaemonizingGatewayKeepsLock(t *testing.T) {
	for _, closeLock := range []bool{false, true} {
		t.Run("close-lock="+strconv.FormatBool(closeLock), func(t *testing.T) {
			dir := lockDir(t)
			flags := []string{"-daemonize", "-sleep", "60s"}
			if closeLock {
				flags = append(flags, "-close-lock")
			}
			g := startRun(t, dir, nil, flags...)
			daemon := g.gatewayPID(t)
			ev := g.waitEvent(t, "gateway-descendants")
			if !strings.Contains(","+ev["pids"]+",", ","+strconv.Itoa(daemon)+",") {
				t.Errorf("gateway-descendants pids=%s, want the daemon %d among them", ev["pids"], daemon)
			}
			mustExist(t, g.lock)
			if code, rep := statusReport(t, g.lock); code != statusRunning || rep.State != "running" {
				t.Fatalf("status while the daemon serves: exit %d state %s, want %d running", code, rep.State, statusRunning)
			}
			second := filepath.Join(dir, "second")
			r := runGwlock(t, nil, "run", "--lock", g.lock, "--timeout", "300ms", "--", testBinary(t), "helper:gateway", "-pidfile", second)
			if r.code != exitBusy {
				t.Fatalf("second starter while the daemon serves: exit %d, want %d\n%s", r.code, exitBusy, r.stderr)
			}
			mustNotExist(t, second, "a second gateway ran beside the daemon")
			_ = syscall.Kill(daemon, syscall.SIGKILL)
			code, out := g.wait(t)
			if code != 128+int(syscall.SIGKILL) {
				t.Errorf("gwlock exit = %d, want %d (the daemon's death)\n%s", code, 128+int(syscall.SIGKILL), out)
			}
			if len(findEvents(parseLogfmt(out), "gateway-descendants-gone")) != 1 {
				t.Errorf("no gateway-descendants-gone line:\n%s", out)
			}
			mustNotExist(t, g.lock, "the lock outlived every gateway process")
		})
	}
}

// TestDaemonizingGatewayStopped: a stop signal reaches a daemon that left
// gwlock's process group (setsid), and gwlock exits only once it is gone.
func TestDaemonizingGatewayStopped(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		dir := lockDir(t)
		g := startRun(t, dir, nil, "-daemonize", "-sleep", "60s")
		daemon := g.gatewayPID(t)
		g.waitEvent(t, "gateway-descendants")
		g.signal(t, sig)
		code, out := g.wait(t)
		if !gone(daemon) {
			t.Fatalf("%v: gwlock exited (%d) while its daemon %d lives\n%s", sig, code, daemon, out)
		}
		if got := strings.TrimSpace(string(waitFile(t, g.sigfile))); got != sig.String() {
			t.Errorf("%v: the daemon got %q", sig, got)
		}
		mustNotExist(t, g.lock, "lock left after every gateway process is gone")
	}
}

// TestDaemonizingGatewayRestart: with --restart always, and with on-failure
// on a port the daemon serves, gwlock never starts a gateway over a live
// daemon: each daemon holds a record lock on a marker for its life, so two at
// once are caught; and the daemon's port is never called a conflict.
func TestDaemonizingGatewayRestart(t *testing.T) {
	t.Run("always", func(t *testing.T) {
		dir := lockDir(t)
		marker := filepath.Join(dir, "marker")
		g := startRun(t, dir, []string{"--restart", "always"}, "-daemonize", "-sleep", "150ms", "-exclusive", marker)
		waitLines(t, g.pidfile, 3)
		g.signal(t, syscall.SIGTERM)
		_, out := g.wait(t)
		if b, err := os.ReadFile(marker + ".violations"); err == nil {
			t.Fatalf("a restart ran beside a live daemon:\n%s\n%s", b, out)
		}
		mustNotExist(t, g.lock, "lock left after the stop")
	})
	t.Run("on-failure-port", func(t *testing.T) {
		dir := lockDir(t)
		port := freePort(t)
		g := startRun(t, dir, []string{"--restart", "on-failure", "--port", strconv.Itoa(port)},
			"-daemonize", "-exit", "1", "-listen", strconv.Itoa(port), "-sleep", "60s")
		daemon := g.gatewayPID(t)
		g.waitEvent(t, "gateway-ready")
		if code, rep := statusReport(t, g.lock); code != statusRunning || rep.PortListening == nil || !*rep.PortListening {
			t.Fatalf("status: exit %d, %+v; want running with the daemon's port listening", code, rep)
		}
		_ = syscall.Kill(daemon, syscall.SIGKILL)
		g.waitEvent(t, "gateway-descendants-gone")
		ev := g.waitEvent(t, "restart")
		if ev["reason"] != "exit code 137" {
			t.Errorf("restart reason = %s, want the daemon's exit code 137", ev["reason"])
		}
		g.signal(t, syscall.SIGTERM)
		code, out := g.wait(t)
		if code == exitPortConflict || strings.Contains(out, "port-conflict") {
			t.Fatalf("the daemon's own port was called a conflict: exit %d\n%s", code, out)
		}
	})
}

// TestLauncherKilledStopsGateway (issue 9, case 2): SIGKILL the launcher, or
// its whole process group: the gateway gets the stop signal from the kernel,
// exits, and the next starter holds the lock at once.
func TestLauncherKilledStopsGateway(t *testing.T) {
	for _, group := range []bool{false, true} {
		dir := lockDir(t)
		lock, pidfile, sigfile := filepath.Join(dir, "k.lock"), filepath.Join(dir, "pid"), filepath.Join(dir, "sig")
		cmd := helperCmd(t, "gwlock", "run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-sleep", "60s", "-pidfile", pidfile, "-sigfile", sigfile)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFile(t, pidfile)
		gw := readPIDs(t, pidfile)[0]
		target := cmd.Process.Pid
		if group {
			target = -target
		}
		_ = syscall.Kill(target, syscall.SIGKILL)
		_ = cmd.Wait()
		waitGone(t, gw)
		if got := strings.TrimSpace(string(waitFile(t, sigfile))); got != "terminated" {
			t.Errorf("group=%t: gateway got %q, want SIGTERM from its launcher's death", group, got)
		}
		mustRecover(t, runGwlock(t, nil, "run", "--lock", lock, "--timeout", "2s", "--", "true"), reasonOwnerDead)
	}
}

// TestLauncherKilledStubbornGateway (issue 9, cases 2 and 3): a gateway that
// ignores the stop signal outlives its killed launcher. It keeps the lock
// (fd 3), and every report names it truthfully: status says orphaned with
// the gateway alive and the launcher dead, a contender says orphaned, the
// busy line names the gateway, --if-running ok sees a live owner at once.
func TestLauncherKilledStubbornGateway(t *testing.T) {
	dir := lockDir(t)
	g := startRun(t, dir, nil, "-ignore-term", "-sleep", "60s")
	gw := g.gatewayPID(t)
	launcher := g.cmd.Process.Pid
	_ = g.cmd.Process.Kill()
	waitGone(t, launcher)
	if gone(gw) {
		t.Fatal("the stubborn gateway died; this test needs it alive")
	}
	code, rep := statusReport(t, g.lock)
	if code != statusRunning || rep.State != "orphaned" || rep.GatewayPID != gw ||
		rep.GatewayAlive == nil || !*rep.GatewayAlive || rep.LauncherAlive == nil || *rep.LauncherAlive {
		t.Fatalf("status: exit %d %+v; want orphaned, gateway %d alive, launcher dead", code, rep, gw)
	}
	if !strings.Contains(","+pidList(rep.Holders)+",", ","+strconv.Itoa(gw)+",") {
		t.Errorf("status holders = %v, want the gateway %d", rep.Holders, gw)
	}
	text := runGwlock(t, nil, "status", "--lock", g.lock)
	if !strings.Contains(text.stdout, "state=orphaned") || !strings.Contains(text.stdout, "launcher=dead") || !strings.Contains(text.stdout, "gateway=alive") {
		t.Errorf("status line = %q", text.stdout)
	}
	r := runGwlock(t, nil, "run", "--lock", g.lock, "--timeout", "200ms", "--", "true")
	if r.code != exitBusy {
		t.Fatalf("contender: exit %d, want %d\n%s", r.code, exitBusy, r.stderr)
	}
	ev := mustEvent(t, r.events(), "acquire-contention", "owner_status")
	if ev["owner_status"] != "orphaned" || ev["gateway_pid"] != strconv.Itoa(gw) {
		t.Errorf("acquire-contention = %v; want owner_status=orphaned gateway_pid=%d", ev, gw)
	}
	if strings.Contains(r.stderr, "(alive)") || !strings.Contains(r.stderr, "orphaned gateway pid "+strconv.Itoa(gw)) {
		t.Errorf("busy line does not name the orphaned gateway:\n%s", r.stderr)
	}
	ok := runGwlock(t, nil, "run", "--lock", g.lock, "--timeout", "10s", "--if-running", "ok", "--", "true")
	if ok.code != 0 || len(findEvents(ok.events(), "already-running")) != 1 {
		t.Fatalf("--if-running ok with an orphaned gateway: exit %d\n%s", ok.code, ok.stderr)
	}
	if w, _ := strconv.ParseFloat(mustEvent(t, ok.events(), "already-running")["waited_ms"], 64); w > 5000 {
		t.Errorf("--if-running ok waited %.0f ms for an established owner", w)
	}
	_ = syscall.Kill(gw, syscall.SIGKILL)
	waitGone(t, gw)
	mustRecover(t, runGwlock(t, nil, "run", "--lock", g.lock, "--timeout", "2s", "--", "true"), reasonOwnerDead)
}

// TestNoFlockOrphanedGateway (issue 9, case 4): without kernel locks (ENOLCK,
// as on NFS without lockd), a dead launcher whose recorded gateway still
// lives is not a dead owner: no second gateway starts. Both the case where
// the first holder had flock and only the starter lacks it, and the case
// where neither has it.
func TestNoFlockOrphanedGateway(t *testing.T) {
	for _, first := range []string{"gwlock", "gwlock-noflock"} {
		t.Run(first, func(t *testing.T) {
			dir := lockDir(t)
			lock, pidfile, second := filepath.Join(dir, "n.lock"), filepath.Join(dir, "pid"), filepath.Join(dir, "second")
			g := startHelper(t, first, nil, "run", "--lock", lock, "--stale", "600ms", "--",
				testBinary(t), "helper:gateway", "-ignore-term", "-sleep", "60s", "-pidfile", pidfile)
			waitFile(t, pidfile)
			gw := readPIDs(t, pidfile)[0]
			_ = g.cmd.Process.Kill()
			waitGone(t, g.cmd.Process.Pid)
			if gone(gw) {
				t.Fatal("the stubborn gateway died; this test needs it alive")
			}
			r := runGwlockHelper(t, "gwlock-noflock", "run", "--lock", lock, "--timeout", "1s", "--stale", "600ms", "--",
				testBinary(t), "helper:gateway", "-pidfile", second)
			if r.code != exitBusy {
				t.Fatalf("starter without flock beside an orphaned gateway: exit %d, want %d\n%s", r.code, exitBusy, r.stderr)
			}
			mustNotExist(t, second, "a second gateway started beside the orphaned one")
			if ev := mustEvent(t, r.events(), "acquire-contention", "owner_status"); ev["owner_status"] != "orphaned" {
				t.Errorf("owner_status = %s, want orphaned", ev["owner_status"])
			}
			_ = syscall.Kill(gw, syscall.SIGKILL)
			waitGone(t, gw)
			mustRecover(t, runGwlockHelper(t, "gwlock-noflock", "run", "--lock", lock, "--timeout", "2s", "--stale", "600ms", "--", "true"), reasonOwnerDead)
		})
	}
}

// TestStatusNeverHoldsDeadOwnersLock (issue 9, case 6): status probes a dead
// owner's port (here one that never answers); suspended right then, it must
// not keep the dead owner's kernel lock from a starter that would recover it.
func TestStatusNeverHoldsDeadOwnersLock(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "p.lock")
	h := startHelper(t, "holder", nil, "-lock", lock)
	waitStdout(t, h, "held")
	// The holder's payload names the black-hole port; then the holder dies.
	self := selfFacts()
	writeLockFile(t, lock, mustJSON(t, map[string]any{"pid": deadPID(t), "flock": true, "hostname": self.hostname, "port": blackhole(t)}), 0)
	_ = h.cmd.Process.Kill()
	waitGone(t, h.cmd.Process.Pid)
	st := helperCmd(t, "gwlock", "status", "--lock", lock)
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Process.Kill(); _ = st.Wait() })
	// Stop status while its probe is under way: its socket is open.
	waitSocket(t, st.Process.Pid)
	_ = syscall.Kill(st.Process.Pid, syscall.SIGSTOP)
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "0", "--", "true")
	_ = syscall.Kill(st.Process.Pid, syscall.SIGCONT)
	mustRecover(t, r, reasonOwnerDead)
}

// waitSocket waits until pid has a socket open (status is probing a port).
func waitSocket(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	for time.Now().Before(deadline) {
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			if l, _ := os.Readlink(dir + fd.Name()); strings.HasPrefix(l, "socket:") {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("pid %d never opened a socket", pid)
}

// TestIfRunningOKNeedsALiveOwner (issue 9, case 7): an empty or corrupt
// young lock file proves no gateway runs: --if-running ok waits like fail and
// ends in 75, never in a 0 that tells launchd all is well.
func TestIfRunningOKNeedsALiveOwner(t *testing.T) {
	for _, contents := range []string{"", "{garbage"} {
		dir := lockDir(t)
		lock := filepath.Join(dir, "u.lock")
		writeLockFile(t, lock, []byte(contents), 0)
		r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "300ms", "--if-running", "ok", "--", "true")
		if r.code != exitBusy {
			t.Fatalf("--if-running ok with an unknown owner (%q): exit %d, want %d\n%s", contents, r.code, exitBusy, r.stderr)
		}
	}
}

// TestDaemonClosedLockLauncherKilled: the worst shape at once. The gateway
// daemonizes, the daemon closes the inherited lock descriptor, and then the
// launcher is SIGKILLed. No kernel lock is left and no parent-death signal
// reaches the daemon, yet it serves: the payload names it (gwlock recorded
// the tree's survivor), so the next starter finds an orphaned owner, not a
// dead one, and starts no second gateway.
func TestDaemonClosedLockLauncherKilled(t *testing.T) {
	dir := lockDir(t)
	g := startRun(t, dir, nil, "-daemonize", "-close-lock", "-sleep", "60s")
	daemon := g.gatewayPID(t)
	g.waitEvent(t, "gateway-descendants")
	_ = g.cmd.Process.Kill()
	waitGone(t, g.cmd.Process.Pid)
	t.Cleanup(func() { _ = syscall.Kill(daemon, syscall.SIGKILL) })
	second := filepath.Join(dir, "second")
	r := runGwlock(t, nil, "run", "--lock", g.lock, "--timeout", "500ms", "--", testBinary(t), "helper:gateway", "-pidfile", second)
	if r.code != exitBusy {
		t.Fatalf("starter beside a live daemon: exit %d, want %d\n%s", r.code, exitBusy, r.stderr)
	}
	mustNotExist(t, second, "a second gateway started beside the daemon")
	if ev := mustEvent(t, r.events(), "acquire-contention", "owner_status"); ev["owner_status"] != "orphaned" || ev["gateway_pid"] != strconv.Itoa(daemon) {
		t.Errorf("acquire-contention = %v, want orphaned with gateway_pid=%d", ev, daemon)
	}
	if _, rep := statusReport(t, g.lock); rep.State != "orphaned" || rep.GatewayPID != daemon {
		t.Errorf("status = %+v, want orphaned naming the daemon %d", rep, daemon)
	}
	_ = syscall.Kill(daemon, syscall.SIGKILL)
	waitGone(t, daemon)
	mustRecover(t, runGwlock(t, nil, "run", "--lock", g.lock, "--timeout", "2s", "--", "true"), reasonOwnerDead)
}

// TestZombieIsDead: a gateway that exited but is not yet reaped (its
// launcher was killed, and init collects orphans at leisure) holds nothing:
// the judgement must not take its pid, or its unchanged start time, for a
// live orphaned gateway and wait for the reaper.
func TestZombieIsDead(t *testing.T) {
	cmd := helperCmd(t, "gateway", "-exit", "0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Wait() })
	waitGone(t, pid) // gone() counts a zombie as gone; it is not reaped yet
	if st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); !strings.Contains(string(st), ") Z ") {
		t.Fatalf("pid %d is not a zombie: %s", pid, st)
	}
	if got := processProbe(pid); got != pidAbsent {
		t.Fatalf("processProbe(zombie) = %v, want pidAbsent", got)
	}
	start, ok := processStartTime(pid)
	if !ok {
		t.Fatal("no start time for the zombie")
	}
	self := selfFacts()
	raw := mustJSON(t, map[string]any{"pid": deadPID(t), "flock": true, "hostname": self.hostname, "childPid": pid, "childStartTime": start})
	if v := judgeOwner(raw, 0, time.Minute, true, localFacts); v.reason != reasonOwnerDead {
		t.Fatalf("judgeOwner with a zombie gateway = %+v, want owner-dead", v)
	}
}
