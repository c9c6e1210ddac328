//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The lock lives exactly as long as the gateway, whatever shape the
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

// TestDaemonizingGatewayKeepsLock: a gateway whose main
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
		if ev["reason"] != "exit code 1" {
			t.Errorf("restart reason = %s, want the main process's failure, exit code 1", ev["reason"])
		}
		g.signal(t, syscall.SIGTERM)
		code, out := g.wait(t)
		if code == exitPortConflict || strings.Contains(out, "port-conflict") {
			t.Fatalf("the daemon's own port was called a conflict: exit %d\n%s", code, out)
		}
	})
}

// TestLauncherKilledStopsGateway: SIGKILL the launcher, or
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

// TestLauncherKilledStubbornGateway: a gateway that
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
	checkOrphanedStatus(t, g.lock, gw)
	checkOrphanedContention(t, g.lock, gw)
	killThenRecover(t, g.lock, gw)
}

// checkOrphanedStatus: status names the orphaned gateway gw alive, among
// the lock's holders, and its launcher dead.
func checkOrphanedStatus(t *testing.T, lock string, gw int) {
	t.Helper()
	code, rep := statusReport(t, lock)
	if code != statusRunning || rep.State != "orphaned" || rep.GatewayPID != gw ||
		rep.GatewayAlive == nil || !*rep.GatewayAlive || rep.LauncherAlive == nil || *rep.LauncherAlive {
		t.Fatalf("status: exit %d %+v; want orphaned, gateway %d alive, launcher dead", code, rep, gw)
	}
	if !strings.Contains(","+pidList(rep.Holders)+",", ","+strconv.Itoa(gw)+",") {
		t.Errorf("status holders = %v, want the gateway %d", rep.Holders, gw)
	}
	text := runGwlock(t, nil, "status", "--lock", lock)
	if !strings.Contains(text.stdout, "state=orphaned") || !strings.Contains(text.stdout, "launcher=dead") || !strings.Contains(text.stdout, "gateway=alive") {
		t.Errorf("status line = %q", text.stdout)
	}
}

// checkOrphanedContention: a contender is told the orphaned gateway gw
// holds the lock, and --if-running ok accepts it at once.
func checkOrphanedContention(t *testing.T, lock string, gw int) {
	t.Helper()
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "200ms", "--", "true")
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
	ok := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "10s", "--if-running", "ok", "--", "true")
	if ok.code != 0 || len(findEvents(ok.events(), "already-running")) != 1 {
		t.Fatalf("--if-running ok with an orphaned gateway: exit %d\n%s", ok.code, ok.stderr)
	}
	if w, _ := strconv.ParseFloat(mustEvent(t, ok.events(), "already-running")["waited_ms"], 64); w > 5000 {
		t.Errorf("--if-running ok waited %.0f ms for an established owner", w)
	}
}

// TestNoFlockOrphanedGateway: without kernel locks (ENOLCK,
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

// TestStatusNeverHoldsDeadOwnersLock: status probes a dead
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

// TestIfRunningOKNeedsALiveOwner: an empty or corrupt
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
	killThenRecover(t, g.lock, daemon)
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
	if v := judgeRaw(raw, 0, time.Minute, true, localFacts); v.reason != reasonOwnerDead {
		t.Fatalf("judge with a zombie gateway = %+v, want owner-dead", v)
	}
}

// killThenRecover SIGKILLs the last live process of a dead launcher's
// gateway tree; the next starter must then recover the lock at once.
func killThenRecover(t *testing.T, lock string, pid int) {
	t.Helper()
	_ = syscall.Kill(pid, syscall.SIGKILL)
	waitGone(t, pid)
	mustRecover(t, runGwlock(t, nil, "run", "--lock", lock, "--timeout", "2s", "--", "true"), reasonOwnerDead)
}

// contendMustWait runs a second starter on lock while the first owner's
// launcher is dead and some of its gateway lives: it must start nothing,
// end in 75, and name the owner orphaned.
func contendMustWait(t *testing.T, dir, lock string) map[string]string {
	t.Helper()
	second := filepath.Join(dir, "second")
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "500ms", "--", testBinary(t), "helper:gateway", "-pidfile", second)
	if r.code != exitBusy {
		t.Fatalf("starter beside a live gateway tree: exit %d, want %d\n%s", r.code, exitBusy, r.stderr)
	}
	mustNotExist(t, second, "a second gateway started beside the first one's tree")
	ev := mustEvent(t, r.events(), "acquire-contention", "owner_status")
	if ev["owner_status"] != "orphaned" {
		t.Errorf("owner_status = %s, want orphaned", ev["owner_status"])
	}
	return ev
}

// TestWrapperChildKeepsLock: the gateway's main process is a
// wrapper that stays (sh -c 'server & wait' shapes) and its server, in the
// same process group, closed every inherited descriptor and ignores
// SIGTERM. The launcher is SIGKILLed; its death signal, SIGTERM to the
// group, ends the wrapper alone. The server holds no kernel lock, yet it
// serves: its process group names it, and the next starter starts nothing.
func TestWrapperChildKeepsLock(t *testing.T) {
	dir := lockDir(t)
	childPids := filepath.Join(dir, "child")
	g := startRun(t, dir, nil, "-child-pidfile", childPids, "-child-close-lock", "-child-ignore-term", "-sleep", "60s")
	main := g.gatewayPID(t)
	waitFile(t, childPids)
	server := readPIDs(t, childPids)[0]
	t.Cleanup(func() { _ = syscall.Kill(server, syscall.SIGKILL) })
	_ = g.cmd.Process.Kill()
	waitGone(t, main)
	if gone(server) {
		t.Fatal("the server died; this test needs it alive")
	}
	contendMustWait(t, dir, g.lock)
	killThenRecover(t, g.lock, server)
}

// TestUnrecordedDaemonKeepsLock: the launcher recorded the gateway's main
// process, then was frozen before it could record anything else; meanwhile
// the gateway double-forked into a new session, its daemon closed fd 3, and
// the main process exited. The launcher is then SIGKILLed. Nothing in the
// payload names the daemon and no group or kernel lock leads to it, but it
// serves: the next starter must start nothing, and unlock must refuse.
func TestUnrecordedDaemonKeepsLock(t *testing.T) {
	dir := lockDir(t)
	goFile := filepath.Join(dir, "go")
	g := startRun(t, dir, []string{"--stale", "60s"}, "-await", goFile, "-daemonize", "-daemonize", "-close-lock", "-sleep", "60s")
	main, _ := strconv.Atoi(g.waitEvent(t, "child-start")["pid"])
	waitRecorded(t, g.lock, main)
	launcher := g.cmd.Process.Pid
	if err := syscall.Kill(launcher, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	daemon := g.gatewayPID(t)
	t.Cleanup(func() { _ = syscall.Kill(daemon, syscall.SIGKILL) })
	waitGone(t, main) // a zombie: its launcher is frozen
	_ = syscall.Kill(launcher, syscall.SIGKILL)
	waitGone(t, launcher)
	if gone(daemon) {
		t.Fatal("the daemon died; this test needs it alive")
	}
	ev := contendMustWait(t, dir, g.lock)
	if ev["gateway_pid"] != strconv.Itoa(daemon) {
		t.Errorf("gateway_pid = %s, want the daemon %d", ev["gateway_pid"], daemon)
	}
	// Another spelling of the same file (a symlinked directory) is the same lock.
	link := filepath.Join(tempDir(t), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	contendMustWait(t, dir, filepath.Join(link, filepath.Base(g.lock)))
	if r := runGwlock(t, nil, "unlock", "--lock", g.lock); r.code == 0 {
		t.Fatalf("unlock removed the lock of a live daemon\n%s", r.stderr)
	}
	if _, rep := statusReport(t, g.lock); rep.State != "orphaned" || rep.GatewayPID != daemon {
		t.Errorf("status: state %q gateway pid %d, want orphaned and the daemon %d", rep.State, rep.GatewayPID, daemon)
	}
	// The text line names the live process, not only the dead main one.
	if text := runGwlock(t, nil, "status", "--lock", g.lock).stdout; !strings.Contains(text, fmt.Sprintf("gateway_pid=%d gateway=alive", daemon)) {
		t.Errorf("status line = %q, want gateway_pid=%d gateway=alive", text, daemon)
	}
	killThenRecover(t, g.lock, daemon)
}

// TestTaggedProcessKeepsLock: a payload whose launcher is dead and which
// names no gateway at all (the launcher died between starting the gateway
// and recording it), beside a live process that carries the payload's token
// in its environment, as every process of a gateway tree does. Another
// token, the lock's path without the token (an operator's shell, a gateway
// of the same path in another mount namespace), or another user's process
// proves nothing.
func TestTaggedProcessKeepsLock(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "g.lock")
	self := selfFacts()
	const token = "5f0c2a9e41d37b6a8c1e0f2d4b6a8c0e"
	// The launcher's start time bounds the search: a process older than
	// it (PID 1, whose environment a container may hide) is not its tree.
	raw := mustJSON(t, map[string]any{"pid": deadPID(t), "startTime": self.startTime, "flock": true, "hostname": self.hostname,
		"bootId": self.bootID, "sessionId": 1, "token": token})
	if err := os.WriteFile(lock, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	other := helperCmd(t, "gateway", "-sleep", "60s")
	other.Env = append(other.Env, "GWLOCK_LOCK_PATH="+lock, "GWLOCK_LOCK_TOKEN="+token[1:], "X=GWLOCK_LOCK_TOKEN="+token)
	tagged := helperCmd(t, "gateway", "-sleep", "60s")
	tagged.Env = append(tagged.Env, "GWLOCK_LOCK_TOKEN="+token)
	procs := []*exec.Cmd{other, tagged}
	if os.Geteuid() == 0 {
		// Another user's process with the token: as root we can read its
		// environ, and it must still not keep our lock.
		foreign := exec.Command("sleep", "60")
		foreign.Env = []string{"GWLOCK_LOCK_TOKEN=" + token}
		foreign.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		procs = append(procs, foreign)
	}
	for _, c := range procs {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		c := c
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	}
	ev := contendMustWait(t, dir, lock)
	if ev["gateway_pid"] != strconv.Itoa(tagged.Process.Pid) {
		t.Errorf("gateway_pid = %s, want the tagged process %d", ev["gateway_pid"], tagged.Process.Pid)
	}
	if _, rep := statusReport(t, lock); rep.State != "orphaned" || rep.GatewayPID != tagged.Process.Pid {
		t.Errorf("status: state %q gateway pid %d, want orphaned and the tagged process %d", rep.State, rep.GatewayPID, tagged.Process.Pid)
	}
	_ = tagged.Process.Kill()
	_ = tagged.Wait()
	mustRecover(t, runGwlock(t, nil, "run", "--lock", lock, "--timeout", "2s", "--", "true"), reasonOwnerDead)
}

// TestJudgeInAnotherPIDNamespace: a starter in a PID namespace of its own
// (unshare -p, same host name) finds a lock whose launcher was SIGKILLed
// while its daemon lives on, out of that namespace's sight. The payload's
// pids name nothing there; the starter must not take them for dead: it
// waits (unknown), and starts nothing.
func TestJudgeInAnotherPIDNamespace(t *testing.T) {
	unshareWorks(t)
	dir := lockDir(t)
	g := startRun(t, dir, []string{"--stale", "60s"}, "-daemonize", "-close-lock", "-sleep", "60s")
	daemon := g.gatewayPID(t)
	t.Cleanup(func() { _ = syscall.Kill(daemon, syscall.SIGKILL) })
	g.waitEvent(t, "gateway-descendants")
	_ = g.cmd.Process.Kill()
	waitGone(t, g.cmd.Process.Pid)
	second := filepath.Join(dir, "second")
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", testBinary(t), "helper:gwlock", "run", "--lock", g.lock,
		"--timeout", "500ms", "--", testBinary(t), "helper:gateway", "-pidfile", second)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitBusy {
		t.Fatalf("starter in another PID namespace: %v, want exit %d\n%s", err, exitBusy, out)
	}
	mustNotExist(t, second, "a second gateway started beside the first one's daemon")
	if !strings.Contains(string(out), "owner_status=unknown") {
		t.Errorf("want owner_status=unknown in\n%s", out)
	}
}

// leaderExitC is a daemon whose main thread leaves with pthread_exit while a
// worker thread runs on: the process lives, but its main thread is a zombie
// and /proc/<pid>/environ reads empty. It forks, leaves the session, closes
// the lock descriptor, writes its pid to argv[2] and, argv[1] ms later, lets
// the main thread go.
const leaderExitC = `#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static void *serve(void *arg) { for (;;) pause(); return arg; }
int main(int argc, char **argv) {
	if (fork() != 0) return 0;
	setsid();
	close(3);
	FILE *f = fopen(argv[2], "w");
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
	usleep(atoi(argv[1]) * 1000);
	pthread_t t;
	pthread_create(&t, NULL, serve, NULL);
	pthread_exit(NULL);
}
`

// TestDaemonWithExitedMainThreadKeepsLock: the daemon above, its launcher
// SIGKILLed both before and after it was recorded. A zombie main thread
// with live threads is a live process: the next starter waits.
func TestDaemonWithExitedMainThreadKeepsLock(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("gcc is missing (go test -race needs it too)")
		}
		t.Skip("needs gcc to build a pthread_exit daemon")
	}
	src := filepath.Join(tempDir(t), "leader.c")
	bin := strings.TrimSuffix(src, ".c")
	if err := os.WriteFile(src, []byte(leaderExitC), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-O", "-pthread", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	t.Run("recorded", func(t *testing.T) {
		dir := lockDir(t)
		lock, pidfile := filepath.Join(dir, "g.lock"), filepath.Join(dir, "pid")
		g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--stale", "60s", "--", bin, "0", pidfile)
		waitFile(t, pidfile)
		daemon := readPIDs(t, pidfile)[0]
		t.Cleanup(func() { _ = syscall.Kill(daemon, syscall.SIGKILL) })
		g.waitEvent(t, "gateway-descendants")
		waitMainThreadExit(t, daemon)
		_ = g.cmd.Process.Kill()
		waitGone(t, g.cmd.Process.Pid)
		leaderExitedMustWait(t, dir, lock, daemon)
	})
	t.Run("unrecorded", func(t *testing.T) {
		// The launcher is frozen once it recorded the gateway (a shell
		// waiting for a go file), before the shell starts the daemon: only
		// the token, read through a live thread, leads to the daemon.
		dir := lockDir(t)
		lock, pidfile, goFile := filepath.Join(dir, "g.lock"), filepath.Join(dir, "pid"), filepath.Join(dir, "go")
		script := fmt.Sprintf("while [ ! -e %s ]; do sleep 0.01; done; exec %s 0 %s", goFile, bin, pidfile)
		g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--stale", "60s", "--", "sh", "-c", script)
		shell, _ := strconv.Atoi(g.waitEvent(t, "child-start")["pid"])
		waitRecorded(t, lock, shell)
		launcher := g.cmd.Process.Pid
		if err := syscall.Kill(launcher, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goFile, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		waitFile(t, pidfile)
		daemon := readPIDs(t, pidfile)[0]
		t.Cleanup(func() { _ = syscall.Kill(daemon, syscall.SIGKILL) })
		waitMainThreadExit(t, daemon)
		_ = syscall.Kill(launcher, syscall.SIGKILL)
		waitGone(t, launcher)
		leaderExitedMustWait(t, dir, lock, daemon)
	})
}

// waitRecorded waits until the payload names pid as the gateway.
func waitRecorded(t *testing.T, lock string, pid int) {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		if _, rep := statusReport(t, lock); rep.GatewayPID == pid {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the payload never named the gateway %d", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitMainThreadExit waits until pid's main thread is a zombie.
func waitMainThreadExit(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: its main thread never exited", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// leaderExitedMustWait: the daemon whose main thread exited still runs, so
// a starter must wait; once it is killed, the lock is recovered.
func leaderExitedMustWait(t *testing.T, dir, lock string, daemon int) {
	t.Helper()
	if gone(daemon) {
		t.Fatal("gone() calls the daemon dead")
	}
	ev := contendMustWait(t, dir, lock)
	if ev["gateway_pid"] != strconv.Itoa(daemon) {
		t.Errorf("gateway_pid = %s, want the daemon %d", ev["gateway_pid"], daemon)
	}
	killThenRecover(t, lock, daemon)
}

// TestGatewayGetsToken: the gateway's environment carries the payload's
// token, and each holding of the lock has its own.
func TestGatewayGetsToken(t *testing.T) {
	dir := lockDir(t)
	lock, copyFile, envFile := filepath.Join(dir, "g.lock"), filepath.Join(dir, "copy"), filepath.Join(dir, "env")
	var seen []string
	for i := 0; i < 2; i++ {
		r := runGwlock(t, nil, "run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-copy-lock", copyFile, "-token-file", envFile)
		if r.code != 0 {
			t.Fatal(r.stderr)
		}
		p, err := parsePayload(waitFile(t, copyFile))
		if err != nil {
			t.Fatal(err)
		}
		got := strings.TrimSpace(string(waitFile(t, envFile)))
		if p.Token == "" || got != p.Token {
			t.Fatalf("GWLOCK_LOCK_TOKEN = %q, payload token %q", got, p.Token)
		}
		seen = append(seen, got)
		_ = os.Remove(copyFile)
		_ = os.Remove(envFile)
	}
	if seen[0] == seen[1] {
		t.Fatalf("two holdings share the token %s", seen[0])
	}
}

// TestDoubleForkDaemonKeepsLock: daemon(3)'s double fork, the
// intermediate lingering, the daemon closing every descriptor; then the
// launcher is SIGKILLed. The payload must name the daemon (recorded when
// the intermediate exited), not the dead intermediate.
func TestDoubleForkDaemonKeepsLock(t *testing.T) {
	dir := lockDir(t)
	// --stale 60s: the heartbeat (every 20 s) must not be what records it.
	g := startRun(t, dir, []string{"--stale", "60s"}, "-daemonize", "-daemonize", "-linger", "300ms", "-close-lock", "-sleep", "60s")
	daemon := g.gatewayPID(t)
	t.Cleanup(func() { _ = syscall.Kill(daemon, syscall.SIGKILL) })
	g.waitEvent(t, "gateway-descendants")
	// Wait until the payload names the daemon: the intermediate has exited.
	deadline := time.Now().Add(eventWait)
	for {
		if _, rep := statusReport(t, g.lock); rep.GatewayPID == daemon {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the payload never named the daemon %d", daemon)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = g.cmd.Process.Kill()
	waitGone(t, g.cmd.Process.Pid)
	ev := contendMustWait(t, dir, g.lock)
	if ev["gateway_pid"] != strconv.Itoa(daemon) {
		t.Errorf("gateway_pid = %s, want the daemon %d", ev["gateway_pid"], daemon)
	}
	if r := runGwlock(t, nil, "unlock", "--lock", g.lock); r.code == 0 {
		t.Fatalf("unlock removed the lock of a live daemon\n%s", r.stderr)
	}
	mustExist(t, g.lock)
}

// TestStopKillsLateDescendants: a gateway and its daemon both
// ignore SIGTERM; the daemon joins the tree only when SIGKILL has taken its
// parent. The stop must still end, every process killed, within the stop
// timeout and its repeats, never hang.
func TestStopKillsLateDescendants(t *testing.T) {
	dir := lockDir(t)
	g := startRun(t, dir, []string{"--stop-timeout", "300ms"}, "-spawn-daemon", "-ignore-term", "-sleep", "60s")
	waitLines(t, g.pidfile, 2)
	pids := readPIDs(t, g.pidfile)
	g.signal(t, syscall.SIGTERM)
	done := make(chan int, 1)
	go func() { code, _ := g.wait(t); done <- code }()
	select {
	case <-done:
	case <-time.After(eventWait):
		t.Fatalf("gwlock still stopping after %s", eventWait)
	}
	for _, pid := range pids {
		waitGone(t, pid)
	}
	mustNotExist(t, g.lock, "lock left after the stop")
}

// TestStopSparesBystanders: a reader that merely has the lock
// file open, and a second gwlock waiting for the lock, are not the gateway:
// stopping a daemonized gateway signals neither, and the waiter gets the
// lock once the daemon is gone.
func TestStopSparesBystanders(t *testing.T) {
	dir := lockDir(t)
	g := startRun(t, dir, nil, "-daemonize", "-sleep", "60s")
	daemon := g.gatewayPID(t)
	g.waitEvent(t, "gateway-descendants")
	bySig := filepath.Join(dir, "bystander-sig")
	by := helperCmd(t, "gateway", "-open", g.lock, "-sigfile", bySig, "-sleep", "60s")
	if err := by.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = by.Process.Kill(); _ = by.Wait() })
	waitOpen(t, by.Process.Pid, g.lock)
	waiterPids := filepath.Join(dir, "waiter")
	w := startHelper(t, "gwlock", nil, "run", "--lock", g.lock, "--timeout", "30s", "--", testBinary(t), "helper:gateway", "-pidfile", waiterPids)
	w.waitEvent(t, "acquire-contention")
	g.signal(t, syscall.SIGTERM)
	g.wait(t)
	waitGone(t, daemon)
	w.waitEvent(t, "acquire-success")
	if code, out := w.wait(t); code != 0 {
		t.Fatalf("the waiting starter: exit %d, want 0\n%s", code, out)
	}
	if b, _ := os.ReadFile(bySig); len(b) > 0 {
		t.Fatalf("the bystander was signalled: %s", b)
	}
	if gone(by.Process.Pid) {
		t.Fatal("the bystander died")
	}
}

// waitOpen waits until pid has path open.
func waitOpen(t *testing.T, pid int, path string) {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	for deadline := time.Now().Add(eventWait); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			if l, _ := os.Readlink(dir + fd.Name()); l == path {
				return
			}
		}
	}
	t.Fatalf("pid %d never opened %s", pid, path)
}

// TestForeignKernelHolderIsNoGateway: an empty lock file held
// by another tool (flock(1)) is held, but names no gateway: --if-running ok
// waits and ends in 75, and status says unknown.
func TestForeignKernelHolderIsNoGateway(t *testing.T) {
	flockBin, err := exec.LookPath("flock")
	if err != nil {
		t.Skip("util-linux flock(1) not installed")
	}
	dir := lockDir(t)
	lock := filepath.Join(dir, "f.lock")
	writeLockFile(t, lock, nil, 0)
	holder := exec.Command(flockBin, "-x", lock, "sleep", "30")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	for deadline := time.Now().Add(eventWait); ; time.Sleep(5 * time.Millisecond) {
		if b, _ := os.ReadFile("/proc/locks"); strings.Contains(string(b), " FLOCK ") && flockHeld(t, lock) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("flock(1) never took the lock")
		}
	}
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "300ms", "--if-running", "ok", "--", "true")
	if r.code != exitBusy {
		t.Fatalf("--if-running ok beside flock(1) on an empty file: exit %d, want %d\n%s", r.code, exitBusy, r.stderr)
	}
	if code, rep := statusReport(t, lock); code != statusUnknown || rep.State != "unknown" {
		t.Fatalf("status: exit %d state %s, want %d unknown", code, rep.State, statusUnknown)
	}
}

// flockHeld says someone holds a flock on path.
func flockHeld(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	return err == syscall.EWOULDBLOCK
}

// TestDescribeHolderTransientJudge: a dead launcher's file whose
// kernel lock someone else took (a slow status, a starter judging it) is no
// live gateway: unknown, not orphaned, so --if-running ok keeps waiting.
func TestDescribeHolderTransientJudge(t *testing.T) {
	raw := []byte(`{"pid":5,"flock":true,"hostname":"h","childPid":6,"childStartTime":"88"}`)
	dead := map[int]fakeProcess{5: {state: pidAbsent}, 6: {state: pidAbsent}}
	passerBy := &creatorFacts{fakeFacts: fakeFacts{host: "h", others: dead}, creator: 77}
	if v := judge(evidence{raw: raw, lock: kernelHeld}, 0, passerBy); v.status != ownerUnknown {
		t.Errorf("kernel lock taken by pid 77 on a dead launcher's file: %s, want unknown", v.status)
	}
	inherited := &creatorFacts{fakeFacts: fakeFacts{host: "h", others: dead}, creator: 5}
	if v := judge(evidence{raw: raw, lock: kernelHeld}, 0, inherited); v.status != ownerOrphaned {
		t.Errorf("the dead launcher's own lock, inherited: %s, want orphaned", v.status)
	}
}

type creatorFacts struct {
	fakeFacts
	creator int
}

func (c *creatorFacts) lockCreator(fileID) (int, error) { return c.creator, nil }

// TestGroupOfAnotherSessionIsNotTheGateway: once the
// gateway's process group emptied, its number may lead another user's group
// (pid reuse); only a group member in the launcher's recorded session keeps
// a dead launcher's lock. Here process A leads a group in a session of its
// own, leaves a child B in it and exits: the group lives on without its
// leader, in session A.
func TestGroupOfAnotherSessionIsNotTheGateway(t *testing.T) {
	dir := lockDir(t)
	childPids := filepath.Join(dir, "child")
	a := helperCmd(t, "gateway", "-child-pidfile", childPids)
	a.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	leader := a.Process.Pid
	waitFile(t, childPids)
	member := readPIDs(t, childPids)[0]
	t.Cleanup(func() { _ = syscall.Kill(member, syscall.SIGKILL) })
	start, ok := processStartTime(leader) // unreaped, so still readable
	if !ok {
		t.Fatal("no start time for the group leader")
	}
	_ = a.Wait()
	self := selfFacts()
	payload := func(session int) []byte {
		return mustJSON(t, map[string]any{"pid": deadPID(t), "flock": true, "hostname": self.hostname,
			"childPid": leader, "childStartTime": start, "sessionId": session})
	}
	if v := judgeRaw(payload(leader), 0, time.Minute, true, localFacts); v.status != ownerOrphaned {
		t.Errorf("group %d alive in the recorded session: %s, want orphaned", leader, v.status)
	}
	if v := judgeRaw(payload(self.sessionID), 0, time.Minute, true, localFacts); v.reason != reasonOwnerDead {
		t.Errorf("group %d alive only in another session: %+v, want owner-dead", leader, v)
	}
}

// TestLiveMainUntrackedWorker: the gateway's main
// process stays, its worker leaves the group (setsid) and closes the lock
// descriptor. gwlock records the worker within seconds of the start, so a
// launcher SIGKILLed later leaves an owner that is orphaned, not dead.
func TestLiveMainUntrackedWorker(t *testing.T) {
	dir := lockDir(t)
	g := startRun(t, dir, []string{"--stale", "60s"}, "-spawn-daemon", "-close-lock", "-sleep", "60s")
	waitLines(t, g.pidfile, 2)
	pids := readPIDs(t, g.pidfile)
	t.Cleanup(func() {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	deadline := time.Now().Add(eventWait)
	for {
		if _, rep := statusReport(t, g.lock); rep.Owner != nil && len(rep.Owner.Descendants) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker was never recorded in the lock")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = g.cmd.Process.Kill()
	waitGone(t, g.cmd.Process.Pid)
	contendMustWait(t, dir, g.lock)
}
