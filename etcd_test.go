//go:build linux

package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

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
	takeover := set.String("takeover-delay", "", "--takeover-delay, if set")
	if set.Parse(args) != nil {
		return 2
	}
	etcdRequestTimeoutForTests = *requestTimeout
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
	if !strings.Contains(r.stderr, "below 3 x stop budget 3.5s") || !strings.Contains(r.stderr, "hint: raise --lease-ttl to 11s") {
		t.Fatalf("stderr = %q, want the budget and the hint", r.stderr)
	}
	// The defaults fit: 20 s TTL, and a 5 s stop timeout under --backend etcd.
	var c etcdConfig
	set := flagSet{flag.NewFlagSet("x", flag.ContinueOnError), map[string]string{}}
	addEtcdFlags(set, &c)
	common := &config{stopTimeout: 10 * time.Second}
	c.Backend, c.endpointsText, c.LockName = "etcd", "http://127.0.0.1:1", "x"
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
	c := startEtcd(t, 1, "http")
	r := newEtcdRunner(t, c.endpoints())
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

// TestEtcdHolderKilled: SIGKILL of the holder kills its gateway with it; the
// standby wins within TTL + 1 s and starts after the predecessor's stop budget.
func TestEtcdHolderKilled(t *testing.T) {
	c := startEtcd(t, 1, "http")
	// A gateway that ignores SIGTERM too (third review, R3): with its
	// launcher dead nothing could escalate, so across hosts the kernel's
	// parent-death signal is SIGKILL, or it would run beside the standby's.
	for _, tc := range []struct{ name, gw string }{{"term", ""}, {"ignore-term", "-ignore-term"}} {
		t.Run(tc.name, func(t *testing.T) { etcdHolderKilled(t, c, tc.name, tc.gw) })
	}
}

func etcdHolderKilled(t *testing.T, c *etcdCluster, name, gw string) {
	r := newEtcdRunner(t, c.endpoints(), "-name", "killed-"+name)
	a := r.start(nil, gw)
	r.waitGateway(t, a.waitEvent(t, "acquire-success"))
	b := r.start(nil, "")
	b.waitEvent(t, "acquire-contention")
	killed := time.Now()
	a.signal(t, syscall.SIGKILL)
	_, _ = a.wait(t)
	evB := b.waitEvent(t, "acquire-success")
	won := time.Since(killed)
	delay := b.waitEvent(t, "takeover-delay")
	r.waitGateway(t, evB)
	t.Logf("failover after SIGKILL: acquired %s after the kill (TTL %s), takeover delay %s ms", won, etcdTestTTL, delay["delay_ms"])
	if won > etcdTestTTL+scaled(time.Second) {
		t.Errorf("standby acquired %s after the kill, want within TTL + 1 s = %s", won, etcdTestTTL+time.Second)
	}
	b.signal(t, syscall.SIGTERM)
	waitExit(t, b, 0)
	if runs := checkGatewayLog(t, r.dir); len(runs) != 2 {
		t.Fatalf("gateway runs = %v, want 2", runs)
	}
}

// TestEtcdPartition: a holder black-holed from etcd stops its gateway at its
// local deadline, before the standby's gateway starts, even when the gateway
// ignores SIGTERM and must be killed.
func TestEtcdPartition(t *testing.T) {
	c := startEtcd(t, 1, "http")
	for _, tc := range []struct{ name, gw string }{{"term", ""}, {"ignore-term", "-ignore-term"}} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := startProxy(t, strings.TrimPrefix(c.endpoints()[0], "http://"))
			r := newEtcdRunner(t, c.endpoints(), "-name", "partition-"+tc.name)
			a := r.start([]string{proxy.url()}, tc.gw)
			r.waitGateway(t, a.waitEvent(t, "acquire-success"))
			b := r.start(nil, "")
			b.waitEvent(t, "acquire-contention")
			cut := time.Now()
			proxy.set(proxyBlackHole)
			lost := a.waitEvent(t, "lock-lost")
			if lost["reason"] != lostDeadline {
				t.Fatalf("lock-lost reason = %s, want %s", lost["reason"], lostDeadline)
			}
			outA := waitExit(t, a, 1)
			mustEvent(t, parseLogfmt(outA), "keepalive-failed", "stop_in_ms")
			if tc.gw != "" {
				// The gateway ignored SIGTERM: --stop-timeout later it was killed.
				if ev := mustEvent(t, parseLogfmt(outA), "child-exit", "signal"); ev["signal"] != "9" {
					t.Errorf("child-exit of the stubborn gateway = %v, want signal 9", ev)
				}
			}
			r.waitGateway(t, b.waitEvent(t, "acquire-success"))
			t.Logf("failover after a black hole: standby running %s after the cut (TTL %s)", time.Since(cut), etcdTestTTL)
			b.signal(t, syscall.SIGTERM)
			waitExit(t, b, 0)
			runs := checkGatewayLog(t, r.dir)
			if len(runs) != 2 {
				t.Fatalf("gateway runs = %v, want 2", runs)
			}
			// The lease cannot expire before cut + TTL; the gateway must be
			// dead by then with the reserve and the margin to spare.
			if limit := cut.Add(etcdTestTTL - stopReserve - etcdTestMargin); runs[0].last.After(limit) {
				t.Fatalf("cut-off holder's gateway wrote until %s, after the safe limit %s", runs[0].last.Format(time.StampMilli), limit.Format(time.StampMilli))
			}
		})
	}
}

// TestEtcdKeyDeleted: an operator deleting the key makes the holder stop at
// once (key-deleted), and the standby waits the holder's stop budget, or
// the --takeover-delay it was given, before its gateway starts.
func TestEtcdKeyDeleted(t *testing.T) {
	c := startEtcd(t, 1, "http")
	for _, tc := range []struct {
		name, flag string
		want       time.Duration
	}{
		{"auto", "", etcdTestStopTimeout + stopReserve + etcdTestMargin},
		{"explicit", "2300ms", 2300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newEtcdRunner(t, c.endpoints(), "-name", "deleted-"+tc.name)
			a := r.start(nil, "")
			r.waitGateway(t, a.waitEvent(t, "acquire-success"))
			var extra []string
			if tc.flag != "" {
				extra = []string{"-takeover-delay", tc.flag}
			}
			b := r.start(nil, "", extra...)
			b.waitEvent(t, "acquire-contention")
			c.etcdctl("del", "/gwlock-test/v1/deleted-"+tc.name)
			lost := a.waitEvent(t, "lock-lost")
			if lost["reason"] != lostKeyDeleted {
				t.Fatalf("lock-lost reason = %s, want %s", lost["reason"], lostKeyDeleted)
			}
			waitExit(t, a, 1)
			evB := b.waitEvent(t, "acquire-success")
			delay := b.waitEvent(t, "takeover-delay")
			if delay["delay_ms"] != strconv.FormatInt(tc.want.Milliseconds(), 10) {
				t.Errorf("takeover-delay delay_ms = %s, want %d", delay["delay_ms"], tc.want.Milliseconds())
			}
			r.waitGateway(t, evB)
			b.signal(t, syscall.SIGTERM)
			waitExit(t, b, 0)
			runs := checkGatewayLog(t, r.dir)
			if len(runs) != 2 {
				t.Fatalf("gateway runs = %v, want 2", runs)
			}
			// The standby's gateway started no sooner than the delay after the
			// deletion made it the holder.
			if gap := runs[1].first.Sub(eventTime(t, evB)); gap < tc.want {
				t.Errorf("standby's gateway wrote %s after acquire-success, want at least the delay %s", gap, tc.want)
			}
		})
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
// none; a holder that said released:true never costs a delay.
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
	mine := etcdConfig{StopTimeout: time.Second, LeaseMargin: time.Second}
	vanished := &etcdValue{StopBudgetMs: 4200}
	for _, tc := range []struct {
		flag string
		prev *etcdValue
		want time.Duration
	}{
		{"", vanished, 4200 * time.Millisecond},
		{"auto", &etcdValue{}, mine.stopBudget()},
		{"auto", &etcdValue{StopBudgetMs: 4200, Released: true}, 0},
		{"0", vanished, 0},
		{"7s", vanished, 7 * time.Second},
		{"7s", nil, 0},
	} {
		c, err := parse(tc.flag)
		if err != nil {
			t.Fatalf("--takeover-delay %q: %v", tc.flag, err)
		}
		c.StopTimeout, c.LeaseMargin = mine.StopTimeout, mine.LeaseMargin
		if got := (&etcdBackend{cfg: c}).takeoverDelay(tc.prev); got != tc.want {
			t.Errorf("--takeover-delay %q, holder %+v: delay %s, want %s", tc.flag, tc.prev, got, tc.want)
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
