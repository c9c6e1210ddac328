//go:build linux

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Where a lock was written, and what a judge elsewhere may conclude: the
// boot id names the kernel, so a judge of the same kernel under another
// hostname judges like any other of this host, and a judge that cannot see
// the gateway's tree (another PID namespace, another /proc) never reports
// it running.

// gwlockIn runs the test binary as gwlock in new namespaces (unshare's
// flags), under hostname host when host is not empty.
func gwlockIn(t *testing.T, unshare []string, host string, args ...string) result {
	t.Helper()
	script := `exec "$@"`
	if host != "" {
		script = `hostname "$0" && exec "$@"`
	}
	argv := append(append([]string{}, unshare...), "sh", "-c", script, host, testBinary(t), "helper:gwlock")
	cmd := exec.Command("unshare", append(argv, args...)...)
	cmd.Env = cleanEnv()
	return runCmd(t, cmd)
}

// utsWorks skips unless UTS namespaces can be made here.
func utsWorks(t *testing.T) {
	t.Helper()
	unshareWorks(t)
	if err := exec.Command("unshare", "-u", "sh", "-c", "hostname gwlock-uts-probe").Run(); err != nil {
		t.Skipf("unshare -u unavailable here: %v", err)
	}
}

// statusIn is statusReport from gwlockIn.
func statusIn(t *testing.T, unshare []string, host, lock string) (int, report) {
	t.Helper()
	r := gwlockIn(t, unshare, host, "status", "--json", "--lock", lock)
	var rep report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --json in %v: %v\n%s%s", unshare, err, r.stdout, r.stderr)
	}
	return r.code, rep
}

// TestJudgeUnderAnotherHostname: a daemon outlives its SIGKILLed launcher
// (it closed the lock descriptor, so the kernel lock is free) and the lock
// file is older than --stale. A starter on the same kernel under another
// hostname (a UTS namespace, a renamed host) must judge it like any
// starter of this host: orphaned, never an unknown foreign owner to
// reclaim by age.
func TestJudgeUnderAnotherHostname(t *testing.T) {
	utsWorks(t)
	dir := lockDir(t)
	lock, daemon := startOrphan(t, dir, orphanShapes["daemon-closed"])
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(lock, old, old); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(dir, "second")
	r := gwlockIn(t, []string{"-u"}, "gwlock-other-host", "run", "--lock", lock, "--stale", "1s", "--timeout", "500ms",
		"--", testBinary(t), "helper:gateway", "-pidfile", second)
	mustNotExist(t, second, "a second gateway started beside the live daemon")
	if r.code != exitBusy {
		t.Fatalf("starter under another hostname: exit %d, want %d\n%s", r.code, exitBusy, r.stderr)
	}
	if ev := mustEvent(t, r.events(), "acquire-contention", "owner_status"); ev["owner_status"] != "orphaned" || ev["gateway_pid"] != strconv.Itoa(daemon) {
		t.Errorf("acquire-contention = %v, want orphaned naming the daemon %d", ev, daemon)
	}
	if code, rep := statusIn(t, []string{"-u"}, "gwlock-other-host", lock); code != statusRunning || rep.State != "orphaned" || rep.GatewayPID != daemon {
		t.Errorf("status under another hostname: exit %d %+v, want orphaned naming %d", code, rep, daemon)
	}
	killThenRecover(t, lock, daemon)
}

// TestStatusNeverRunningUnseen: the launcher is stopped by a signal and
// its gateway killed, so nothing runs; the kernel lock is still held. A
// status on this kernel under another hostname sees that (stopped); one
// in another PID namespace, with or without its own /proc, cannot see the
// tree and must not say running. With the gateway alive, one whose /proc
// shows the tree finds it by its token.
func TestStatusNeverRunningUnseen(t *testing.T) {
	utsWorks(t)
	views := []struct {
		name    string
		unshare []string
		host    string
		// dead and alive are the states wanted with the gateway killed
		// and alive; 0 is the exit code that goes with them.
		dead, alive string
	}{
		{"another hostname", []string{"-u"}, "gwlock-other-host", "stopped", "running"},
		{"another PID namespace", []string{"-p", "-f"}, "", "unknown", "running"},
		{"another PID namespace and /proc", []string{"-p", "-f", "--mount-proc"}, "", "unknown", "unknown"},
	}
	codes := map[string]int{"running": statusRunning, "stopped": statusNotRunning, "unknown": statusUnknown}
	for _, gatewayDies := range []bool{false, true} {
		dir := lockDir(t)
		g := startRun(t, dir, nil, "-sleep", "60s")
		gw := g.gatewayPID(t)
		waitRecorded(t, g.lock, gw)
		if gatewayDies {
			g.signal(t, syscall.SIGSTOP)
			_ = syscall.Kill(gw, syscall.SIGKILL)
			waitGone(t, gw)
		}
		for _, view := range views {
			want := map[bool]string{false: view.alive, true: view.dead}[gatewayDies]
			code, rep := statusIn(t, view.unshare, view.host, g.lock)
			if rep.State != want || code != codes[want] {
				t.Errorf("gateway killed %t, status in %s: exit %d %+v, want %s (exit %d)", gatewayDies, view.name, code, rep, want, codes[want])
			}
			if want == "unknown" && rep.UnknownReason == "" {
				t.Errorf("gateway killed %t, status in %s: unknown without a reason", gatewayDies, view.name)
			}
		}
		_ = g.cmd.Process.Kill()
		waitGone(t, g.cmd.Process.Pid)
	}
}

// TestStoppedInBackoffIsStopped: a launcher stopped by a signal during a
// restart backoff runs nothing, however long the backoff has passed:
// status says stopped, exit 3, not restarting.
func TestStoppedInBackoffIsStopped(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "g.lock")
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--restart", "always", "--", "sh", "-c", "exit 3")
	t.Cleanup(func() { _ = g.cmd.Process.Kill() })
	// Stop the launcher until the stop lands in a backoff (the gateway
	// exits at once, so it nearly always does).
	for deadline := time.Now().Add(eventWait); ; {
		_ = g.cmd.Process.Signal(syscall.SIGSTOP)
		waitStopped(t, g.cmd.Process.Pid)
		b, _ := os.ReadFile(lock)
		if p, err := parsePayload(b); err == nil && p.RestartAt != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never stopped the launcher in a restart backoff")
		}
		_ = g.cmd.Process.Signal(syscall.SIGCONT)
		time.Sleep(20 * time.Millisecond)
	}
	code, rep := statusReport(t, lock)
	if rep.State != "stopped" || code != statusNotRunning || !rep.LauncherStopped {
		t.Fatalf("launcher stopped in a backoff: exit %d %+v, want stopped (exit %d)", code, rep, statusNotRunning)
	}
}

// waitStopped waits until the kernel shows pid stopped.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		if st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(st), ") T ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never stopped", pid)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitPayload waits until the lock's payload satisfies ok.
func waitPayload(t *testing.T, lock, what string, ok func(*ownerPayload) bool) {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		b, _ := os.ReadFile(lock)
		if p, err := parsePayload(b); err == nil && ok(p) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the payload never recorded %s: %s", what, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// treeUIDsGateway runs helpers of each uid in $UIDS for a moment, then,
// once $T1 exists, a re-forking daemon of uid $U5 (see helperReforker),
// as a gateway whose helpers and workers run as several users does.
const treeUIDsGateway = `set -e
for u in $UIDS; do setpriv --reuid=$u --regid=$u --clear-groups sleep 60 & pids="$pids $!"; done
while [ ! -e "$T1" ]; do sleep 0.01; done
kill $pids
setpriv --reuid=$U5 --regid=$U5 --clear-groups "$BIN" helper:reforker -pidfile "$PIDFILE" -trigger "$T2" &
wait`

// TestTreeUIDsOverflowIsUnknown: the gateway's tree runs as more uids
// than a payload records, the last one a daemon that re-forks unrecorded
// after its launcher's SIGKILL. Nothing recorded lives and the token
// search, asked for the recorded uids, finds nothing: that proves nothing,
// so the owner is unknown, and no second gateway starts beside the daemon.
func TestTreeUIDsOverflowIsUnknown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("no setpriv")
	}
	bin, shared := sharedBinary(t)
	lock := filepath.Join(lockDir(t), "g.lock")
	uids := []int{40001, 40002, 40003, 40004}
	const lastUID = 40005
	t1, t2, pidfile := filepath.Join(shared, "t1"), filepath.Join(shared, "t2"), filepath.Join(shared, "pid")
	env := []string{"UIDS=" + spaced(uids),
		"U5=" + strconv.Itoa(lastUID), "T1=" + t1, "T2=" + t2, "BIN=" + bin, "PIDFILE=" + pidfile}
	g := startHelper(t, "gwlock", env, "run", "--lock", lock, "--stale", "300ms", "--", "sh", "-c", treeUIDsGateway)
	for _, uid := range uids {
		waitTreeUID(t, lock, uid)
	}
	writeLockFile(t, t1, nil, 0)
	waitFile(t, pidfile)
	daemon := readPIDs(t, pidfile)[0]
	t.Cleanup(func() { _ = syscall.Kill(daemon, syscall.SIGKILL) })
	waitPayload(t, lock, "the daemon", func(p *ownerPayload) bool {
		return slices.ContainsFunc(p.Descendants, func(r procRef) bool { return r.PID == daemon })
	})
	_ = g.cmd.Process.Kill()
	waitGone(t, g.cmd.Process.Pid)
	writeLockFile(t, t2, nil, 0)
	waitFile(t, pidfile+".child")
	reforked := readPIDs(t, pidfile+".child")[0]
	t.Cleanup(func() { _ = syscall.Kill(reforked, syscall.SIGKILL) })
	waitGone(t, daemon)

	second := filepath.Join(shared, "second")
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "500ms", "--", testBinary(t), "helper:gateway", "-pidfile", second)
	mustNotExist(t, second, "a second gateway started beside a daemon of an unrecorded uid")
	if r.code != exitBusy {
		t.Fatalf("starter beside the daemon: exit %d, want %d\n%s", r.code, exitBusy, r.stderr)
	}
	if ev := mustEvent(t, r.events(), "acquire-contention", "owner_status"); ev["owner_status"] != "unknown" || !strings.Contains(ev["unknown_reason"], "more uids") {
		t.Errorf("acquire-contention = %v, want unknown saying the tree ran as more uids than recorded", ev)
	}
	if code, rep := statusReport(t, lock); code != statusUnknown || rep.State != "unknown" {
		t.Errorf("status: exit %d %+v, want unknown (exit %d)", code, rep, statusUnknown)
	}
}

// spaced is v as a shell word list.
func spaced(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, " ")
}
