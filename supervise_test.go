//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// What a real gateway (openclaw) needs from its launcher. The
// gateway here is helperReadyGateway, the test binary acting as a gateway
// that serves /startupz late, drains slowly, reports on $NOTIFY_SOCKET.

func init() { helpers["readygw"] = helperReadyGateway }

// helperReadyGateway is a gateway in openclaw's manner: it accepts TCP at
// once, answers /startupz 503 "starting" until -ready-after, then 200
// "started" (writing -startedfile just before the switch); with -notify it
// sends STATUS= and READY=1 to $NOTIFY_SOCKET once started; on its stop
// signal (-stop-sig, SIGTERM by default) it drains for -drain, then exits 0.
func helperReadyGateway(args []string) int {
	set := flag.NewFlagSet("readygw", flag.ContinueOnError)
	port := set.Int("http", 0, "serve /startupz on 127.0.0.1:port")
	readyAfter := set.Duration("ready-after", 0, "answer 503 until then")
	never := set.Bool("never-ready", false, "answer 503 forever")
	startedFile := set.String("startedfile", "", "written just before /startupz and READY=1 say started")
	notify := set.Bool("notify", false, "send STATUS=, then READY=1 to $NOTIFY_SOCKET once started")
	notifyAfter := set.Duration("notify-after", 0, "with -notify: wait this long after /startupz says started")
	notifiedFile := set.String("notifiedfile", "", "written just before READY=1 is sent")
	drain := set.Duration("drain", 0, "on the stop signal, drain this long, then exit 0")
	stopSig := set.Int("stop-sig", int(syscall.SIGTERM), "the signal that stops us")
	sigFile := set.String("sigfile", "", "append each signal received here")
	envFile := set.String("envfile", "", "write our environment here")
	once := set.Bool("once", false, "exit 0 once the environment is written")
	if set.Parse(args) != nil {
		return 2
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	if *envFile != "" {
		_ = os.WriteFile(*envFile, []byte(strings.Join(os.Environ(), "\n")+"\n"), 0o600)
	}
	if *once {
		return 0
	}
	var started atomic.Bool
	if *port != 0 && !serveStartupz(*port, &started) {
		return 98
	}
	if !*never {
		go func() {
			time.Sleep(*readyAfter)
			if *startedFile != "" {
				appendLine(*startedFile, strconv.FormatInt(time.Now().UnixNano(), 10))
			}
			started.Store(true)
			if *notify {
				time.Sleep(*notifyAfter)
				notifyReady(*notifiedFile)
			}
		}()
	}
	for s := range sigs {
		if *sigFile != "" {
			appendLine(*sigFile, signalName(s))
		}
		if s == syscall.Signal(*stopSig) {
			time.Sleep(*drain)
			return 0
		}
	}
	return 0
}

// serveStartupz answers /startupz on 127.0.0.1:port: 503 "starting" until
// started, then 200 "started". False: the port could not be bound.
func serveStartupz(port int, started *atomic.Bool) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/startupz" || !started.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, `{"status":"starting"}`)
				return
			}
			fmt.Fprintln(w, `{"status":"started"}`)
		}))
	}()
	return true
}

// notifyReady sends STATUS=, then READY=1, writing notifiedFile (if
// named) just before.
func notifyReady(notifiedFile string) {
	if notifiedFile != "" {
		appendLine(notifiedFile, "READY=1")
	}
	sendNotify("STATUS=warming up")
	sendNotify("READY=1\nMAINPID=1\nSTATUS=serving")
}

func sendNotify(state string) {
	c, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte(state))
}

// listenNotify is a stand-in for systemd's notification socket.
func listenNotify(t *testing.T, dir string) (string, *net.UnixConn) {
	t.Helper()
	path := filepath.Join(dir, "systemd.notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return path, conn
}

func readNotify(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(eventWait))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification within %s: %v", eventWait, err)
	}
	return string(buf[:n])
}

// TestReadyURLWaitsForStarted: with --ready-url, gateway-ready and READY=1
// wait for a 2xx, not for the TCP accept that comes first. Fails with the
// TCP probe alone (newReadiness ignoring readyURL): gateway-ready then comes
// while /startupz still answers 503 and the started file is absent.
func TestReadyURLWaitsForStarted(t *testing.T) {
	dir := lockDir(t)
	sock, conn := listenNotify(t, dir)
	port, started := freePort(t), filepath.Join(dir, "started")
	g := startHelper(t, "gwlock", []string{"NOTIFY_SOCKET=" + sock}, "run", "--lock", filepath.Join(dir, "u.lock"),
		"--port", strconv.Itoa(port), "--ready-url", "http://127.0.0.1:"+strconv.Itoa(port)+"/startupz",
		"--", testBinary(t), "helper:readygw", "-http", strconv.Itoa(port), "-ready-after", "500ms", "-startedfile", started)
	ev := g.waitEvent(t, "gateway-ready")
	if ev["by"] != "http" {
		t.Errorf("gateway-ready by = %q, want http", ev["by"])
	}
	if _, err := os.Stat(started); err != nil {
		t.Fatalf("gateway-ready (%v) before /startupz said started", ev)
	}
	if got, want := readNotify(t, conn), "READY=1\nMAINPID="+strconv.Itoa(g.cmd.Process.Pid); got != want {
		t.Fatalf("systemd got %q, want %q", got, want)
	}
	g.signal(t, syscall.SIGTERM)
	if code, out := g.wait(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0\n%s", code, out)
	}
}

// TestHTTPReady: the probe's own verdicts: 2xx only, each try bounded.
func TestHTTPReady(t *testing.T) {
	var code atomic.Int32
	code.Store(503)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.RequestURI() != "/startupz?x=1" {
				w.WriteHeader(404)
				return
			}
			w.WriteHeader(int(code.Load()))
		}))
	}()
	url := "http://" + l.Addr().String() + "/startupz?x=1"
	for _, c := range []int32{503, 404, 301, 200, 204} {
		code.Store(c)
		if got, want := httpReady(url, time.Second), c/100 == 2; got != want {
			t.Errorf("httpReady with status %d = %v, want %v", c, got, want)
		}
	}
	// A listener that never answers: the try ends at its bound.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	begin := time.Now()
	if httpReady("http://"+silent.Addr().String()+"/", 200*time.Millisecond) {
		t.Fatal("httpReady = true for a server that never answers")
	}
	if took := time.Since(begin); took > eventWait/2 {
		t.Fatalf("httpReady took %s with a 200ms bound", took)
	}
}

// TestReadyNotifyRelay: the gateway gets a NOTIFY_SOCKET of its own, in the
// lock dir; its STATUS= goes on to systemd at once, its READY=1 becomes
// gwlock's (MAINPID= gwlock), its MAINPID= is dropped, and the socket is
// gone after the run. Fails without the relay (the gateway would see
// systemd's socket, or none), or with the READY relayed as it is.
func TestReadyNotifyRelay(t *testing.T) {
	dir := lockDir(t)
	sock, conn := listenNotify(t, dir)
	lock, envFile, started := filepath.Join(dir, "n.lock"), filepath.Join(dir, "env"), filepath.Join(dir, "started")
	g := startHelper(t, "gwlock", []string{"NOTIFY_SOCKET=" + sock}, "run", "--lock", lock, "--ready-notify",
		"--", testBinary(t), "helper:readygw", "-notify", "-ready-after", "300ms", "-envfile", envFile, "-startedfile", started)
	if got := readNotify(t, conn); got != "STATUS=warming up" {
		t.Fatalf("first notification = %q, want the gateway's STATUS=warming up (no READY=1 before it)", got)
	}
	ev := g.waitEvent(t, "gateway-ready")
	if ev["by"] != "notify" {
		t.Errorf("gateway-ready by = %q, want notify", ev["by"])
	}
	if _, err := os.Stat(started); err != nil {
		t.Fatal("gateway-ready before the gateway said READY=1")
	}
	got := []string{readNotify(t, conn), readNotify(t, conn)}
	want := []string{"READY=1\nMAINPID=" + strconv.Itoa(g.cmd.Process.Pid), "STATUS=serving"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("systemd got %q, want %q", got, want)
	}
	env, _ := os.ReadFile(envFile)
	relay := lock + notifySuffix
	if !strings.Contains(string(env), "\nNOTIFY_SOCKET="+relay+"\n") || strings.Contains(string(env), sock) {
		t.Fatalf("the gateway's NOTIFY_SOCKET is not gwlock's relay %s:\n%s", relay, env)
	}
	g.signal(t, syscall.SIGTERM)
	g.wait(t)
	if _, err := os.Lstat(relay); !os.IsNotExist(err) {
		t.Fatalf("relay socket %s left after the run: %v", relay, err)
	}
}

// TestReadyNeedsEveryCheck: with --ready-url and --ready-notify, a 2xx
// alone is not ready: gateway-ready waits for the READY=1 that comes later.
// Fails if readiness is the first check to pass instead of all of them.
func TestReadyNeedsEveryCheck(t *testing.T) {
	dir := lockDir(t)
	port, notified := freePort(t), filepath.Join(dir, "notified")
	g := startHelper(t, "gwlock", nil, "run", "--lock", filepath.Join(dir, "a.lock"), "--port", strconv.Itoa(port),
		"--ready-url", "http://127.0.0.1:"+strconv.Itoa(port)+"/startupz", "--ready-notify",
		"--", testBinary(t), "helper:readygw", "-http", strconv.Itoa(port), "-notify", "-notify-after", "300ms", "-notifiedfile", notified)
	ev := g.waitEvent(t, "gateway-ready")
	if ev["by"] != "http+notify" {
		t.Errorf("gateway-ready by = %q, want http+notify", ev["by"])
	}
	if _, err := os.Stat(notified); err != nil {
		t.Fatalf("gateway-ready (%v) on the HTTP probe alone, before the gateway's READY=1", ev)
	}
	g.signal(t, syscall.SIGTERM)
	g.wait(t)
}

// TestReadyTimeout: a gateway that never gets ready within --ready-timeout
// is stopped (stop reason=ready-timeout) and the run ends with 124; with
// --restart on-failure it is restarted instead. Fails without the timer.
func TestReadyTimeout(t *testing.T) {
	dir := lockDir(t)
	port := freePort(t)
	args := []string{"run", "--lock", filepath.Join(dir, "t.lock"), "--port", strconv.Itoa(port),
		"--ready-url", "http://127.0.0.1:" + strconv.Itoa(port) + "/startupz", "--ready-timeout", "300ms"}
	gw := []string{"--", testBinary(t), "helper:readygw", "-http", strconv.Itoa(port), "-never-ready"}
	r := runGwlock(t, nil, append(args, gw...)...)
	if r.code != exitReadyTimeout {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitReadyTimeout, r.stderr)
	}
	mustEvent(t, r.events(), "ready-timeout", "pid", "timeout_ms")
	if ev := mustEvent(t, r.events(), "stop", "signal", "reason"); ev["reason"] != "ready-timeout" || ev["signal"] != "SIGTERM" {
		t.Fatalf("stop = %v, want signal=SIGTERM reason=ready-timeout", ev)
	}
	if len(findEvents(r.events(), "gateway-ready")) != 0 {
		t.Fatal("gateway-ready for a gateway that never got ready")
	}
	g := startHelper(t, "gwlock", nil, append(append(args, "--restart", "on-failure"), gw...)...)
	if ev := g.waitEvent(t, "restart"); ev["reason"] != "ready-timeout" || ev["last_exit"] != "124" {
		t.Fatalf("restart = %v, want reason=ready-timeout last_exit=124", ev)
	}
	g.signal(t, syscall.SIGTERM)
	g.wait(t)
}

// TestStopSignalAndEvents: --stop-signal is what the gateway gets when gwlock
// is asked to stop by SIGTERM or SIGQUIT (never SIGQUIT itself), the stop is
// logged with who asked, and a drain within --stop-timeout is not cut short.
// Fails if the received signal is forwarded as it is (the gateway records
// SIGTERM/SIGQUIT) or without the stop line.
func TestStopSignalAndEvents(t *testing.T) {
	for _, asked := range []syscall.Signal{syscall.SIGTERM, syscall.SIGQUIT} {
		dir := lockDir(t)
		sigFile, started := filepath.Join(dir, "sigs"), filepath.Join(dir, "started")
		g := startHelper(t, "gwlock", nil, "run", "--lock", filepath.Join(dir, "s.lock"), "--stop-signal", "USR1",
			"--stop-timeout", "30s", "--", testBinary(t), "helper:readygw", "-stop-sig", strconv.Itoa(int(syscall.SIGUSR1)),
			"-drain", "300ms", "-sigfile", sigFile, "-startedfile", started)
		waitFile(t, started) // its handlers are in place
		g.signal(t, asked)
		code, out := g.wait(t)
		if code != 0 {
			t.Fatalf("%v: exit %d, want the drained gateway's 0\n%s", asked, code, out)
		}
		ev := mustEvent(t, parseLogfmt(out), "stop", "pid", "signal", "reason", "by", "timeout_ms")
		if ev["signal"] != "SIGUSR1" || ev["reason"] != "signal" || ev["by"] != signalName(asked) || ev["timeout_ms"] != "30000" {
			t.Errorf("%v: stop = %v, want signal=SIGUSR1 reason=signal by=%s timeout_ms=30000", asked, ev, signalName(asked))
		}
		if len(findEvents(parseLogfmt(out), "stop-escalated")) != 0 {
			t.Errorf("%v: a drain within --stop-timeout was escalated", asked)
		}
		if b, _ := os.ReadFile(sigFile); string(b) != "SIGUSR1\n" {
			t.Errorf("%v: the gateway received %q, want only SIGUSR1", asked, b)
		}
	}
}

// TestStopEscalatedLogged: a gateway that outlasts --stop-timeout is killed,
// and the escalation is one line with how long the grace was.
func TestStopEscalatedLogged(t *testing.T) {
	dir := lockDir(t)
	started := filepath.Join(dir, "started")
	g := startHelper(t, "gwlock", nil, "run", "--lock", filepath.Join(dir, "k.lock"), "--stop-timeout", "200ms",
		"--", testBinary(t), "helper:readygw", "-drain", "60s", "-startedfile", started)
	waitFile(t, started)
	g.signal(t, syscall.SIGTERM)
	code, out := g.wait(t)
	if code != 137 {
		t.Fatalf("exit %d, want 137\n%s", code, out)
	}
	ev := mustEvent(t, parseLogfmt(out), "stop-escalated", "pid", "signal", "reason", "after_ms")
	if after, _ := strconv.ParseFloat(ev["after_ms"], 64); after < 200 || ev["reason"] != "signal" || ev["signal"] != "SIGKILL" {
		t.Fatalf("stop-escalated = %v, want SIGKILL after at least 200 ms for reason=signal", ev)
	}
}

// TestDeathSignalFollowsStopSignal (Linux, FreeBSD): a gateway whose
// launcher is SIGKILLed gets --stop-signal, not a fixed SIGTERM, so it
// drains as on any other stop. Fails with the parent-death signal fixed.
func TestDeathSignalFollowsStopSignal(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "freebsd" {
		t.Skip("no parent-death signal on this OS")
	}
	dir := lockDir(t)
	sigFile, started := filepath.Join(dir, "sigs"), filepath.Join(dir, "started")
	g := startHelper(t, "gwlock", nil, "run", "--lock", filepath.Join(dir, "d.lock"), "--stop-signal", "SIGUSR2",
		"--", testBinary(t), "helper:readygw", "-stop-sig", strconv.Itoa(int(syscall.SIGUSR2)), "-sigfile", sigFile, "-startedfile", started)
	ev := g.waitEvent(t, "child-start")
	waitFile(t, started)
	pid, _ := strconv.Atoi(ev["pid"])
	// A gateway that got the wrong signal lives on, holding our stderr pipe:
	// it is killed at the end, and nothing here waits for the pipe.
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	_ = g.cmd.Process.Kill()
	waitLines(t, sigFile, 1)
	if b, _ := os.ReadFile(sigFile); string(b) != "SIGUSR2\n" {
		t.Fatalf("the orphaned gateway received %q, want SIGUSR2", b)
	}
	waitGone(t, pid)
}

// TestRestartByExitCode: an exit 78 is never restarted (logged, gwlock exits
// 78); a code in --restart-force-exit-status is restarted even under
// --restart no; a SIGTERM during the backoff exits 143. Each fails with
// restartFor reduced to the policy alone.
func TestRestartByExitCode(t *testing.T) {
	dir := lockDir(t)
	lock, pids := filepath.Join(dir, "x.lock"), filepath.Join(dir, "pids")
	r := runGwlock(t, nil, "run", "--lock", lock, "--restart", "always", "--", testBinary(t), "helper:gateway", "-exit", "78", "-pidfile", pids)
	if r.code != exitEXConfig || len(readPIDs(t, pids)) != 1 || len(findEvents(r.events(), "restart")) != 0 {
		t.Fatalf("exit 78 under --restart always: code %d, ran %d times\n%s", r.code, len(readPIDs(t, pids)), r.stderr)
	}
	if ev := mustEvent(t, r.events(), "restart-prevented", "code", "policy"); ev["code"] != "78" || ev["policy"] != "always" {
		t.Fatalf("restart-prevented = %v", ev)
	}
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--restart-force-exit-status", "0,3",
		"--", testBinary(t), "helper:gateway", "-exit", "3")
	if ev := g.waitEvent(t, "restart"); ev["last_exit"] != "3" {
		t.Fatalf("restart = %v, want one after exit 3 under --restart no", ev)
	}
	g.signal(t, syscall.SIGTERM)
	code, out := g.wait(t)
	if code != 143 {
		t.Fatalf("SIGTERM during the backoff: exit %d, want 143\n%s", code, out)
	}
	if r := runGwlock(t, nil, "run", "--lock", lock, "--restart-prevent-exit-status", "", "--restart", "on-failure",
		"--restart-force-exit-status", "78", "--", "true"); r.code != 0 {
		t.Fatalf("clearing the prevent list: exit %d\n%s", r.code, r.stderr)
	}
	if r := runGwlock(t, nil, "run", "--lock", lock, "--restart-force-exit-status", "78", "--", "true"); r.code != exitUsage {
		t.Fatalf("78 in both lists: exit %d, want %d", r.code, exitUsage)
	}
}

func TestRestartFor(t *testing.T) {
	prevent, force := exitCodes{78}, exitCodes{0, 75}
	for _, tc := range []struct {
		policy       string
		code         int
		want, byCode bool
	}{
		{"on-failure", 78, false, true}, {"always", 78, false, true}, {"no", 78, false, true},
		{"no", 0, true, true}, {"on-failure", 0, true, true}, {"no", 75, true, true},
		{"on-failure", 1, true, false}, {"no", 1, false, false}, {"always", 3, true, false},
	} {
		if got, by := restartFor(tc.policy, tc.code, prevent, force); got != tc.want || by != tc.byCode {
			t.Errorf("restartFor(%s, %d) = %v, %v; want %v, %v", tc.policy, tc.code, got, by, tc.want, tc.byCode)
		}
	}
}

func TestExitCodesFlag(t *testing.T) {
	for in, want := range map[string]string{"78": "78", "75,78": "75,78", "75 78": "75,78", "": "", "0, 255": "0,255"} {
		var e exitCodes
		if err := e.Set(in); err != nil || e.String() != want {
			t.Errorf("Set(%q) = %v, %q; want %q", in, err, e.String(), want)
		}
	}
	for _, bad := range []string{"256", "-1", "x", "SIGTERM"} {
		var e exitCodes
		if e.Set(bad) == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

// TestUnitEnvNotPassed: what systemd gives gwlock, the unit's main process,
// does not reach the gateway; everything else does. Fails without unitEnv.
func TestUnitEnvNotPassed(t *testing.T) {
	dir := lockDir(t)
	envFile := filepath.Join(dir, "env")
	unit := []string{"INVOCATION_ID=0123abcd", "JOURNAL_STREAM=8:42", "SYSTEMD_EXEC_PID=1", "MANAGERPID=1",
		"WATCHDOG_PID=1", "WATCHDOG_USEC=1000000", "LISTEN_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=x", "GWLOCK_TEST_KEEP=yes"}
	if r := runGwlock(t, unit, "run", "--lock", filepath.Join(dir, "e.lock"), "--", testBinary(t), "helper:readygw", "-envfile", envFile, "-once"); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	b, _ := os.ReadFile(envFile)
	env := "\n" + string(b)
	for name := range unitEnv {
		if name != "NOTIFY_SOCKET" && strings.Contains(env, "\n"+name+"=") {
			t.Errorf("the gateway sees %s", name)
		}
	}
	if !strings.Contains(env, "\nGWLOCK_TEST_KEEP=yes\n") {
		t.Errorf("an ordinary variable was dropped:\n%s", env)
	}
}

// TestStatusRestarting: during a backoff status says restarting (exit 0),
// with the last exit and the next start, and names no dead gateway. Fails
// without setRestarting (status says running child_pid=<dead pid>).
func TestStatusRestarting(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "s.lock")
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--restart", "on-failure", "--", testBinary(t), "helper:gateway", "-exit", "3")
	ev := g.waitEvent(t, "restart")
	st := runGwlock(t, nil, "status", "--lock", lock)
	if st.code != statusRunning || !strings.Contains(st.stdout, "state=restarting") || !strings.Contains(st.stdout, "last_exit=3") ||
		!strings.Contains(st.stdout, "restart_at=") || strings.Contains(st.stdout, "child_pid=") {
		t.Fatalf("status during the backoff (%v): exit %d, %q; want state=restarting last_exit=3 restart_at=..., no child_pid", ev, st.code, st.stdout)
	}
	js := runGwlock(t, nil, "status", "--lock", lock, "--json")
	var rep report
	if err := json.Unmarshal([]byte(js.stdout), &rep); err != nil || rep.Owner == nil || rep.Owner.LastExit == nil || *rep.Owner.LastExit != 3 {
		t.Fatalf("status --json = %s (%v)", js.stdout, err)
	}
	at, err := time.Parse(time.RFC3339, rep.Owner.RestartAt)
	if err != nil || time.Until(at) > 2*time.Second {
		t.Fatalf("restartAt = %q (%v), want about a second from now", rep.Owner.RestartAt, err)
	}
	g.waitEvent(t, "child-start")
	g.signal(t, syscall.SIGTERM)
	g.wait(t)
}

// TestPortConflictIPv6Loopback: a squatter on [::1]:port alone is a port
// conflict for a gateway on the default loopback host. Fails with the check
// on 127.0.0.1 alone.
func TestPortConflictIPv6Loopback(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	dir := lockDir(t)
	r := runGwlock(t, nil, "run", "--lock", filepath.Join(dir, "p.lock"), "--port", strconv.Itoa(port), "--", "true")
	if r.code != exitPortConflict {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitPortConflict, r.stderr)
	}
	if ev := mustEvent(t, r.events(), "port-conflict", "host"); ev["host"] != "::1" {
		t.Fatalf("port-conflict = %v, want host=::1", ev)
	}
}

// TestIfRunningOKAtOnce: a live owner is established at once, so
// --if-running ok exits 0 at once, with one already-running line and no
// warning, however long --timeout is.
func TestIfRunningOKAtOnce(t *testing.T) {
	dir := lockDir(t)
	lock, started := filepath.Join(dir, "i.lock"), filepath.Join(dir, "started")
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--", testBinary(t), "helper:readygw", "-startedfile", started)
	waitFile(t, started)
	begin := time.Now()
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "60s", "--if-running", "ok", "--", "true")
	if r.code != 0 || len(findEvents(r.events(), "already-running")) != 1 || strings.Contains(r.stderr, "level=WARN") {
		t.Fatalf("--if-running ok: exit %d\n%s", r.code, r.stderr)
	}
	if took := time.Since(begin); took > eventWait/2 {
		t.Fatalf("--if-running ok took %s with a live owner", took)
	}
	g.signal(t, syscall.SIGTERM)
	g.wait(t)
}

func TestRunFlagChecks(t *testing.T) {
	for _, args := range [][]string{
		{"--ready-url", "https://127.0.0.1:1/x"}, {"--ready-url", "127.0.0.1:1"}, {"--ready-url", "http:///x"},
		{"--stop-signal", "SIGNOPE"}, {"--stop-signal", "999"}, {"--restart-prevent-exit-status", "300"},
		// Signals that do not end a process by default (third review, R2):
		// a gateway stopped with one, or sent one when its launcher dies, lives on.
		{"--stop-signal", "SIGSTOP"}, {"--stop-signal", "CHLD"}, {"--stop-signal", "SIGCONT"},
		{"--stop-signal", "WINCH"}, {"--stop-signal", "TSTP"}, {"--stop-signal", "19"},
	} {
		if _, err := parseFlags("run", append(append([]string{"--lock", "/tmp/x.lock"}, args...), "--", "true")); exitCode(err) != exitUsage {
			t.Errorf("run %v: %v, want a usage error", args, err)
		}
	}
	c, err := parseFlags("run", []string{"--lock", "/tmp/x.lock", "--stop-signal", "int", "--", "true"})
	if err != nil || c.stopSignal != syscall.SIGINT || !c.preventExit.has(78) {
		t.Fatalf("--stop-signal int: %v, %v; want SIGINT and the default prevent list 78", c.stopSignal, err)
	}
}

// TestReadyNotifyNeedsRelay: without a lock dir (GWLOCK_ALLOW_MULTI) there
// is no socket to give the gateway, so --ready-notify could never be met:
// a usage error, not a gateway that never gets ready.
func TestReadyNotifyNeedsRelay(t *testing.T) {
	dir := lockDir(t)
	pids := filepath.Join(dir, "pids")
	r := runGwlock(t, []string{"GWLOCK_ALLOW_MULTI=1"}, "run", "--lock", filepath.Join(dir, "m.lock"), "--ready-notify",
		"--", testBinary(t), "helper:gateway", "-pidfile", pids)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--ready-notify") {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
	if _, err := os.Stat(pids); !os.IsNotExist(err) {
		t.Fatal("the gateway started anyway")
	}
}

// TestReadyURLBoundedAnswer (third review, R4): whoever answers on the
// readiness port cannot make gwlock buffer without end: a status line that
// never ends is not ready, and is read 4 KiB at most.
func TestReadyURLBoundedAnswer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		var n int64
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		for n < 64<<20 {
			m, err := c.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		served <- n
	}()
	url := "http://" + l.Addr().String() + "/startupz"
	if httpReady(url, time.Second) {
		t.Fatal("an endless status line counted as ready")
	}
	if n := <-served; n >= 64<<20 {
		t.Fatalf("gwlock read %d bytes of one status line", n)
	}
}

// startDraining runs gwlock with runFlags and a gateway that drains 800ms
// on its first SIGTERM and exits 99 on a second one; it returns once the
// gateway is up, with the files of the gateway's signals and pids.
func startDraining(t *testing.T, runFlags ...string) (*background, string, string) {
	t.Helper()
	dir := lockDir(t)
	sigs, pid := filepath.Join(dir, "sigs"), filepath.Join(dir, "pid")
	args := append([]string{"run", "--lock", filepath.Join(dir, "d.lock"), "--stop-timeout", "10s"}, runFlags...)
	args = append(args, "--", testBinary(t), "helper:gateway", "-drain", "800ms", "-sigfile", sigs, "-pidfile", pid)
	g := startHelper(t, "gwlock", nil, args...)
	waitFile(t, pid)
	return g, sigs, pid
}

// sigtermsIn counts the SIGTERMs a gateway wrote to its -sigfile.
func sigtermsIn(t *testing.T, sigs string) int {
	b, _ := os.ReadFile(sigs)
	return strings.Count(string(b), syscall.SIGTERM.String())
}

// TestStopIsNotStoppedAgain: once a stop is under way (an operator's, or a
// restart), neither --ready-timeout expiring nor a SIGHUP sends the gateway
// a second stop signal, which would cut its drain short (the gateway below
// exits 99 on a second one), nor changes run's exit code. A SIGHUP during a
// restart backoff says so in a restart line. Each case fails with the
// supervisor signalling again.
func TestStopIsNotStoppedAgain(t *testing.T) {
	t.Run("ready-timeout during a stop", func(t *testing.T) {
		port := freePort(t) // nobody listens: never ready
		g, sigs, _ := startDraining(t, "--port", strconv.Itoa(port), "--ready-timeout", "400ms")
		g.signal(t, syscall.SIGTERM)
		code, out := g.wait(t)
		if code != 0 || sigtermsIn(t, sigs) != 1 || strings.Contains(out, "event=ready-timeout") {
			t.Fatalf("exit %d, %d SIGTERMs, want 0 and 1 and no ready-timeout\n%s", code, sigtermsIn(t, sigs), out)
		}
	})
	t.Run("SIGHUP during a stop", func(t *testing.T) {
		g, sigs, _ := startDraining(t)
		g.signal(t, syscall.SIGTERM)
		g.waitEvent(t, "stop")
		time.Sleep(100 * time.Millisecond)
		g.signal(t, syscall.SIGHUP)
		code, out := g.wait(t)
		if code != 0 || sigtermsIn(t, sigs) != 1 || strings.Contains(out, "event=restart") {
			t.Fatalf("exit %d, %d SIGTERMs, want 0 and 1, no restart\n%s", code, sigtermsIn(t, sigs), out)
		}
	})
	t.Run("SIGHUP during a restart", func(t *testing.T) {
		g, sigs, pid := startDraining(t)
		g.signal(t, syscall.SIGHUP)
		g.waitEvent(t, "stop")
		time.Sleep(100 * time.Millisecond)
		g.signal(t, syscall.SIGHUP)
		g.waitEvent(t, "child-start") // the restarted gateway
		waitLines(t, pid, 2)
		if n := sigtermsIn(t, sigs); n != 1 {
			t.Fatalf("%d SIGTERMs to the restarting gateway, want 1", n)
		}
		g.signal(t, syscall.SIGTERM)
		if code, out := g.wait(t); code != 0 || strings.Contains(out, "code=99") {
			t.Fatalf("exit %d, want 0 and no drain cut short\n%s", code, out)
		}
	})
	t.Run("SIGHUP during a backoff", func(t *testing.T) {
		dir := lockDir(t)
		g := startHelper(t, "gwlock", nil, "run", "--lock", filepath.Join(dir, "b.lock"), "--restart", "always", "--",
			testBinary(t), "helper:gateway", "-exit", "3")
		g.waitEvent(t, "restart")
		g.signal(t, syscall.SIGHUP)
		if ev := g.waitEvent(t, "restart"); ev["reason"] != "SIGHUP" || ev["backoff_ms"] != "0" {
			t.Fatalf("restart after SIGHUP in a backoff = %v, want reason=SIGHUP backoff_ms=0", ev)
		}
		g.signal(t, syscall.SIGTERM)
		g.wait(t)
	})
}
