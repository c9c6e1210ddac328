package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestUsageErrors(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "u.lock")
	tests := []struct {
		name string
		env  []string
		args []string
		want string // in the error line
	}{
		{"no command", nil, nil, "usage"},
		{"unknown command", nil, []string{"launch"}, `unknown command "launch"`},
		{"run without --", nil, []string{"run", "--lock", lock, "true"}, "put the gateway command after --"},
		{"run with empty command", nil, []string{"run", "--lock", lock, "--"}, "needs a command after --"},
		{"config and lock", nil, []string{"run", "--config", "/x", "--lock", lock, "--", "true"}, "--config and --lock both given"},
		{"no lock named", nil, []string{"status"}, "needs --config PATH or --lock FILE"},
		{"bad timeout", nil, []string{"run", "--lock", lock, "--timeout", "soon", "--", "true"}, "timeout"},
		{"negative timeout", nil, []string{"run", "--lock", lock, "--timeout", "-1s", "--", "true"}, "negative"},
		{"bad env timeout", []string{"GWLOCK_TIMEOUT=soon"}, []string{"run", "--lock", lock, "--", "true"}, "GWLOCK_TIMEOUT"},
		{"bad port", nil, []string{"probe", "--port", "70000"}, "port"},
		{"bad env port", []string{"GWLOCK_PORT=http"}, []string{"status", "--lock", lock}, "GWLOCK_PORT"},
		{"probe without port", nil, []string{"probe"}, "probe needs --port"},
		{"bad restart", nil, []string{"run", "--lock", lock, "--restart", "sometimes", "--", "true"}, "--restart"},
		{"bad if-running", nil, []string{"run", "--lock", lock, "--if-running", "maybe", "--", "true"}, "--if-running"},
		{"bad log format", nil, []string{"status", "--lock", lock, "--log-format", "xml"}, "--log-format"},
		{"status with command", nil, []string{"status", "--lock", lock, "--", "true"}, "takes no command"},
		{"unknown flag", nil, []string{"status", "--lock", lock, "--frobnicate"}, "frobnicate"},
	}
	for _, tc := range tests {
		r := runGwlock(t, tc.env, tc.args...)
		if r.code != exitUsage {
			t.Errorf("%s: exit = %d, want %d; stderr %q", tc.name, r.code, exitUsage, r.stderr)
		}
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: stderr %q does not mention %q", tc.name, r.stderr, tc.want)
		}
		if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); tc.args != nil && n != 0 {
			t.Errorf("%s: %d lines of error, want one: %q", tc.name, n+1, r.stderr)
		}
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Fatal("a usage error touched the lock path")
	}
}

func TestVersion(t *testing.T) {
	r := runGwlock(t, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "gwlock ") {
		t.Fatalf("version: %d %q", r.code, r.stdout)
	}
}

// TestEnvAndFlags: every flag reads its variable, and the flag wins.
func TestEnvAndFlags(t *testing.T) {
	dir := lockDir(t)
	envLock, flagLock := filepath.Join(dir, "env.lock"), filepath.Join(dir, "flag.lock")
	r := runGwlock(t, []string{"GWLOCK_LOCK=" + envLock}, "status")
	if !strings.Contains(r.stdout, envLock) {
		t.Fatalf("GWLOCK_LOCK ignored: %q", r.stdout)
	}
	r = runGwlock(t, []string{"GWLOCK_LOCK=" + envLock}, "status", "--lock", flagLock)
	if !strings.Contains(r.stdout, flagLock) {
		t.Fatalf("--lock did not win over GWLOCK_LOCK: %q", r.stdout)
	}
	cfg := filepath.Join(dir, "gw.json")
	writeLockFile(t, cfg, []byte("{}"), 0)
	r = runGwlock(t, []string{"GWLOCK_CONFIG=" + cfg, "GWLOCK_LOCK_DIR=" + dir}, "status")
	if want := filepath.Join(dir, derivedLockName(cfg)); !strings.Contains(r.stdout, want) {
		t.Fatalf("GWLOCK_CONFIG+GWLOCK_LOCK_DIR: %q, want lock %s", r.stdout, want)
	}

	// GWLOCK_TIMEOUT, GWLOCK_LOG_FORMAT, GWLOCK_PORT, GWLOCK_STALE reach acquire-start.
	r = runGwlock(t, []string{"GWLOCK_LOCK=" + envLock, "GWLOCK_TIMEOUT=250ms", "GWLOCK_LOG_FORMAT=json",
		"GWLOCK_PORT=" + strconv.Itoa(freePort(t)), "GWLOCK_STALE=7s", "GWLOCK_HOST=127.0.0.1"}, "run", "--", "true")
	var start map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(r.stderr, "\n", 2)[0]), &start); err != nil {
		t.Fatalf("GWLOCK_LOG_FORMAT=json ignored: %q", r.stderr)
	}
	if start["timeout_ms"] != 250.0 || start["stale_ms"] != 7000.0 || start["port"] == 0.0 {
		t.Fatalf("env not applied: %v", start)
	}
	r = runGwlock(t, []string{"GWLOCK_LOCK=" + envLock, "GWLOCK_TIMEOUT=250ms"}, "run", "--timeout", "0.5", "--", "true")
	if ev := mustEvent(t, r.events(), "acquire-start", "timeout_ms"); ev["timeout_ms"] != "500" {
		t.Fatalf("--timeout did not win: %v", ev)
	}
}

// TestConfigNamesLock: the derived lock is named by the config's absolute
// path with its directory resolved, so every spelling of that directory
// shares one lock. (A symlinked last component is a name of its own: see
// TestConfigMapSwapKeepsLock.)
func TestConfigNamesLock(t *testing.T) {
	dir := lockDir(t)
	cfg := filepath.Join(dir, "real.json")
	writeLockFile(t, cfg, []byte("{}"), 0)
	want := filepath.Join(dir, derivedLockName(cfg))
	spellings := []string{cfg, filepath.Join(dir, ".", "sub", "..", "real.json")}
	if runtime.GOOS != "windows" { // Wine's symlinks are not resolved by EvalSymlinks
		link := filepath.Join(dir, "link.d")
		if err := os.Symlink(dir, link); err != nil {
			t.Fatal(err)
		}
		spellings = append(spellings, filepath.Join(link, "real.json"))
	}
	for _, spelling := range spellings {
		r := runGwlock(t, nil, "status", "--config", spelling, "--lock-dir", dir)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--config %s: %q, want lock %s", spelling, r.stdout, want)
		}
	}
	if !strings.HasPrefix(filepath.Base(want), "gateway.") || len(filepath.Base(want)) != len("gateway.12345678.lock") {
		t.Errorf("derived name %s, want gateway.<8 hex>.lock", filepath.Base(want))
	}
}

// TestStatusUnlock: LSB codes for every state, --json, and unlock's refusals.
func TestStatusUnlock(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "s.lock")

	r := runGwlock(t, nil, "status", "--lock", lock)
	if r.code != statusNotRunning {
		t.Fatalf("status, no file: %d, want %d", r.code, statusNotRunning)
	}
	if r = runGwlock(t, nil, "unlock", "--lock", lock); r.code != 0 {
		t.Fatalf("unlock, no file: %d, want 0", r.code)
	}

	h := startHelper(t, "holder", nil, "-lock", lock)
	waitStdout(t, h, "held")
	r = runGwlock(t, nil, "status", "--lock", lock, "--json")
	if r.code != statusRunning {
		t.Fatalf("status, held: %d, want %d; %s", r.code, statusRunning, r.stdout)
	}
	var rep report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --json: %q: %v", r.stdout, err)
	}
	// The holder starts no gateway: its launcher lives, no tree does.
	if rep.State != "starting" || !rep.KernelLocked || rep.Owner == nil || rep.Owner.PID != int64(h.cmd.Process.Pid) || !rep.Owner.Flock {
		t.Fatalf("status --json = %+v, want starting, kernel-locked, owner pid %d", rep, h.cmd.Process.Pid)
	}
	if r = runGwlock(t, nil, "unlock", "--lock", lock); r.code != exitFailure || !strings.Contains(r.stderr, "refused") {
		t.Fatalf("unlock of a live owner: %d %q, want 1 and a refusal", r.code, r.stderr)
	}
	if _, err := os.Stat(lock); err != nil {
		t.Fatalf("unlock removed a live owner's lock: %v", err)
	}
	_ = h.cmd.Process.Kill()
	h.wait(t)

	r = runGwlock(t, nil, "status", "--lock", lock, "--json")
	if r.code != statusDeadFile || !strings.Contains(r.stdout, `"reason":"owner-dead"`) {
		t.Fatalf("status, dead owner: %d %s, want %d owner-dead", r.code, r.stdout, statusDeadFile)
	}
	if r = runGwlock(t, nil, "unlock", "--lock", lock); r.code != 0 {
		t.Fatalf("unlock, dead owner: %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Fatal("unlock left a dead owner's file")
	}

	writeLockFile(t, lock, []byte("garbage"), 0)
	if r = runGwlock(t, nil, "status", "--lock", lock); r.code != statusUnknown {
		t.Fatalf("status, unknown owner: %d, want %d", r.code, statusUnknown)
	}
	writeLockFile(t, lock, []byte("garbage"), time.Hour)
	if r = runGwlock(t, nil, "unlock", "--lock", lock, "--stale", "1s"); r.code != exitFailure {
		t.Fatalf("unlock of a stale but unproven owner: %d, want 1", r.code)
	}
	if _, err := os.Stat(lock); err != nil {
		t.Fatal("unlock removed a file whose owner is not proven gone")
	}
}

func TestProbe(t *testing.T) {
	port := listeningPort(t)
	if r := runGwlock(t, nil, "probe", "--port", strconv.Itoa(port)); r.code != 0 {
		t.Fatalf("probe of a listening port: %d", r.code)
	}
	free := freePort(t)
	r := runGwlock(t, nil, "probe", "--port", strconv.Itoa(free))
	if r.code != 1 || !strings.Contains(r.stderr, "not listening") {
		t.Fatalf("probe of a free port: %d %q", r.code, r.stderr)
	}
	// --wait sees a gateway that starts listening late.
	gw := helperCmd(t, "gateway", "-listen", strconv.Itoa(free), "-listen-after", "200ms", "-sleep", "5s")
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	defer gw.Process.Kill()
	if r := runGwlock(t, nil, "probe", "--port", strconv.Itoa(free), "--wait", "5s"); r.code != 0 {
		t.Fatalf("probe --wait: %d %q", r.code, r.stderr)
	}
}

// TestAllowMulti: GWLOCK_ALLOW_MULTI=1 runs without the lock and says so.
func TestAllowMulti(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "m.lock")
	h := startHelper(t, "holder", nil, "-lock", lock)
	waitStdout(t, h, "held")
	r := runGwlock(t, []string{"GWLOCK_ALLOW_MULTI=1"}, "run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-exit", "3")
	if r.code != 3 {
		t.Fatalf("exit = %d, want the gateway's 3", r.code)
	}
	mustEvent(t, r.events(), "acquire-skipped", "reason")
}

// TestIfRunningOK: an idempotent start exits 0 when a live owner holds the lock.
func TestIfRunningOK(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "i.lock")
	pidfile := filepath.Join(dir, "pids")
	h := startHelper(t, "holder", nil, "-lock", lock)
	waitStdout(t, h, "held")
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "0", "--if-running", "ok", "--", testBinary(t), "helper:gateway", "-pidfile", pidfile)
	if r.code != 0 {
		t.Fatalf("--if-running ok: exit %d, want 0", r.code)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Fatal("--if-running ok started a gateway")
	}
	if r = runGwlock(t, nil, "run", "--lock", lock, "--timeout", "0", "--", "true"); r.code != exitBusy {
		t.Fatalf("--if-running fail: exit %d, want %d", r.code, exitBusy)
	}
}

// TestCommandNotRunnable: 127 for a missing command, 126 for one that is not
// executable, with the lock released either way.
func TestCommandNotRunnable(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "c.lock")
	// Not executable: no x bit on POSIX; on Windows, an .exe that is no program.
	notExec := filepath.Join(dir, "script")
	if runtime.GOOS == "windows" {
		notExec += ".exe"
	}
	writeLockFile(t, notExec, []byte("#!/bin/sh\n"), 0)
	cases := []struct {
		cmd  string
		want int
	}{
		{filepath.Join(dir, "missing"), exitNotFound},
		{"gwlock-no-such-command", exitNotFound},
	}
	// Wine starts a non-PE .exe instead of failing with ERROR_BAD_EXE_FORMAT.
	if runtime.GOOS != "windows" {
		cases = append(cases, struct {
			cmd  string
			want int
		}{notExec, exitNotExecutable})
	}
	for _, tc := range cases {
		r := runGwlock(t, nil, "run", "--lock", lock, "--", tc.cmd)
		if r.code != tc.want {
			t.Errorf("run -- %s: exit %d, want %d; %s", tc.cmd, r.code, tc.want, r.stderr)
		}
		if !strings.Contains(r.stderr, "gwlock: start gateway") {
			t.Errorf("run -- %s: no explanation: %q", tc.cmd, r.stderr)
		}
		if _, err := os.Stat(lock); !os.IsNotExist(err) {
			t.Errorf("run -- %s: lock left behind", tc.cmd)
		}
	}
}

// TestCommandWithoutShell: COMMAND is executed directly; shell syntax in its
// arguments arrives as literal text.
func TestCommandWithoutShell(t *testing.T) {
	dir := lockDir(t)
	argsFile, pwned := filepath.Join(dir, "args"), filepath.Join(dir, "pwned")
	literal := []string{"$(touch " + pwned + ")", "; touch " + pwned, "*", "a b"}
	args := append([]string{"run", "--lock", filepath.Join(dir, "s.lock"), "--", testBinary(t), "helper:gateway", "-argsfile", argsFile, "--"}, literal...)
	if r := runGwlock(t, nil, args...); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if got := strings.Split(strings.TrimSuffix(string(waitFile(t, argsFile)), "\n"), "\n"); strings.Join(got, "|") != strings.Join(literal, "|") {
		t.Fatalf("gateway got %q, want %q", got, literal)
	}
	if _, err := os.Stat(pwned); !os.IsNotExist(err) {
		t.Fatal("a shell interpreted the gateway's arguments")
	}
}

// TestDefaultLockDirTmp: without XDG_RUNTIME_DIR and with a TMPDIR, derived
// locks live in the uid's default dir (POSIX: never in TMPDIR; Windows
// without LOCALAPPDATA: <tmp>\gwlock-<user>). status creates nothing there.
func TestDefaultLockDirTmp(t *testing.T) {
	tmp := lockDir(t)
	env := []string{"TMPDIR=" + tmp, "TMP=" + tmp, "TEMP=" + tmp, "XDG_RUNTIME_DIR=", "LOCALAPPDATA="}
	r := runGwlock(t, env, "status", "--config", "/etc/gw.json")
	want := filepath.Join(defaultLockDirIn(tmp), derivedLockName(filepath.Clean("/etc/gw.json")))
	if runtime.GOOS == "windows" {
		want = filepath.Join(defaultLockDirIn(tmp), derivedLockName(absPath(t, "/etc/gw.json")))
	}
	if !strings.Contains(r.stdout, want) {
		t.Fatalf("status without XDG_RUNTIME_DIR: %q, want lock %s", r.stdout, want)
	}
}

func absPath(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestSaysWhatItDid: a starter refused by a live holder names it and says
// where to look and how to make that a success; unlock says in one line what
// it removed, and that there was nothing to remove.
func TestSaysWhatItDid(t *testing.T) {
	lock := filepath.Join(lockDir(t), "said.lock")
	h := startHelper(t, "holder", nil, "-lock", lock)
	waitStdout(t, h, "held")
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "0", "--", "true")
	holder := fmt.Sprintf("held by pid %d (alive)", h.cmd.Process.Pid)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"gwlock: lock " + lock, holder, "(hint: gwlock status", "--if-running ok"} {
		if r.code != exitBusy || !strings.Contains(last, want) {
			t.Errorf("run against a live holder: exit %d, last line %q; want %d and %q in it", r.code, last, exitBusy, want)
		}
	}
	_ = h.cmd.Process.Kill()
	h.wait(t)

	r = runGwlock(t, nil, "unlock", "--lock", lock)
	removed := fmt.Sprintf("event=stale-lock-recovered lock=%s owner_pid=%d reason=owner-dead", lock, h.cmd.Process.Pid)
	if r.code != 0 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, removed) {
		t.Errorf("unlock, dead owner: exit %d, stderr %q; want 0 and one line with %q", r.code, r.stderr, removed)
	}
	r = runGwlock(t, nil, "unlock", "--lock", lock)
	if want := "gwlock: unlock " + lock + ": nothing to remove, no lock file\n"; r.code != 0 || r.stderr != want {
		t.Errorf("unlock, no file: exit %d, stderr %q; want 0 and %q", r.code, r.stderr, want)
	}
}

// TestReadmeFirstCommand runs the README's first command as written, with a
// private directory and a free port: it builds gwlock and the demo gateway,
// runs one under the other until the gateway is ready, and a Ctrl-C (SIGINT
// to gwlock) must end it with exit 0, as the README says.
func TestReadmeFirstCommand(t *testing.T) {
	if runtime.GOOS == "windows" || testing.Short() {
		t.Skip("builds with the go command and stops with SIGINT: POSIX, not -short")
	}
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	first := regexp.MustCompile(`(?m)^    (go build .*?)\s+#`).FindSubmatch(b)
	if first == nil {
		t.Fatal("README.md does not start with an indented go build ... && gwlock run ... command")
	}
	dir, port := t.TempDir()+"/", strconv.Itoa(freePort(t))
	line := strings.NewReplacer("/tmp/gw/", dir, "18789", port).Replace(string(first[1]))
	build, run, ok := strings.Cut(line, " && ")
	if !ok {
		t.Fatalf("README's first command %q is not BUILD && RUN", line)
	}
	if out, err := exec.Command("sh", "-c", build).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, out)
	}
	words := strings.Fields(run)
	cmd := exec.Command(words[0], words[1:]...)
	cmd.Env = append(os.Environ(), "GWLOCK_LOCK_DIR="+lockDir(t))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanner := bufio.NewScanner(stderr)
	for scanner.Scan() && !strings.Contains(scanner.Text(), "event=gateway-ready") {
	}
	_ = cmd.Process.Signal(os.Interrupt)
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("README's first command after Ctrl-C: %v, want exit 0", err)
	}
}
