//go:build linux

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A judge that cannot read the process table must not take a live
// orphaned gateway for dead. These tests starve a real starter of what it
// reads, beside a real gateway whose launcher was SIGKILLed, and check that
// it removes nothing, starts nothing, and says why it cannot tell.

// orphanShapes are gateways that outlive a SIGKILLed launcher: one keeps
// the inherited lock descriptor (it ignores the stop signal), one
// daemonizes and closes it, so the kernel lock is free and only the
// process table shows it alive.
var orphanShapes = map[string][]string{
	"kept-fd":       {"-ignore-term", "-sleep", "60s"},
	"daemon-closed": {"-daemonize", "-close-lock", "-sleep", "60s"},
}

// startOrphan runs a gateway of shape flags, waits until its tree is
// recorded, SIGKILLs its launcher and returns the lock and the live
// gateway's pid.
func startOrphan(t *testing.T, dir string, flags []string) (string, int) {
	t.Helper()
	g := startRun(t, dir, nil, flags...)
	gw := g.gatewayPID(t)
	t.Cleanup(func() { _ = syscall.Kill(gw, syscall.SIGKILL) })
	if flags[0] == "-daemonize" {
		g.waitEvent(t, "gateway-descendants")
	}
	_ = g.cmd.Process.Kill()
	waitGone(t, g.cmd.Process.Pid)
	return g.lock, gw
}

// lockSnapshot is a lock file's identity and contents.
func lockSnapshot(t *testing.T, lock string) (uint64, []byte) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(lock, &st); err != nil {
		t.Fatalf("lock file: %v", err)
	}
	b, err := os.ReadFile(lock)
	if err != nil {
		t.Fatal(err)
	}
	return st.Ino, b
}

// mustKeepOrphan checks that the starter r left the lock as it was and
// started nothing, then that an ordinary starter finds the orphan.
func mustKeepOrphan(t *testing.T, dir, lock string, ino uint64, payload []byte, second string, r result) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("starved starter: exit 0\n%s", r.stderr)
	}
	mustNotExist(t, second, "a starved starter started a second gateway")
	if gotIno, gotPayload := lockSnapshot(t, lock); gotIno != ino || !bytes.Equal(gotPayload, payload) {
		t.Fatalf("a starved starter replaced the live orphan's lock file\n%s", r.stderr)
	}
	if ev := findEvents(r.events(), "stale-lock-recovered"); len(ev) > 0 {
		t.Fatalf("a starved starter reclaimed a live orphan's lock: %v", ev)
	}
	contendMustWait(t, dir, lock)
}

// TestStarvedJudgeKeepsOrphan: a starter under `ulimit -n N` for a range
// of N beside a live orphaned gateway. Each either fails before it
// judges, or judges the owner unknown with the read that failed; none
// removes the lock or starts a gateway. At least one N must reach the
// judgement, so the test cannot pass by never judging.
func TestStarvedJudgeKeepsOrphan(t *testing.T) {
	for name, flags := range orphanShapes {
		t.Run(name, func(t *testing.T) {
			dir := lockDir(t)
			lock, _ := startOrphan(t, dir, flags)
			ino, payload := lockSnapshot(t, lock)
			second := filepath.Join(dir, "second")
			judged := 0
			for n := 6; n <= 12; n++ {
				script := "ulimit -n " + strconv.Itoa(n) + " && exec \"$@\""
				cmd := helperCmd(t, "gwlock")
				cmd.Path = "/bin/sh"
				cmd.Args = []string{"sh", "-c", script, "sh", testBinary(t), "helper:gwlock", "run", "--lock", lock,
					"--timeout", "200ms", "--", testBinary(t), "helper:gateway", "-pidfile", second}
				r := runCmd(t, cmd)
				mustKeepOrphan(t, dir, lock, ino, payload, second, r)
				for _, ev := range findEvents(r.events(), "acquire-contention") {
					if ev["owner_status"] == "unknown" && !strings.Contains(ev["unknown_reason"], "too many open files") {
						t.Errorf("ulimit -n %d: unknown_reason=%q, want the read that failed", n, ev["unknown_reason"])
					}
					judged++
				}
			}
			if judged == 0 {
				t.Fatal("no descriptor limit let the starter reach the judgement")
			}
		})
	}
}

// TestJudgeWithoutProcKeepsOrphan: a starter in a mount namespace with no
// /proc (as in a chroot) beside a live orphaned gateway: unknown, with the
// reason, and nothing removed or started.
func TestJudgeWithoutProcKeepsOrphan(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("unshare -m needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	for name, flags := range orphanShapes {
		t.Run(name, func(t *testing.T) {
			dir := lockDir(t)
			lock, _ := startOrphan(t, dir, flags)
			ino, payload := lockSnapshot(t, lock)
			second := filepath.Join(dir, "second")
			r := runCmd(t, withoutProc(t, "run", "--lock", lock, "--timeout", "200ms", "--", testBinary(t), "helper:gateway", "-pidfile", second))
			ev := mustEvent(t, r.events(), "acquire-contention", "owner_status")
			if name == "daemon-closed" && (ev["owner_status"] != "unknown" || ev["unknown_reason"] == "") {
				t.Errorf("without /proc: %v, want owner_status=unknown with its unknown_reason", ev)
			}
			mustKeepOrphan(t, dir, lock, ino, payload, second, r)
			if name != "daemon-closed" {
				return
			}
			// status and unlock judge alike: unknown (exit 4) with the
			// reason, and a refusal.
			if st := runCmd(t, withoutProc(t, "status", "--lock", lock)); st.code != statusUnknown || !strings.Contains(st.stdout, "state=unknown") || !strings.Contains(st.stdout, "unknown_reason=") {
				t.Errorf("status without /proc: exit %d %s%s, want %d, state=unknown with its reason", st.code, st.stdout, st.stderr, statusUnknown)
			}
			if un := runCmd(t, withoutProc(t, "unlock", "--lock", lock)); un.code != exitFailure || !strings.Contains(un.stderr, "refused") {
				t.Errorf("unlock without /proc: exit %d %s, want %d and a refusal", un.code, un.stderr, exitFailure)
			}
			if gotIno, _ := lockSnapshot(t, lock); gotIno != ino {
				t.Error("unlock without /proc removed a live orphan's lock")
			}
		})
	}
}

// withoutProc is gwlock with args in a mount namespace of its own where
// /proc is unmounted, every /proc stacked there included (a test run in a
// PID namespace of its own mounts one over the host's).
func withoutProc(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := helperCmd(t, "gwlock")
	cmd.Path, _ = exec.LookPath("unshare")
	cmd.Args = append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c", "umount -l /proc && while umount -l /proc 2>/dev/null; do :; done; exec \"$@\"", "sh",
		testBinary(t), "helper:gwlock"}, args...)
	return cmd
}

// TestStoppedLauncherIsNotRunning: a launcher stopped by SIGSTOP whose
// gateway died holds the kernel lock, but nothing runs. status must say
// so (state=stopped launcher=stopped gateway=dead, exit 3), and a starter
// waits and ends in 75 naming the stopped launcher.
func TestStoppedLauncherIsNotRunning(t *testing.T) {
	dir := lockDir(t)
	g := startRun(t, dir, nil, "-sleep", "60s")
	gw := g.gatewayPID(t)
	launcher := g.cmd.Process.Pid
	if err := syscall.Kill(launcher, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(launcher, syscall.SIGCONT) })
	_ = syscall.Kill(gw, syscall.SIGKILL)
	waitGone(t, gw)
	code, rep := statusReport(t, g.lock)
	if code != statusNotRunning || rep.State != "stopped" || !rep.LauncherStopped || rep.GatewayAlive == nil || *rep.GatewayAlive {
		t.Errorf("status, launcher stopped and gateway dead: exit %d %+v; want %d, stopped, gateway dead", code, rep, statusNotRunning)
	}
	text := runGwlock(t, nil, "status", "--lock", g.lock)
	if !strings.Contains(text.stdout, "state=stopped") || !strings.Contains(text.stdout, "launcher=stopped") || !strings.Contains(text.stdout, "gateway=dead") {
		t.Errorf("status line: %s", text.stdout)
	}
	second := filepath.Join(dir, "second")
	r := runGwlock(t, nil, "run", "--lock", g.lock, "--timeout", "300ms", "--", testBinary(t), "helper:gateway", "-pidfile", second)
	if r.code != exitBusy || !strings.Contains(r.stderr, "stopped by a signal") {
		t.Errorf("starter beside a stopped launcher: exit %d, want %d naming it stopped\n%s", r.code, exitBusy, r.stderr)
	}
	if ev := mustEvent(t, r.events(), "acquire-contention", "owner_status"); ev["launcher"] != "stopped" {
		t.Errorf("acquire-contention = %v, want launcher=stopped", ev)
	}
	mustNotExist(t, second, "a starter started a gateway beside a stopped launcher")
	// Continued, the launcher finds its gateway gone and ends by itself: a
	// stop signal now could find it already exited.
	_ = syscall.Kill(launcher, syscall.SIGCONT)
	g.wait(t)
}

// TestOrphanAcrossTimeNamespace: a launcher in a time namespace whose boot
// time is offset (as CRIU restores and some container runtimes set) records
// start times that read otherwise from here. SIGKILLed, its gateway's daemon
// lives on with the token and without the lock's descriptor; a starter here
// must not take the daemon for a reused pid or for a process older than the
// launcher: the lock is kept and nothing is started.
func TestOrphanAcrossTimeNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("unshare -T needs root")
	}
	if out, err := exec.Command("unshare", "-T", "--boottime", "100000", "true").CombinedOutput(); err != nil {
		t.Skipf("no time namespaces here: %v %s", err, out)
	}
	dir := lockDir(t)
	lock, pidfile, second := filepath.Join(dir, "g.lock"), filepath.Join(dir, "pid"), filepath.Join(dir, "second")
	cmd := helperCmd(t, "gwlock")
	cmd.Path, _ = exec.LookPath("unshare")
	// -f: a new time namespace is its creator's children's.
	cmd.Args = []string{"unshare", "-T", "--boottime", "100000", "-f", testBinary(t), "helper:gwlock", "run", "--lock", lock, "--",
		testBinary(t), "helper:gateway", "-pidfile", pidfile, "-daemonize", "-close-lock", "-sleep", "60s"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFile(t, pidfile)
	for _, pid := range readPIDs(t, pidfile) {
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	}
	payload := waitFile(t, lock)
	for ; !bytes.Contains(payload, []byte(`"descendants"`)); payload = waitFile(t, lock) {
		time.Sleep(10 * time.Millisecond) // the tree is recorded 100 ms in
	}
	p, err := parsePayload(payload)
	if err != nil || p.TimeNS == "" {
		t.Fatalf("payload %s: %v, want one naming its time namespace", payload, err)
	}
	_ = syscall.Kill(int(p.PID), syscall.SIGKILL) // the launcher, unshare's child
	waitGone(t, int(p.PID))
	_ = cmd.Wait()
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "200ms", "--", testBinary(t), "helper:gateway", "-pidfile", second)
	if r.code != exitBusy {
		t.Errorf("starter beside the orphan of another time namespace: exit %d, want %d\n%s", r.code, exitBusy, r.stderr)
	}
	mustNotExist(t, second, "a second gateway started beside the first's daemon")
	if ev := findEvents(r.events(), "stale-lock-recovered"); len(ev) > 0 {
		t.Fatalf("the live orphan's lock was reclaimed: %v", ev)
	}
}
