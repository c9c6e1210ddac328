package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"gwlock/internal/telemetry"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary stands in for every program the tests need, as in
// os/exec's tests: "testbin helper:NAME args..." runs helper NAME instead of
// the tests. The helper is chosen by argument, not by environment, because the
// environment passes through gwlock to the gateway.
var helpers = map[string]func(args []string) int{
	"gwlock":  func(args []string) int { return cli(args, os.Stdout, stderrWriter) },
	"gateway": helperGateway,
	"storm":   helperStorm,
	"spawner": helperSpawner,
	"holder":  helperHolder,
}

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "helper:") {
		h := helpers[strings.TrimPrefix(os.Args[1], "helper:")]
		if h == nil {
			fmt.Fprintf(os.Stderr, "unknown helper %s\n", os.Args[1])
			os.Exit(2)
		}
		os.Exit(h(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// Timing limits for the tests. None of them is a race we hope for: each is
// how long to wait for something that must happen, bounded so a bug fails the
// test instead of hanging it. Each scales with GWLOCK_TEST_SCALE.
var (
	helperDeadline = 60 * time.Second * testScale // no helper process may outlive this
	eventWait      = 10 * time.Second * testScale // for a line or a file to appear
)

// testScale is GWLOCK_TEST_SCALE (a whole factor, at least 1): a slow or
// loaded machine, such as Wine on two shared cores, needs longer limits, not
// different tests. cleanEnv passes it on, so helper processes scale alike.
var testScale = func() time.Duration {
	n, err := strconv.Atoi(os.Getenv("GWLOCK_TEST_SCALE"))
	if err != nil || n < 1 {
		return 1
	}
	return time.Duration(n)
}()

func testBinary(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// helperCmd prepares the test binary as helper name.
func helperCmd(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), helperDeadline)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, testBinary(t), append([]string{"helper:" + name}, args...)...)
	cmd.Env = cleanEnv()
	return cmd
}

// cleanEnv drops GWLOCK_* settings of the developer's shell, so tests see the defaults.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if (!strings.HasPrefix(kv, "GWLOCK_") || strings.HasPrefix(kv, "GWLOCK_TEST_SCALE=")) && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			env = append(env, kv)
		}
	}
	// Under -race every process would otherwise sleep 1 s at exit.
	env = append(env, "GORACE=atexit_sleep_ms=0")
	return append(env, extra...)
}

// result is a finished gwlock run.
type result struct {
	code   int
	stdout string
	stderr string
}

func (r result) events() []map[string]string { return parseLogfmt(r.stderr) }

// runGwlock runs the test binary as gwlock and waits for it.
func runGwlock(t testing.TB, env []string, args ...string) result {
	t.Helper()
	cmd := helperCmd(t, "gwlock", args...)
	cmd.Env = append(cmd.Env, env...)
	return runCmd(t, cmd)
}

// runCmd runs cmd to the end and collects its exit code and output.
func runCmd(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	for try := 1; try < 4 && wineCreateFailed(err); try++ {
		// Wine's CreateProcess fails now and then with "Internal error" on a
		// loaded machine, before anything ran: the test, not gwlock, retries.
		time.Sleep(time.Duration(try) * 100 * time.Millisecond)
		again := exec.CommandContext(context.Background(), cmd.Path, cmd.Args[1:]...)
		again.Env, again.Dir, again.Stdin, again.Stdout, again.Stderr = cmd.Env, cmd.Dir, cmd.Stdin, &out, &errb
		cmd, err = again, again.Run()
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// wineCreateFailed recognises Wine's spurious CreateProcess failure.
func wineCreateFailed(err error) bool {
	return runtime.GOOS == "windows" && err != nil && strings.Contains(err.Error(), "Internal error")
}

// mustRecover checks that a run succeeded by reclaiming a stale lock for reason.
func mustRecover(t testing.TB, r result, reason string) map[string]string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit = %d, want 0; stderr:\n%s", r.code, r.stderr)
	}
	ev := mustEvent(t, r.events(), "stale-lock-recovered", "lock", "owner_pid", "reason", "waited_ms", "attempt")
	if ev["reason"] != reason {
		t.Fatalf("stale-lock-recovered reason = %s, want %s", ev["reason"], reason)
	}
	return ev
}

// background is a gwlock (or other helper) running while the test goes on.
type background struct {
	cmd    *exec.Cmd
	lines  chan string // stderr, line by line
	stdout *lockedBuffer
	done   chan error
	seen   []string
}

func startHelper(t testing.TB, name string, env []string, args ...string) *background {
	t.Helper()
	cmd := helperCmd(t, name, args...)
	cmd.Env = append(cmd.Env, env...)
	pr, pw := io.Pipe()
	b := &background{cmd: cmd, lines: make(chan string, 1024), stdout: new(lockedBuffer), done: make(chan error, 1)}
	cmd.Stderr = pw
	cmd.Stdout = b.stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			b.lines <- sc.Text()
		}
		close(b.lines)
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		b.done <- err
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	return b
}

// lockedBuffer is a helper's stdout, written by exec's copier and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitEvent reads stderr until a line with event=name arrives.
func (b *background) waitEvent(t testing.TB, name string) map[string]string {
	t.Helper()
	timeout := time.After(eventWait)
	for {
		select {
		case line, ok := <-b.lines:
			if !ok {
				t.Fatalf("helper ended before event %s; stderr:\n%s", name, strings.Join(b.seen, "\n"))
			}
			b.seen = append(b.seen, line)
			for _, ev := range parseLogfmt(line) {
				if ev["event"] == name {
					return ev
				}
			}
		case <-timeout:
			t.Fatalf("no event %s within %s; stderr so far:\n%s", name, eventWait, strings.Join(b.seen, "\n"))
		}
	}
}

// wait returns the helper's exit code and the rest of its stderr.
func (b *background) wait(t testing.TB) (int, string) {
	t.Helper()
	var rest []string
	for line := range b.lines {
		rest = append(rest, line)
	}
	b.seen = append(b.seen, rest...)
	err := <-b.done
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), strings.Join(b.seen, "\n")
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, strings.Join(b.seen, "\n")
}

func (b *background) signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := b.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// parseLogfmt splits telemetry lines into key=value maps. Quoted values are
// unquoted; lines that are not logfmt (errors) are skipped.
func parseLogfmt(s string) []map[string]string {
	var out []map[string]string
	for _, line := range strings.Split(s, "\n") {
		if !strings.Contains(line, "event=") {
			continue
		}
		m := map[string]string{}
		for rest := strings.TrimSpace(line); rest != ""; rest = strings.TrimSpace(rest) {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 {
				break
			}
			key := rest[:eq]
			rest = rest[eq+1:]
			var val string
			if strings.HasPrefix(rest, `"`) {
				q, err := strconv.QuotedPrefix(rest)
				if err != nil {
					break
				}
				val, _ = strconv.Unquote(q)
				rest = rest[len(q):]
			} else if sp := strings.IndexByte(rest, ' '); sp >= 0 {
				val, rest = rest[:sp], rest[sp:]
			} else {
				val, rest = rest, ""
			}
			m[key] = val
		}
		out = append(out, m)
	}
	return out
}

func findEvents(evs []map[string]string, name string) []map[string]string {
	var out []map[string]string
	for _, e := range evs {
		if e["event"] == name {
			out = append(out, e)
		}
	}
	return out
}

func mustEvent(t testing.TB, evs []map[string]string, name string, keys ...string) map[string]string {
	t.Helper()
	found := findEvents(evs, name)
	if len(found) == 0 {
		t.Fatalf("no %s event in %v", name, evs)
	}
	for _, k := range keys {
		if _, ok := found[0][k]; !ok {
			t.Errorf("event %s lacks key %s: %v", name, k, found[0])
		}
	}
	return found[0]
}

// tempDir is t.TempDir, except under Wine, whose missing POSIX-delete
// support makes Go's RemoveAll (and so TempDir's cleanup) fail the test.
func tempDir(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "windows" {
		return t.TempDir()
	}
	d, err := os.MkdirTemp("", "gwlock-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// lockDir returns a private directory for one test's locks.
func lockDir(t testing.TB) string {
	t.Helper()
	d := tempDir(t)
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

// mustOpenDir checks and opens dir as an explicit lock dir, as run does;
// it is closed when the test ends.
func mustOpenDir(t testing.TB, dir string) *checkedDir {
	t.Helper()
	d, err := openLockDir(dir, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close() })
	return d
}

// writeLockFile puts a lock file with the given contents at path, as a
// holder that crashed (or a legacy writer) would have left it, aged by age.
func writeLockFile(t testing.TB, path string, contents []byte, age time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, contents, 0o600); err != nil {
		t.Fatal(err)
	}
	if age > 0 {
		old := time.Now().Add(-age)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deadPID returns the PID of a process that has exited and been reaped.
func deadPID(t testing.TB) int {
	t.Helper()
	cmd := helperCmd(t, "gateway", "-exit", "0")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// liveProcess starts a process that lives until the test ends.
func liveProcess(t testing.TB) int {
	t.Helper()
	cmd := helperCmd(t, "gateway", "-sleep", "60s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFile(t testing.TB, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return b
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s did not appear within %s", path, eventWait)
	return nil
}

// gatewayOpts are the fake gateway's behaviours, one flag each.
type gatewayOpts struct {
	exitCode, listen, termExit, orphans                           int
	sleep, listenAfter, linger, drain                             time.Duration
	ignoreTerm, daemonize, spawnDaemon, closeLock, childCloseLock bool
	childIgnoreTerm                                               bool
	pidFile, sigFile, zombieReport, envFile, tokenFile, copyLock  string
	argsFile, lockMode, exclusive, childPidfile, openFile, await  string
	args                                                          []string // after the flags
}

func parseGatewayOpts(args []string) (*gatewayOpts, error) {
	o := &gatewayOpts{}
	set := flag.NewFlagSet("gateway", flag.ContinueOnError)
	set.IntVar(&o.exitCode, "exit", 0, "exit code")
	set.DurationVar(&o.sleep, "sleep", 0, "run this long before exiting")
	set.IntVar(&o.listen, "listen", 0, "listen on 127.0.0.1:port")
	set.DurationVar(&o.listenAfter, "listen-after", 0, "boot time before listening")
	set.BoolVar(&o.ignoreTerm, "ignore-term", false, "ignore SIGTERM")
	set.IntVar(&o.termExit, "term-exit", -1, "exit with this code on SIGTERM")
	set.StringVar(&o.pidFile, "pidfile", "", "append our pid here on start")
	set.StringVar(&o.sigFile, "sigfile", "", "append each signal received here")
	set.IntVar(&o.orphans, "orphans", 0, "leave this many orphans to our parent's reaper")
	set.StringVar(&o.zombieReport, "zombie-report", "", "after the orphans died, write the zombie count here")
	set.StringVar(&o.envFile, "envfile", "", "write GWLOCK_LOCK_PATH here")
	set.StringVar(&o.tokenFile, "token-file", "", "write GWLOCK_LOCK_TOKEN here")
	set.StringVar(&o.copyLock, "copy-lock", "", "copy the file named by GWLOCK_LOCK_PATH here")
	set.StringVar(&o.argsFile, "argsfile", "", "write our arguments here, one per line")
	set.StringVar(&o.lockMode, "lock-mode", "", "write the permission bits of GWLOCK_LOCK_PATH here")
	set.StringVar(&o.exclusive, "exclusive", "", "hold a record lock on this marker for our whole life; report overlap in MARKER.violations")
	set.StringVar(&o.childPidfile, "child-pidfile", "", "start a sleeping child in our process group and write its pid here")
	set.BoolVar(&o.daemonize, "daemonize", false, "start a copy of ourselves in a new session (with one -daemonize less: give it twice for a double fork), then exit with -exit after -linger")
	set.DurationVar(&o.linger, "linger", 0, "with -daemonize: how long to stay after starting the daemon")
	set.BoolVar(&o.spawnDaemon, "spawn-daemon", false, "start a copy of ourselves in a new session (without this flag) and go on running")
	set.BoolVar(&o.closeLock, "close-lock", false, "close the inherited lock descriptor (fd 3) first, as daemons that close all files do")
	set.BoolVar(&o.childCloseLock, "child-close-lock", false, "with -child-pidfile: the child closes the inherited lock descriptor")
	set.BoolVar(&o.childIgnoreTerm, "child-ignore-term", false, "with -child-pidfile: the child ignores SIGTERM")
	set.StringVar(&o.openFile, "open", "", "keep this file open for reading, as a bystander (tail -f) would")
	set.StringVar(&o.await, "await", "", "before anything else, wait until this file exists")
	set.DurationVar(&o.drain, "drain", 0, "on the first SIGTERM or SIGINT, drain this long, then exit with -term-exit (or 0); a second one aborts the drain: exit 99")
	err := set.Parse(args)
	o.args = set.Args()
	return o, err
}

// helperGateway is a fake gateway with the behaviours the supervision tests need.
func helperGateway(args []string) int {
	o, err := parseGatewayOpts(args)
	if err != nil {
		return 2
	}
	for o.await != "" {
		if _, err := os.Stat(o.await); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if o.daemonize {
		if err := startDaemon(withoutFlag(args, "-daemonize")); err != nil {
			fmt.Fprintln(os.Stderr, "daemonize:", err)
			return 4
		}
		time.Sleep(o.linger)
		return o.exitCode
	}
	if o.spawnDaemon {
		if err := startDaemon(withoutFlag(args, "-spawn-daemon")); err != nil {
			fmt.Fprintln(os.Stderr, "spawn daemon:", err)
			return 4
		}
	}
	if o.closeLock {
		closeInheritedLock()
	}
	if o.openFile != "" {
		f, err := os.Open(o.openFile)
		if err != nil {
			return 5
		}
		defer f.Close()
	}
	o.reportFacts()
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, gatewaySignals...)
	if o.ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if o.exclusive != "" && !holdExclusive(o.exclusive) {
		return 3
	}
	// Written once the signal handlers are in place: tests that signal the
	// gateway wait for this file first.
	if o.pidFile != "" {
		appendLine(o.pidFile, strconv.Itoa(os.Getpid()))
	}
	o.serve()
	return o.run(sigs)
}

// reportFacts writes what the gateway was given where the test asked.
func (o *gatewayOpts) reportFacts() {
	if o.envFile != "" {
		appendLine(o.envFile, os.Getenv("GWLOCK_LOCK_PATH"))
	}
	if o.tokenFile != "" {
		appendLine(o.tokenFile, os.Getenv("GWLOCK_LOCK_TOKEN"))
	}
	if o.childPidfile != "" {
		exe, _ := os.Executable()
		childArgs := []string{"helper:gateway", "-sleep", "60s"}
		if o.childCloseLock {
			childArgs = append(childArgs, "-close-lock")
		}
		if o.childIgnoreTerm {
			// The child says its pid once SIGTERM is ignored, not before.
			childArgs = append(childArgs, "-ignore-term", "-pidfile", o.childPidfile)
		}
		child := exec.Command(exe, childArgs...)
		if child.Start() == nil && !o.childIgnoreTerm {
			appendLine(o.childPidfile, strconv.Itoa(child.Process.Pid))
		}
	}
	if o.argsFile != "" {
		appendLine(o.argsFile, strings.Join(o.args, "\n"))
	}
	if o.lockMode != "" {
		if fi, err := os.Lstat(os.Getenv("GWLOCK_LOCK_PATH")); err == nil {
			appendLine(o.lockMode, fmt.Sprintf("%04o", fi.Mode().Perm()))
		}
	}
	if o.copyLock != "" {
		b, _ := os.ReadFile(os.Getenv("GWLOCK_LOCK_PATH"))
		_ = os.WriteFile(o.copyLock, b, 0o600)
	}
}

// serve listens on -listen and leaves -orphans behind.
func (o *gatewayOpts) serve() {
	if o.listen != 0 {
		go func() {
			time.Sleep(o.listenAfter)
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(o.listen))
			if err != nil {
				os.Exit(98)
			}
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	if o.orphans > 0 {
		spawnOrphans(o.orphans)
		if o.zombieReport != "" {
			time.Sleep(500 * time.Millisecond)
			// Orphans go to the nearest reaper: our parent (gwlock as PID 1 or
			// subreaper), or ourselves when we are PID 1.
			reaper := os.Getppid()
			if os.Getpid() == 1 {
				reaper = 1
			}
			appendLine(o.zombieReport, strconv.Itoa(countZombies(reaper)))
		}
	}
}

// run lives until -sleep passes or a stop signal ends it, and returns the
// exit code.
func (o *gatewayOpts) run(sigs chan os.Signal) int {
	var timer <-chan time.Time
	if o.sleep > 0 {
		timer = time.After(o.sleep)
	} else if o.listen == 0 && o.sigFile == "" && !o.ignoreTerm && o.termExit < 0 {
		return o.exitCode
	}
	var drained <-chan time.Time
	for {
		select {
		case <-timer:
			return o.exitCode
		case <-drained:
			return max(o.termExit, 0)
		case s := <-sigs:
			if o.sigFile != "" {
				appendLine(o.sigFile, s.String())
			}
			stop := s == syscall.SIGTERM || s == os.Interrupt
			if stop && o.drain > 0 {
				if drained != nil {
					return 99 // a second stop signal cut the drain short
				}
				drained = time.After(o.drain)
				continue
			}
			if stop && !o.ignoreTerm {
				if o.termExit >= 0 {
					return o.termExit
				}
				dieOfSignal(s.(syscall.Signal))
			}
		}
	}
}

func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

// spawnOrphans starts a spawner that starts n short-lived processes and exits
// at once: they are re-parented to the nearest reaper, which must reap them.
func spawnOrphans(n int) {
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "helper:spawner", strconv.Itoa(n))
	_ = cmd.Run()
}

func helperSpawner(args []string) int {
	n, _ := strconv.Atoi(args[0])
	exe, _ := os.Executable()
	for i := 0; i < n; i++ {
		cmd := exec.Command(exe, "helper:gateway", "-sleep", "100ms")
		_ = cmd.Start()
	}
	return 0
}

// countZombies counts zombie children of parent visible in /proc.
func countZombies(parent int) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(parent) {
			n++
		}
	}
	return n
}

// helperStorm acquires and releases a lock n times, checking inside each
// critical section that nobody else is inside: the marker file is created
// with O_EXCL, so a second process inside at the same moment fails to
// create it. It prints "ok <stale recoveries>" or "VIOLATION".
func helperStorm(args []string) int {
	set := flag.NewFlagSet("storm", flag.ContinueOnError)
	lock := set.String("lock", "", "lock path")
	marker := set.String("marker", "", "critical-section marker")
	n := set.Int("n", 1, "iterations")
	hold := set.Duration("hold", 0, "time inside the critical section")
	pauseReclaim := set.Duration("pause-reclaim", 0, "pause between judging a dead owner and removing its file")
	wait := set.Bool("wait-stdin", false, "start when stdin closes (a starting gun for all contenders)")
	timeout := set.Duration("timeout", 30*time.Second*testScale, "acquire timeout")
	noflock := set.Bool("noflock", false, "act as on a filesystem without kernel locks")
	if set.Parse(args) != nil {
		return 2
	}
	if *noflock {
		noKernelLocksHere()
	}
	if *pauseReclaim > 0 {
		testHookBeforeReclaim = func() { time.Sleep(*pauseReclaim) }
	}
	if *wait {
		_, _ = io.Copy(io.Discard, os.Stdin)
	}
	recoveries := 0
	for i := 0; i < *n; i++ {
		log := telemetry.New(&countingWriter{event: "stale-lock-recovered", n: &recoveries}, "text", false)
		l, err := acquire(lockOptions{Path: *lock, ConfigPath: *lock, Timeout: *timeout, Poll: 10 * time.Millisecond, Stale: 30 * time.Second, Log: log})
		if err != nil {
			// The type too: once under Wine an error's own Error method panicked.
			fmt.Printf("ERROR %v (%T)\n", err, err)
			return 1
		}
		f, err := os.OpenFile(*marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			fmt.Println("VIOLATION", err)
			return 3
		}
		f.Close()
		if *hold > 0 {
			time.Sleep(*hold)
		}
		if err := os.Remove(*marker); err != nil {
			fmt.Println("VIOLATION", err)
			return 3
		}
		if err := l.release(nil); err != nil {
			fmt.Printf("ERROR %v (%T)\n", err, err)
			return 1
		}
	}
	fmt.Println("ok", recoveries)
	return 0
}

type countingWriter struct {
	event string
	n     *int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("event="+c.event+" ")) {
		*c.n++
	}
	return len(p), nil
}

// helperHolder takes a lock, says "held" on stdout, and keeps it until
// killed. With -payload it then overwrites its own payload, to show that the
// kernel lock, not the payload, decides.
func helperHolder(args []string) int {
	set := flag.NewFlagSet("holder", flag.ContinueOnError)
	lock := set.String("lock", "", "lock path")
	payload := set.String("payload", "", "replace our payload with this")
	if set.Parse(args) != nil {
		return 2
	}
	l, err := acquire(lockOptions{Path: *lock, ConfigPath: *lock, Timeout: 10 * time.Second, Poll: 10 * time.Millisecond, Stale: 30 * time.Second})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	if *payload != "" {
		b := []byte(*payload)
		if err := l.f.writePayload(append(b, bytes.Repeat([]byte(" "), 600)...)); err != nil {
			fmt.Println("ERROR", err)
			return 1
		}
	}
	fmt.Println("held")
	time.Sleep(helperDeadline)
	return 0
}

// withoutFlag is args with the first occurrence of flag removed.
func withoutFlag(args []string, flag string) []string {
	for i, a := range args {
		if a == flag {
			return append(append([]string{}, args[:i]...), args[i+1:]...)
		}
	}
	return args
}
