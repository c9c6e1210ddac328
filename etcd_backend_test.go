//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"gwlock/internal/etcdtest"
	"gwlock/internal/telemetry"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Timing for the etcd tests, scaled by GWLOCK_TEST_TIME_FACTOR on slow machines.
var (
	etcdTestTTL         = 3 * time.Second // with the stop timeout and margin below, 3B = 3 s fits
	etcdTestStopTimeout = 200 * time.Millisecond
	etcdTestMargin      = 300 * time.Millisecond
)

func scaled(d time.Duration) time.Duration { return etcdtest.Scaled(d) }

func init() {
	helpers["etcd-run"] = helperEtcdRun
	helpers["etcd-gateway"] = helperEtcdGateway
}

// helperEtcdRun is `gwlock run --backend etcd` as one host would run it:
// its own local lock dir (each helper process stands for another host, so
// its standby waits on etcd, not on a shared local flock), then the real
// supervisor over the gateway helper:etcd-gateway.
func helperEtcdRun(args []string) int {
	set := flag.NewFlagSet("etcd-run", flag.ContinueOnError)
	endpoints := set.String("endpoints", "", "comma-separated endpoints")
	name := set.String("name", "test", "lock name")
	ttl := set.Duration("ttl", 3*time.Second, "lease TTL")
	stopTimeout := set.Duration("stop-timeout", 200*time.Millisecond, "TERM to KILL")
	margin := set.Duration("margin", 300*time.Millisecond, "lease margin")
	timeout := set.Duration("timeout", 60*time.Second, "acquire timeout")
	requestTimeout := set.Duration("request-timeout", 0, "bound on one request")
	user := set.String("user", "", "etcd user")
	passwordFile := set.String("password-file", "", "etcd password file")
	gwArgs := set.String("gateway", "", "arguments of helper:etcd-gateway, space-separated")
	realElection := set.Bool("real-election", false, "refuse a TTL too short for an election at etcd's default timing, as gwlock does")
	takeover := set.String("takeover-delay", "", "--takeover-delay, if set")
	if set.Parse(args) != nil {
		return 2
	}
	etcdRequestTimeoutForTests = *requestTimeout
	if !*realElection {
		// The test clusters elect within 500 ms-1 s, and these runs time
		// other faults at a short TTL.
		etcdElectionForTests = 0
	}
	host, err := os.MkdirTemp("", "gwlock-etcd-host")
	if err != nil {
		return 1
	}
	defer os.RemoveAll(host)
	_ = os.Chmod(host, 0o700)
	argv := []string{"run", "--backend", "etcd", "--etcd-endpoints", *endpoints, "--etcd-prefix", "/gwlock-test",
		"--lock-name", *name, "--lease-ttl", ttl.String(), "--lease-margin", margin.String(),
		"--stop-timeout", stopTimeout.String(), "--timeout", timeout.String(), "--lock-dir", host}
	if *user != "" {
		argv = append(argv, "--etcd-user", *user, "--etcd-password-file", *passwordFile)
	}
	if *takeover != "" {
		argv = append(argv, "--takeover-delay", *takeover)
	}
	exe, _ := os.Executable()
	argv = append(append(argv, "--", exe, "helper:etcd-gateway"), strings.Fields(*gwArgs)...)
	return cli(argv, os.Stdout, stderrWriter)
}

// helperEtcdGateway is the fake gateway of the etcd tests: it holds a record
// lock on -marker for its whole life (two alive at once fail to take it) and
// appends "<unix ns> <fence> <pid> <word>" to -log every few milliseconds,
// the oracle the tests read.
func helperEtcdGateway(args []string) int {
	set := flag.NewFlagSet("etcd-gateway", flag.ContinueOnError)
	logPath := set.String("log", "", "timestamped log, shared by all gateways")
	marker := set.String("marker", "", "exclusive marker")
	ignoreTerm := set.Bool("ignore-term", false, "ignore SIGTERM")
	life := set.Duration("life", helperDeadline, "exit after this long")
	pidFile := set.String("pidfile", "", "append our pid here")
	label := set.String("label", "", "the fence column instead of GWLOCK_FENCE (benchmarks, etcdctl lock)")
	if set.Parse(args) != nil {
		return 2
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM)
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if *marker != "" && !holdExclusive(*marker) {
		return 3
	}
	fence, pid := os.Getenv("GWLOCK_FENCE"), strconv.Itoa(os.Getpid())
	if *label != "" {
		fence = *label
	}
	if *pidFile != "" {
		appendLine(*pidFile, pid)
	}
	say := func(word string) {
		appendLine(*logPath, fmt.Sprintf("%d %s %s %s", time.Now().UnixNano(), fence, pid, word))
	}
	say("start")
	tick := time.NewTicker(5 * time.Millisecond)
	end := time.After(*life)
	for {
		select {
		case <-tick.C:
			say("tick")
		case <-sigs:
			say("stop")
			return 0
		case <-end:
			say("exit")
			return 0
		}
	}
}

// gatewayRun is one fence's stretch of the shared gateway log.
type gatewayRun struct {
	fence       int64
	first, last time.Time
	lines       int
}

// checkGatewayLog is the oracle: the gateways' lines never interleave between
// holders (each fence's lines are one stretch, in file order and in time),
// fences strictly increase, and no gateway found the marker taken.
func checkGatewayLog(t testing.TB, dir string) []gatewayRun {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dir, "marker.violations")); err == nil {
		t.Fatalf("two gateways alive at once: %s", b)
	}
	f, err := os.Open(filepath.Join(dir, "gateway.log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var runs []gatewayRun
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 4 {
			continue // a line torn by a SIGKILL mid-write
		}
		ns, err1 := strconv.ParseInt(fields[0], 10, 64)
		fence, err2 := strconv.ParseInt(fields[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("gateway line %q: no time or fence", sc.Text())
		}
		at := time.Unix(0, ns)
		if n := len(runs); n > 0 && runs[n-1].fence == fence {
			runs[n-1].last = at
			runs[n-1].lines++
			continue
		}
		if n := len(runs); n > 0 {
			prev := runs[n-1]
			if fence <= prev.fence {
				t.Fatalf("gateway log: fence %d after fence %d (interleaved or not increasing): %q", fence, prev.fence, sc.Text())
			}
			if !at.After(prev.last) {
				t.Fatalf("gateway log: fence %d starts at %s, before fence %d's last line at %s", fence, at.Format(time.StampMicro), prev.fence, prev.last.Format(time.StampMicro))
			}
		}
		runs = append(runs, gatewayRun{fence: fence, first: at, last: at, lines: 1})
	}
	return runs
}

// etcdRunner starts helper etcd-run instances against one cluster.
type etcdRunner struct {
	t         *testing.T
	dir       string // gateway.log and the marker
	endpoints []string
	args      []string // more etcd-run flags for every instance
}

func newEtcdRunner(t *testing.T, endpoints []string, args ...string) *etcdRunner {
	return &etcdRunner{t: t, dir: tempDir(t), endpoints: endpoints, args: args}
}

// start runs one supervisor; gwExtra are more gateway flags, endpoints
// (if given) replace the runner's.
func (r *etcdRunner) start(endpoints []string, gwExtra string, extra ...string) *background {
	r.t.Helper()
	if endpoints == nil {
		endpoints = r.endpoints
	}
	gw := fmt.Sprintf("-log %s -marker %s %s", filepath.Join(r.dir, "gateway.log"), filepath.Join(r.dir, "marker"), gwExtra)
	args := append([]string{"-endpoints", strings.Join(endpoints, ","), "-gateway", gw,
		"-ttl", etcdTestTTL.String(), "-stop-timeout", etcdTestStopTimeout.String(), "-margin", etcdTestMargin.String()}, r.args...)
	args = append(args, extra...)
	return startHelper(r.t, "etcd-run", nil, args...)
}

// eventTime is the time= of a telemetry line.
func eventTime(t testing.TB, ev map[string]string) time.Time {
	t.Helper()
	at, err := time.Parse("2006-01-02T15:04:05.000Z", ev["time"])
	if err != nil {
		t.Fatalf("event %v: bad time: %v", ev, err)
	}
	return at
}

func mustFence(t testing.TB, ev map[string]string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(ev["fence"], 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("event %v: fence = %q, want a positive revision", ev, ev["fence"])
	}
	return n
}

func waitExit(t testing.TB, b *background, want int) string {
	t.Helper()
	code, out := b.wait(t)
	if code != want {
		t.Fatalf("etcd-run exit = %d, want %d; stderr:\n%s", code, want, out)
	}
	return out
}

// TestEtcdStopBudgetRefusal: a TTL below 3B is a usage error (exit 2) before
// anything is contacted, and the line says what to raise.
func TestEtcdStopBudgetRefusal(t *testing.T) {
	r := runGwlock(t, nil, "run", "--backend", "etcd", "--etcd-endpoints", "http://127.0.0.1:1", "--lock-name", "x",
		"--lease-ttl", "5s", "--stop-timeout", "2s", "--", "true")
	if r.code != exitUsage {
		t.Fatalf("exit = %d, want %d; stderr:\n%s", r.code, exitUsage, r.stderr)
	}
	if !strings.Contains(r.stderr, "below 3 x stop budget 3.5s") || !strings.Contains(r.stderr, "hint: raise --lease-ttl to 13s") {
		t.Fatalf("stderr = %q, want the budget and the hint", r.stderr)
	}
	// The defaults fit: 20 s TTL, and a 5 s stop timeout under --backend etcd.
	var c etcdConfig
	set := flagSet{flag.NewFlagSet("x", flag.ContinueOnError), map[string]string{}}
	addEtcdFlags(set, &c)
	common := &config{stopTimeout: 10 * time.Second, backend: "etcd"}
	c.endpointsText, c.LockName = "http://127.0.0.1:1", "x"
	if err := c.finish("run", set.FlagSet, common); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	if c.StopTimeout != etcdDefaultStopTimeout {
		t.Fatalf("stop timeout under etcd = %s, want %s", c.StopTimeout, etcdDefaultStopTimeout)
	}
}

// TestEtcdHandoffOnRelease: the holder's release (SIGTERM) hands the lock to
// the waiting standby at once, with no takeover delay and a higher fence.
func TestEtcdHandoffOnRelease(t *testing.T) {
	c := etcdtest.Start(t, 1, "http")
	r := newEtcdRunner(t, c.Endpoints())
	a := r.start(nil, "")
	evA := a.waitEvent(t, "acquire-success")
	r.waitGateway(t, evA)
	b := r.start(nil, "")
	b.waitEvent(t, "acquire-contention")
	a.signal(t, syscall.SIGTERM)
	outA := waitExit(t, a, 0)
	rel := mustEvent(t, parseLogfmt(outA), "lock-released", "key", "fence", "held_ms")
	evB := b.waitEvent(t, "acquire-success")
	r.waitGateway(t, evB)
	if fa, fb := mustFence(t, evA), mustFence(t, evB); fb <= fa {
		t.Fatalf("fence after handoff = %d, want > %d", fb, fa)
	}
	handoff := eventTime(t, evB).Sub(eventTime(t, rel))
	t.Logf("graceful handoff: %s", handoff)
	if handoff > scaled(time.Second) {
		t.Errorf("handoff took %s, want well under the TTL (no takeover delay after released:true)", handoff)
	}
	b.signal(t, syscall.SIGTERM)
	outB := waitExit(t, b, 0)
	if len(findEvents(parseLogfmt(strings.Join(b.seen, "\n")+outB), "takeover-delay")) > 0 {
		t.Errorf("takeover-delay after a released handoff:\n%s", outB)
	}
	if runs := checkGatewayLog(t, r.dir); len(runs) != 2 {
		t.Fatalf("gateway runs = %v, want 2", runs)
	}
}

// TestEtcdFlagRefusals: endpoints are scheme://host:port and nothing more
// (credentials in a URL would be logged; a path would be dropped), and a
// zero lease margin leaves no room for a frozen gwlock: exit 2, one line
// naming the flag, nothing contacted.
func TestEtcdFlagRefusals(t *testing.T) {
	for _, tc := range []struct{ flag, value, want string }{
		{"--etcd-endpoints", "https://user:secret@127.0.0.1:2379", "--etcd-user"},
		{"--etcd-endpoints", "http://127.0.0.1:2379/v3", "no path"},
		{"--etcd-endpoints", "http://127.0.0.1:2379?x=1", "no path"},
		{"--etcd-endpoints", "http://127.0.0.1:1,https://h:2379#f", "no path"},
		{"--etcd-endpoints", "https://etcd1", "name the port"},
		{"--etcd-endpoints", "unix:///run/etcd.sock", "want http(s)://host:port"},
		{"--lease-margin", "0", "--lease-margin"},
	} {
		args := []string{"run", "--backend", "etcd", "--etcd-endpoints", "http://127.0.0.1:1", "--lock-name", "x", tc.flag, tc.value, "--", "true"}
		r := runGwlock(t, nil, args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%s %s: exit %d, want %d and one line with %q; stderr:\n%s", tc.flag, tc.value, r.code, exitUsage, tc.want, r.stderr)
		}
		if strings.Contains(r.stderr, "secret") {
			t.Errorf("%s %s: the password is in the error line: %s", tc.flag, tc.value, r.stderr)
		}
	}
}

// TestTakeoverDelayFlag: --takeover-delay is auto, or a duration with 0 for
// none; anything else is a usage error.
func TestTakeoverDelayFlag(t *testing.T) {
	parse := func(v string) (etcdConfig, error) {
		var c etcdConfig
		set := flagSet{flag.NewFlagSet("x", flag.ContinueOnError), map[string]string{}}
		addEtcdFlags(set, &c)
		if v == "" {
			return c, nil
		}
		return c, set.Parse([]string{"--takeover-delay", v})
	}
	for _, tc := range []struct {
		flag string
		want time.Duration
	}{
		{"", takeoverAuto},
		{"auto", takeoverAuto},
		{"0", 0},
		{"7s", 7 * time.Second},
	} {
		c, err := parse(tc.flag)
		if err != nil {
			t.Fatalf("--takeover-delay %q: %v", tc.flag, err)
		}
		if c.TakeoverDelay != tc.want {
			t.Errorf("--takeover-delay %q = %s, want %s", tc.flag, c.TakeoverDelay, tc.want)
		}
	}
	for _, bad := range []string{"-1s", "soon", "-0"} {
		r := runGwlock(t, nil, "run", "--backend", "etcd", "--etcd-endpoints", "http://127.0.0.1:1", "--lock-name", "x",
			"--takeover-delay", bad, "--", "true")
		if r.code != exitUsage || !strings.Contains(r.stderr, "takeover-delay") {
			t.Errorf("--takeover-delay %s: exit %d, want %d naming the flag; stderr:\n%s", bad, r.code, exitUsage, r.stderr)
		}
	}
}

// waitGateway waits until the gateway of the holder that logged acquire-success
// ev has written its first line, so that it is known to run.
func (r *etcdRunner) waitGateway(t testing.TB, ev map[string]string) {
	t.Helper()
	fence := " " + ev["fence"] + " "
	deadline := time.Now().Add(eventWait)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(filepath.Join(r.dir, "gateway.log"))
		if strings.Contains(string(b), fence) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no gateway line for fence %s within %s", ev["fence"], eventWait)
}

// testEtcdConfig is a backend config for in-process tests.
func testEtcdConfig(name string, endpoints ...string) etcdConfig {
	return etcdConfig{Endpoints: endpoints, Prefix: "/gwlock-test", LockName: name,
		LeaseTTL: etcdTestTTL, LeaseMargin: etcdTestMargin, StopTimeout: etcdTestStopTimeout}
}

func mustBackend(t testing.TB, cfg etcdConfig) *etcdBackend {
	t.Helper()
	b, err := newEtcdBackend(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustAcquire(t testing.TB, b *etcdBackend, log *telemetry.Logger) *etcdHold {
	t.Helper()
	h, err := b.acquire(acquireRequest{Timeout: scaled(5 * time.Second), Log: log})
	if err != nil {
		t.Fatalf("acquire %s: %v", b.key, err)
	}
	t.Cleanup(func() { _ = h.release(nil) })
	return h.(*etcdHold)
}

// mustStatusHeld checks that status --json names h as the holder.
func mustStatusHeld(t *testing.T, cfg etcdConfig, h *etcdHold) {
	t.Helper()
	var out bytes.Buffer
	if code := etcdStatus(cfg, &out, true); code != statusRunning {
		t.Fatalf("status = %d, want %d; %s", code, statusRunning, out.String())
	}
	var rep etcdStatusReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Fence != h.Fence() || rep.PID != int64(os.Getpid()) || rep.TTLLeftS <= 0 {
		t.Fatalf("status --json = %s (%v), want fence %d, our pid, a TTL left", out.String(), err, h.Fence())
	}
}

// acquireWhenUp acquires cfg's key once the cluster answers (an https
// member's port opens before it serves).
func acquireWhenUp(t *testing.T, cfg etcdConfig) *etcdHold {
	t.Helper()
	deadline := time.Now().Add(scaled(etcdtest.StartWait))
	for {
		hl, err := mustBackend(t, cfg).acquire(acquireRequest{Timeout: time.Second})
		if err == nil {
			return hl.(*etcdHold)
		}
		if time.Now().After(deadline) {
			t.Fatalf("acquire over mutual TLS: %v", err)
		}
	}
}

// TestEtcdMutualTLS: etcd demanding client certificates from a CA made here;
// the backend with the client pair holds and reports, without it it is refused.
func TestEtcdMutualTLS(t *testing.T) {
	dir := tempDir(t)
	pki := etcdtest.MakePKI(t, dir)
	c := etcdtest.Start(t, 1, "https", "--cert-file", pki.ServerCert, "--key-file", pki.ServerKey,
		"--client-cert-auth", "--trusted-ca-file", pki.CA)
	cfg := testEtcdConfig("mtls", c.Endpoints()...)
	cfg.CACert, cfg.Cert, cfg.Key = pki.CA, pki.ClientCert, pki.ClientKey
	h := acquireWhenUp(t, cfg)
	mustStatusHeld(t, cfg, h)
	// A standby tells systemd it is up, then sees the release over TLS.
	standby := mustBackend(t, cfg)
	notes := make(chan string, 4)
	standby.Notify = func(s string) { notes <- s }
	won := make(chan holder, 1)
	go func() {
		h2, err := standby.acquire(acquireRequest{Timeout: scaled(10 * time.Second)})
		if err != nil {
			t.Error(err)
		}
		won <- h2
	}()
	select {
	case n := <-notes:
		if want := fmt.Sprintf("READY=1\nSTATUS=standby key=%s", h.key); !strings.HasPrefix(n, want) {
			t.Fatalf("standby notification = %q, want prefix %q", n, want)
		}
	case <-time.After(scaled(5 * time.Second)):
		t.Fatal("the standby sent no READY=1")
	}
	if err := h.release(nil); err != nil {
		t.Fatal(err)
	}
	h2 := <-won // within the standby's own timeout
	if h2 == nil {
		t.FailNow()
	}
	if got := h2.(*etcdHold).Fence(); got <= h.Fence() {
		t.Fatalf("fence after handoff = %d, want > %d", got, h.Fence())
	}
	if err := h2.release(nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := etcdStatus(cfg, &out, false); code != statusNotRunning {
		t.Fatalf("status after release = %d, want %d; %s", code, statusNotRunning, out.String())
	}
	noCert := cfg
	noCert.Cert, noCert.Key = "", ""
	_, err := mustBackend(t, noCert).acquire(acquireRequest{Timeout: 0})
	var busy *busyError
	if err == nil || errors.As(err, &busy) {
		t.Fatalf("acquire without a client certificate = %v, want a TLS refusal", err)
	}
	t.Logf("without a client certificate: %v", err)
}

// TestEtcdAcquireResults: a live holder is a *busyError (exit 75) at once
// with --timeout 0 or --if-running ok, and after the timeout otherwise; a
// stop signal while waiting is errCanceled, promptly.
func TestEtcdAcquireResults(t *testing.T) {
	c := etcdtest.Start(t, 1, "http")
	cfg := testEtcdConfig("results", c.Endpoints()...)
	h := mustAcquire(t, mustBackend(t, cfg), nil)
	contender := mustBackend(t, cfg)
	for _, req := range []acquireRequest{{Timeout: 0}, {Timeout: time.Hour, StopIfAlive: true}, {Timeout: 500 * time.Millisecond}} {
		start := time.Now()
		_, err := contender.acquire(req)
		var busy *busyError
		if !errors.As(err, &busy) || exitCode(err) != exitBusy || busy.OwnerPID != int64(os.Getpid()) {
			t.Fatalf("acquire(%+v) = %v, want a busyError naming pid %d (exit %d)", req, err, os.Getpid(), exitBusy)
		}
		if took := time.Since(start); took > req.Timeout%time.Hour+scaled(time.Second) {
			t.Errorf("acquire(%+v) took %s", req, took)
		}
	}
	cancel := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := contender.acquire(acquireRequest{Timeout: time.Hour, Cancel: cancel})
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	close(cancel)
	select {
	case err := <-done:
		if !errors.Is(err, errCanceled) {
			t.Fatalf("acquire after cancel = %v, want errCanceled", err)
		}
	case <-time.After(scaled(2 * time.Second)):
		t.Fatal("acquire did not return within 2 s of the cancel")
	}
	if err := h.release(nil); err != nil {
		t.Fatal(err)
	}
}

// TestEtcdEndpointRotation: with a black-holed member listed first, every
// request still ends within its own bound and moves to the next endpoint
// (backend-endpoint), so acquisition, hold and release work.
func TestEtcdEndpointRotation(t *testing.T) {
	c := etcdtest.Start(t, 1, "http")
	dead := etcdtest.StartProxy(t, strings.TrimPrefix(c.Endpoints()[0], "http://"))
	dead.Set(etcdtest.BlackHole)
	var logBuf lockedBuffer
	log := telemetry.New(&logBuf, "text", false)
	cfg := testEtcdConfig("rotation", dead.URL(), c.Endpoints()[0])
	b, err := newEtcdBackend(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h := mustAcquire(t, b, log)
	if took, bound := time.Since(start), b.client.Attempt()+scaled(time.Second); took > bound {
		t.Errorf("acquire past a black-holed endpoint took %s, want under one attempt bound + 1 s = %s", took, bound)
	}
	var moved []string // the http:// warnings carry tls=false; the moves do not
	for _, ev := range findEvents(parseLogfmt(logBuf.String()), "backend-endpoint") {
		if _, warning := ev["tls"]; !warning {
			moved = append(moved, ev["endpoint"])
		}
	}
	if len(moved) == 0 || moved[0] != c.Endpoints()[0] {
		t.Fatalf("backend-endpoint moves = %v, want first %s", moved, c.Endpoints()[0])
	}
	mustEvent(t, parseLogfmt(logBuf.String()), "backend-error", "op", "endpoint", "code", "err")
	select {
	case reason := <-h.lost():
		t.Fatalf("lock lost: %s", reason)
	case <-time.After(etcdTestTTL):
	}
	if err := h.release(log); err != nil {
		t.Fatal(err)
	}
}

// TestEtcdPlainTextRefusal: an endpoint that answers in plain text (etcd's
// gateway refusing a certificate with a CommonName) fails acquisition with
// the server's own words, quoted, and a hint that fits them.
func TestEtcdPlainTextRefusal(t *testing.T) {
	const said = "CommonName of client sending a request against gateway will be ignored and not used as expected"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, said, http.StatusBadRequest)
	}))
	defer srv.Close()
	_, err := mustBackend(t, testEtcdConfig("plain", srv.URL)).acquire(acquireRequest{Timeout: 0})
	if err == nil {
		t.Fatal("acquire against a plain-text refusal succeeded")
	}
	line := err.Error()
	if !strings.Contains(line, strconv.Quote(said)) || !strings.Contains(line, "hint: use a client certificate without a CommonName") {
		t.Fatalf("acquire error = %q, want the server's words quoted and the CommonName hint", line)
	}
}
