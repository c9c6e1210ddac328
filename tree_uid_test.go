//go:build linux

package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Who counts as the gateway: a process carrying the holding's token counts
// when it runs as the launcher's uid or as a uid the launcher saw its tree
// run as; another uid's process, non-dumpable or not, never does. These
// tests need root (to switch users) and make their own user.

func init() {
	helpers["reforker"] = helperReforker
	helpers["intruder"] = helperIntruder
}

// helperReforker is a gateway that outlives its launcher and reloads: it
// absorbs the stop signals, writes its pid, waits for -trigger, then closes
// the inherited lock descriptor, starts a copy of itself in a new session
// (which writes its pid to -pidfile.child and sleeps) and exits, as a
// daemon that re-forks on reload does.
func helperReforker(args []string) int {
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if len(args) == 3 && args[0] == "-child" {
		appendLine(args[1]+".child", strconv.Itoa(os.Getpid()))
		time.Sleep(helperDeadline)
		return 0
	}
	if len(args) != 4 || args[0] != "-pidfile" || args[2] != "-trigger" {
		return 2
	}
	pidfile, trigger := args[1], args[3]
	appendLine(pidfile, strconv.Itoa(os.Getpid()))
	for deadline := time.Now().Add(helperDeadline); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(trigger); err == nil {
			break
		} else if time.Now().After(deadline) {
			return 3
		}
	}
	_ = syscall.Close(3)
	exe, _ := os.Executable()
	child := exec.Command(exe, "helper:reforker", "-child", pidfile, "x")
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		return 4
	}
	return 0
}

// helperIntruder makes itself non-dumpable (the files in its /proc
// directory, environ included, become root's), says so on stdout and waits for stdin to close.
func helperIntruder([]string) int {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return 2
	}
	os.Stdout.WriteString("ready\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// testUser is a user other than root for the tests, made with useradd if
// it does not exist yet.
func testUser(t *testing.T) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	const name = "gwlock-test"
	u, err := user.Lookup(name)
	if err != nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err != nil {
			t.Fatalf("useradd %s: %v\n%s", name, err, out)
		}
		if u, err = user.Lookup(name); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// sharedBinary is a copy of the test binary that another user can run,
// in a directory that user can write to.
func sharedBinary(t *testing.T) (bin, dir string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "gwlock-uid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(testBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "gwlock.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, dir
}

// waitTreeUID waits until the lock's payload records uid among its tree's.
func waitTreeUID(t *testing.T, lock string, uid int) {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		b, _ := os.ReadFile(lock)
		var p ownerPayload
		if json.Unmarshal(b, &p) == nil && slices.Contains(p.TreeUIDs, uid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the payload never recorded uid %d among the tree's: %s", uid, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGatewayThatSwitchedUserKeepsLock: a root launcher's gateway drops to
// another user (setpriv --reuid), outlives a SIGKILL of its launcher,
// closes the lock descriptor and re-forks. Nothing recorded lives; only
// its token, in a process of the uid the launcher saw, shows the gateway.
// The next starter must see it orphaned and start nothing; once it is
// gone, the lock is recovered.
func TestGatewayThatSwitchedUserKeepsLock(t *testing.T) {
	uid, gid := testUser(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv")
	}
	bin, shared := sharedBinary(t)
	lock := filepath.Join(lockDir(t), "g.lock")
	pidfile, trigger := filepath.Join(shared, "pid"), filepath.Join(shared, "reload")
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--", setpriv, "--reuid="+strconv.Itoa(uid),
		"--regid="+strconv.Itoa(gid), "--clear-groups", bin, "helper:reforker", "-pidfile", pidfile, "-trigger", trigger)
	waitFile(t, pidfile)
	gw := readPIDs(t, pidfile)[0]
	t.Cleanup(func() { _ = syscall.Kill(gw, syscall.SIGKILL) })
	waitTreeUID(t, lock, uid)
	_ = g.cmd.Process.Kill()
	waitGone(t, g.cmd.Process.Pid)
	writeLockFile(t, trigger, nil, 0)
	waitFile(t, pidfile+".child")
	reforked := readPIDs(t, pidfile+".child")[0]
	t.Cleanup(func() { _ = syscall.Kill(reforked, syscall.SIGKILL) })
	waitGone(t, gw)

	ev := contendMustWait(t, filepath.Dir(lock), lock)
	if ev["gateway_pid"] != strconv.Itoa(reforked) {
		t.Errorf("gateway_pid = %s, want the re-forked gateway %d", ev["gateway_pid"], reforked)
	}
	if code, rep := statusReport(t, lock); code != statusRunning || rep.State != "orphaned" || rep.GatewayPID != reforked {
		t.Errorf("status: exit %d state %q gateway %d, want orphaned naming %d", code, rep.State, rep.GatewayPID, reforked)
	}
	killThenRecover(t, lock, reforked)
}

// TestIntruderDoesNotPinLock: another user's non-dumpable process (its
// environ file is root's) that carries a root holding's token is not the
// gateway: status does not name it, and the next starter reclaims the
// dead owner's lock at once.
func TestIntruderDoesNotPinLock(t *testing.T) {
	uid, gid := testUser(t)
	bin, _ := sharedBinary(t)
	lock := filepath.Join(lockDir(t), "g.lock")
	self := selfFacts()
	const token = "0d9e8c7b6a5f4e3d2c1b0a9f8e7d6c5b"
	raw := mustJSON(t, map[string]any{"pid": deadPID(t), "startTime": self.startTime, "flock": true, "hostname": self.hostname,
		"bootId": self.bootID, "pidNs": self.pidNS, "sessionId": self.sessionID, "token": token, "treeUids": []int{uid + 1}})
	writeLockFile(t, lock, raw, 0)

	intruder := exec.Command(bin, "helper:intruder")
	intruder.Env = []string{"GWLOCK_LOCK_TOKEN=" + token}
	intruder.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	stdin, _ := intruder.StdinPipe()
	stdout, _ := intruder.StdoutPipe()
	if err := intruder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = intruder.Wait() })
	line := make([]byte, 6)
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("intruder did not start: %q %v", line, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/"+strconv.Itoa(intruder.Process.Pid)+"/environ", &st); err != nil || st.Uid != 0 {
		t.Fatalf("the intruder's environ is uid %d's (%v), want root's: the case under test", st.Uid, err)
	}

	code, rep := statusReport(t, lock)
	if code != statusDeadFile || rep.State != "dead" || rep.GatewayPID == intruder.Process.Pid {
		t.Errorf("status with an intruder: exit %d %+v, want dead and the intruder unnamed", code, rep)
	}
	text := runGwlock(t, nil, "status", "--lock", lock)
	if strings.Contains(text.stdout, strconv.Itoa(intruder.Process.Pid)) {
		t.Errorf("status names the intruder: %s", text.stdout)
	}
	mustRecover(t, runGwlock(t, nil, "run", "--lock", lock, "--timeout", "2s", "--", "true"), reasonOwnerDead)
}

// TestStatusNeverShowsToken: status --json shows the payload without its
// token, to anyone.
func TestStatusNeverShowsToken(t *testing.T) {
	dir := lockDir(t)
	g := startRun(t, dir, nil, "-sleep", "60s", "-token-file", filepath.Join(dir, "token"))
	g.gatewayPID(t)
	token := strings.TrimSpace(string(waitFile(t, filepath.Join(dir, "token"))))
	if len(token) != 32 {
		t.Fatalf("gateway token %q", token)
	}
	for _, args := range [][]string{{"status", "--json", "--lock", g.lock}, {"status", "--lock", g.lock}} {
		r := runGwlock(t, nil, args...)
		if strings.Contains(r.stdout+r.stderr, token) {
			t.Errorf("%v shows the token:\n%s%s", args, r.stdout, r.stderr)
		}
	}
	g.signal(t, syscall.SIGTERM)
	g.wait(t)
}
