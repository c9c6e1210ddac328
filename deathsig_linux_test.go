package main

import (
	"flag"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The gateway's death signal on Linux: exactly one when its launcher is
// SIGKILLed, also after the gateway changed uid.

func init() { helpers["deathcount"] = helperDeathCount }

// deathTrials is how many launchers each exactly-once test kills: the
// parent-death signal this replaces came two or more times in most of 20.
const deathTrials = 20

// helperDeathCount is a gateway that counts its stop signals: it opens -out
// first (so it can still write after dropping root), drops to -uid if given,
// says "ready", writes "TERM" for each -sig (SIGTERM by default) it handles
// and "done" at SIGWINCH, the test's fence. Signals pending together are
// handled lowest number first, so every one sent before the fence is
// counted before it.
func helperDeathCount(args []string) int {
	set := flag.NewFlagSet("deathcount", flag.ContinueOnError)
	out := set.String("out", "", "append lines here (-: stdout)")
	uid := set.Int("uid", -1, "setgid and setuid to this id once started")
	sig := set.Int("sig", int(syscall.SIGTERM), "the signal to count")
	if set.Parse(args) != nil {
		return 2
	}
	f, err := os.Stdout, error(nil)
	if *out != "-" {
		f, err = os.OpenFile(*out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	}
	if err != nil {
		return 3
	}
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.Signal(*sig), syscall.SIGWINCH)
	if *uid >= 0 {
		if syscall.Setgid(*uid) != nil || syscall.Setuid(*uid) != nil {
			return 4
		}
	}
	_, _ = f.WriteString("ready " + strconv.Itoa(os.Getpid()) + " uid=" + strconv.Itoa(os.Getuid()) + "\n")
	for s := range sigs {
		if s == syscall.SIGWINCH {
			_, _ = f.WriteString("done\n")
			return 0
		}
		_, _ = f.WriteString("TERM\n")
	}
	return 0
}

// killLauncherCountTerms starts gwlock with the counting gateway, SIGKILLs
// gwlock once the gateway is ready, and returns how many SIGTERMs the gateway
// handled by the time gwlock was reaped (every signal the kernel sends for
// its death is sent by then) and the fence was handled. runArgs go to run,
// gatewayArgs to the gateway.
func killLauncherCountTerms(t *testing.T, dir string, runArgs []string, gatewayArgs ...string) int {
	t.Helper()
	return killLauncherCount(t, dir, runArgs, nil, gatewayArgs...)
}

// killLauncherCount is killLauncherCountTerms with the counting gateway run
// through wrapper (setpriv, su: it executes its arguments), writing its
// lines to gwlock's stdout, a file.
func killLauncherCount(t *testing.T, dir string, runArgs, wrapper []string, gatewayArgs ...string) int {
	t.Helper()
	trial, err := os.MkdirTemp(dir, "trial")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(trial, "count")
	argv := append([]string{"run", "--lock", filepath.Join(trial, "d.lock")}, runArgs...)
	if wrapper == nil {
		argv = append(argv, "--", testBinary(t), "helper:deathcount", "-out", out)
	} else {
		argv = append(append(append(argv, "--"), wrapper...), "helper:deathcount", "-out", "-")
	}
	argv = append(argv, gatewayArgs...)
	cmd := helperCmd(t, launcherHelper, argv...)
	// A file, not a pipe: the gateway outlives gwlock holding its stderr.
	stderr, err := os.Create(filepath.Join(trial, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	if wrapper != nil {
		stdout, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer stdout.Close()
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	gw := waitCountLine(t, out, "ready", cmd)
	t.Cleanup(func() { _ = syscall.Kill(gw, syscall.SIGKILL) })
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	waitCountLine(t, out, "TERM", nil)
	_ = syscall.Kill(gw, syscall.SIGWINCH)
	waitCountLine(t, out, "done", nil)
	b, _ := os.ReadFile(out)
	return strings.Count(string(b), "TERM\n")
}

// waitCountLine waits for a line starting with word in path and returns
// the pid after it, if any; a launcher that exits first fails the test.
func waitCountLine(t *testing.T, path, word string, launcher *exec.Cmd) int {
	t.Helper()
	for deadline := time.Now().Add(eventWait); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == word {
				if len(f) > 1 {
					n, _ := strconv.Atoi(f[1])
					return n
				}
				return 0
			}
		}
		if launcher != nil && launcher.ProcessState != nil {
			t.Fatalf("gwlock exited before the gateway was ready")
		}
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("no %q line in %s within %s; it holds:\n%s", word, path, eventWait, b)
	return 0
}

// TestLauncherKilledOneStopSignal: each of deathTrials SIGKILLed launchers
// gives its gateway exactly one SIGTERM. Fails with the gateway's
// parent-death signal in place of the pipe (two to four SIGTERMs from a
// multithreaded launcher), and with no signal armed at all.
func TestLauncherKilledOneStopSignal(t *testing.T) {
	eachExecHelper(t, func(t *testing.T) {
		dir := lockDir(t)
		counts := map[int]int{}
		for i := 0; i < deathTrials; i++ {
			counts[killLauncherCountTerms(t, dir, nil)]++
		}
		if counts[1] != deathTrials {
			t.Fatalf("SIGTERMs per killed launcher (count: trials) = %v, want 1: %d", counts, deathTrials)
		}
	})
}

// launcherHelper is the helper that runs gwlock in killLauncherCount.
var launcherHelper = "gwlock"

// eachExecHelper runs f with gwlock starting its gateways through each
// exec helper: the native program, and gwlock itself, the fallback where
// the native one is missing or refused.
func eachExecHelper(t *testing.T, f func(t *testing.T)) {
	for name, helper := range map[string]string{"native": "gwlock", "go": "gwlock-gohelper"} {
		t.Run(name, func(t *testing.T) {
			launcherHelper = helper
			defer func() { launcherHelper = "gwlock" }()
			f(t)
		})
	}
}

func init() {
	helpers["gwlock-gohelper"] = func(args []string) int {
		nativeRefused.Store(true)
		return cli(args, os.Stdout, stderrWriter)
	}
}

// TestLauncherKilledAfterUIDChange: a gateway that dropped root (setuid, as
// setpriv --reuid, su and runuser do before their exec) still gets its one
// stop signal when its launcher is SIGKILLed. Fails with the parent-death
// signal, which the kernel clears at any change of credentials.
func TestLauncherKilledAfterUIDChange(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to change the gateway's uid")
	}
	eachExecHelper(t, func(t *testing.T) {
		dir := lockDir(t)
		for i := 0; i < 3; i++ {
			if n := killLauncherCountTerms(t, dir, nil, "-uid", "65534"); n != 1 {
				t.Fatalf("trial %d: the gateway at uid 65534 handled %d SIGTERMs after its launcher's SIGKILL, want 1", i, n)
			}
		}
	})
}

// TestDeathSignalFlag: --death-signal is what a SIGKILLed launcher's gateway
// gets, once, whatever --stop-signal says; a signal that does not end a
// process, or none (""), is refused as a usage error, as --stop-signal ""
// is. Fails with the flag ignored (the
// gateway counts no SIGUSR2 and gets SIGTERM instead).
func TestDeathSignalFlag(t *testing.T) {
	dir := lockDir(t)
	usr2 := strconv.Itoa(int(syscall.SIGUSR2))
	if n := killLauncherCountTerms(t, dir, []string{"--death-signal", "USR2"}, "-sig", usr2); n != 1 {
		t.Fatalf("the gateway handled %d SIGUSR2 after its launcher's SIGKILL, want 1", n)
	}
	for _, bad := range []string{"SIGSTOP", ""} {
		r := runGwlock(t, nil, "run", "--lock", filepath.Join(dir, "u.lock"), "--death-signal", bad, "--", "true")
		if r.code != exitUsage || !strings.Contains(r.stderr, "--death-signal") {
			t.Fatalf("--death-signal %q: exit %d, want %d naming the flag\n%s", bad, r.code, exitUsage, r.stderr)
		}
	}
}

// TestLauncherKilledAfterSetpriv: a gateway run through setpriv --reuid, a
// uid change made before the gateway's own program runs, gets its one stop
// signal when its launcher is SIGKILLed. Fails with the parent-death signal.
func TestLauncherKilledAfterSetpriv(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to change the gateway's uid")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	exe := sharedTestBinary(t)
	wrapper := []string{setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", exe}
	if n := killLauncherCount(t, lockDir(t), nil, wrapper); n != 1 {
		t.Fatalf("the gateway under setpriv handled %d SIGTERMs after its launcher's SIGKILL, want 1", n)
	}
}

// TestStopThenLauncherKilledOneSignal: a stop (SIGTERM, or SIGHUP's
// restart) sends the gateway its stop signal; a launcher SIGKILLed during
// the drain that follows sends no second one, so the drain is not cut
// short. Fails with the death pipe left armed through the stop: two
// SIGTERMs.
func TestStopThenLauncherKilledOneSignal(t *testing.T) {
	dir := lockDir(t)
	for _, stop := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP} {
		trial, err := os.MkdirTemp(dir, "trial")
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(trial, "count")
		cmd := helperCmd(t, "gwlock", "run", "--lock", filepath.Join(trial, "d.lock"), "--stop-timeout", "1h",
			"--", testBinary(t), "helper:deathcount", "-out", out)
		stderr, err := os.Create(filepath.Join(trial, "stderr"))
		if err != nil {
			t.Fatal(err)
		}
		defer stderr.Close()
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		gw := waitCountLine(t, out, "ready", cmd)
		t.Cleanup(func() { _ = syscall.Kill(gw, syscall.SIGKILL) })
		_ = cmd.Process.Signal(stop)
		// The gateway handled the stop: gwlock has sent it, and drains.
		waitCountLine(t, out, "TERM", nil)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = syscall.Kill(gw, syscall.SIGWINCH)
		waitCountLine(t, out, "done", nil)
		b, _ := os.ReadFile(out)
		if n := strings.Count(string(b), "TERM\n"); n != 1 {
			t.Errorf("%s, then the launcher SIGKILLed during the drain: the gateway handled %d SIGTERMs, want 1", signalName(stop), n)
		}
	}
}
