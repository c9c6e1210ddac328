//go:build linux

package main

import (
	"bufio"
	"fmt"
	"gwlock/internal/etcdtest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The etcd benchmarks measure what an operator waits for, with real
// processes on one loopback etcd, `gwlock run --backend etcd` (helper
// etcd-run) side by side with `etcdctl lock NAME -- CMD` at the same lease
// TTL, the shortest gwlock accepts for a 1 s stop budget:
//   - handoff: the first holder's command ends, the second's starts (ms);
//   - failover after SIGKILL of the holder, and after a black hole between
//     the holder and etcd: fault to the standby's command running, in ms
//     and in TTLs, and from the holder's key's DELETE (its lease's expiry)
//     to the standby's command running: fault to expiry depends on where
//     the fault fell between two keepalives, the rest on the lock alone;
//   - overlap: how long the old holder's command ran on after the new one
//     started (ms), watched for overlapWindow: gwlock's must be 0; etcdctl's
//     command outlives its lock, so its figure is the window itself.

const overlapWindow = time.Second

// benchTTL is the lease TTL of both contenders: the shortest gwlock accepts
// for the tests' stop budget, election rule included.
var benchTTL = func() time.Duration {
	cfg := etcdConfig{StopTimeout: etcdTestStopTimeout, LeaseMargin: etcdTestMargin, election: etcdElection}
	return cfg.minLeaseTTL(cfg.stopBudget())
}()

// benchHolder is one contender: gwlock (etcd-run) or etcdctl lock.
type benchHolder struct {
	cmd    *exec.Cmd
	pidDir string
}

func startBenchHolder(b *testing.B, kind, dir, label string, endpoint string, gwArgs string) *benchHolder {
	b.Helper()
	exe := testBinary(b)
	gw := fmt.Sprintf("-log %s -label %s -pidfile %s %s", filepath.Join(dir, "gateway.log"), label, filepath.Join(dir, "gw-"+label+".pid"), gwArgs)
	var cmd *exec.Cmd
	ttl := strconv.Itoa(int(benchTTL / time.Second))
	switch kind {
	case "gwlock":
		cmd = exec.Command(exe, "helper:etcd-run", "-endpoints", endpoint, "-name", "bench", "-ttl", benchTTL.String(), "-real-election",
			"-stop-timeout", etcdTestStopTimeout.String(), "-margin", etcdTestMargin.String(), "-gateway", gw)
	case "etcdctl":
		cmd = exec.Command("etcdctl", append([]string{"--endpoints", endpoint, "lock", "--ttl", ttl, "/gwlock-bench-etcdctl", "--", exe, "helper:etcd-gateway"}, strings.Fields(gw)...)...)
	}
	cmd.Env = append(cleanEnv(), "ETCDCTL_API=3")
	if f, err := os.Create(filepath.Join(dir, "holder-"+label+".err")); err == nil {
		cmd.Stderr = f
		b.Cleanup(func() { f.Close() })
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	h := &benchHolder{cmd: cmd, pidDir: dir}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// etcdctl's command is not killed with it: that is one of the findings.
		pids, _ := os.ReadFile(filepath.Join(dir, "gw-"+label+".pid"))
		for _, p := range strings.Fields(string(pids)) {
			if n, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
	})
	return h
}

// benchRuns reads the gateway log (labels as fences) without judging it.
func benchRuns(b *testing.B, dir string) map[string]*gatewayRun {
	b.Helper()
	data, _ := os.ReadFile(filepath.Join(dir, "gateway.log"))
	runs := map[string]*gatewayRun{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		at := time.Unix(0, ns)
		if r := runs[f[1]]; r != nil {
			r.last = at
			r.lines++
		} else {
			runs[f[1]] = &gatewayRun{first: at, last: at, lines: 1}
		}
	}
	return runs
}

func waitRun(b *testing.B, dir, label string, within time.Duration) *gatewayRun {
	b.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if r := benchRuns(b, dir)[label]; r != nil {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("holder %s's command did not start within %s", label, within)
	return nil
}

func benchKinds(b *testing.B, body func(b *testing.B, kind string)) {
	for _, kind := range []string{"gwlock", "etcdctl"} {
		b.Run(kind, func(b *testing.B) {
			if _, err := exec.LookPath("etcdctl"); err != nil && kind == "etcdctl" {
				b.Skip("no etcdctl")
			}
			body(b, kind)
		})
	}
}

func BenchmarkEtcdHandoff(b *testing.B) {
	c := etcdtest.Start(b, 1, "http")
	benchKinds(b, func(b *testing.B, kind string) {
		var total time.Duration
		for i := 0; i < b.N; i++ {
			dir := tempDir(b)
			a := startBenchHolder(b, kind, dir, "1", c.Endpoints()[0], "-life 1s")
			waitRun(b, dir, "1", 10*time.Second)
			next := startBenchHolder(b, kind, dir, "2", c.Endpoints()[0], "-life 100ms")
			_ = a.cmd.Wait()
			_ = next.cmd.Wait()
			runs := benchRuns(b, dir)
			if runs["2"] == nil {
				b.Fatalf("%s: the second holder never ran", kind)
			}
			total += runs["2"].first.Sub(runs["1"].last)
			if os.Getenv("GWLOCK_BENCH_DEBUG") != "" {
				e1, _ := os.ReadFile(filepath.Join(dir, "holder-1.err"))
				e2, _ := os.ReadFile(filepath.Join(dir, "holder-2.err"))
				b.Logf("%s: handoff %s\n%s\n%s\nlast %s first %s", kind, runs["2"].first.Sub(runs["1"].last), e1, e2, runs["1"].last.UTC().Format("15:04:05.000"), runs["2"].first.UTC().Format("15:04:05.000"))
			}
		}
		b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "handoff-ms")
	})
}

func BenchmarkEtcdFailoverKill(b *testing.B) {
	c := etcdtest.Start(b, 1, "http")
	benchFailover(b, c, func(a *benchHolder, proxy *etcdtest.Proxy) { _ = a.cmd.Process.Kill() })
}

func BenchmarkEtcdFailoverPartition(b *testing.B) {
	c := etcdtest.Start(b, 1, "http")
	benchFailover(b, c, func(a *benchHolder, proxy *etcdtest.Proxy) { proxy.Set(etcdtest.BlackHole) })
}

func benchFailover(b *testing.B, c *etcdtest.Cluster, fault func(*benchHolder, *etcdtest.Proxy)) {
	benchKinds(b, func(b *testing.B, kind string) {
		var total, overlap, afterDelete time.Duration
		for i := 0; i < b.N; i++ {
			dir := tempDir(b)
			proxy := etcdtest.StartProxy(b, strings.TrimPrefix(c.Endpoints()[0], "http://"))
			a := startBenchHolder(b, kind, dir, "1", proxy.URL(), "-life 1m")
			waitRun(b, dir, "1", 10*time.Second)
			next := startBenchHolder(b, kind, dir, "2", c.Endpoints()[0], "-life 1m")
			time.Sleep(300 * time.Millisecond) // the standby is waiting
			deleted := watchDelete(b, c.Endpoints()[0], benchKey[kind])
			at := time.Now()
			fault(a, proxy)
			second := waitRun(b, dir, "2", 4*benchTTL+10*time.Second)
			total += second.first.Sub(at)
			select {
			case del := <-deleted:
				afterDelete += second.first.Sub(del)
			case <-time.After(time.Second):
				b.Fatalf("%s: no DELETE of the holder's key seen", kind)
			}
			time.Sleep(overlapWindow) // does the old command run on?
			runs := benchRuns(b, dir)
			if d := runs["1"].last.Sub(runs["2"].first); d > 0 {
				overlap += d
			}
			_ = next.cmd.Process.Kill()
			proxy.Close()
		}
		b.ReportMetric(float64(total)/float64(b.N)/float64(benchTTL), "TTLs-to-failover")
		b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "failover-ms")
		b.ReportMetric(float64(afterDelete.Milliseconds())/float64(b.N), "after-delete-ms")
		b.ReportMetric(float64(overlap.Milliseconds())/float64(b.N), "overlap-ms")
	})
}

// frozenFor is how long BenchmarkEtcdFrozenLauncher freezes the holder's
// launcher: past the TTL, beyond what --lease-margin allows.
var frozenFor = benchTTL + 3*time.Second

// BenchmarkEtcdFrozenLauncher: SIGSTOP of the holder's launcher alone (not
// its command) for frozenFor, then SIGCONT. The lease expires while it is
// frozen and the standby starts; the frozen launcher stops its command
// only once it runs again. Reported: how long the two commands overlapped.
func BenchmarkEtcdFrozenLauncher(b *testing.B) {
	c := etcdtest.Start(b, 1, "http")
	benchKinds(b, func(b *testing.B, kind string) {
		var overlap time.Duration
		for i := 0; i < b.N; i++ {
			dir := tempDir(b)
			a := startBenchHolder(b, kind, dir, "1", c.Endpoints()[0], "-life 1m")
			waitRun(b, dir, "1", 10*time.Second)
			next := startBenchHolder(b, kind, dir, "2", c.Endpoints()[0], "-life 1m")
			time.Sleep(300 * time.Millisecond) // the standby is waiting
			_ = a.cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(frozenFor)
			_ = a.cmd.Process.Signal(syscall.SIGCONT)
			time.Sleep(overlapWindow + etcdTestStopTimeout) // the resumed launcher's stop, then: does the old command run on?
			runs := benchRuns(b, dir)
			if runs["2"] == nil {
				b.Fatalf("%s: the standby never ran", kind)
			}
			if d := runs["1"].last.Sub(runs["2"].first); d > 0 {
				overlap += d
			}
			_ = next.cmd.Process.Kill()
		}
		b.ReportMetric(float64(overlap.Milliseconds())/float64(b.N), "overlap-ms")
	})
}

// benchKey is the key (or, for etcdctl lock, the prefix) each kind's holder
// keeps on its lease.
var benchKey = map[string]string{"gwlock": "/gwlock-test/v1/bench", "etcdctl": "/gwlock-bench-etcdctl"}

// watchDelete watches key's prefix with etcdctl and sends the time the
// first DELETE was read.
func watchDelete(b *testing.B, endpoint, key string) <-chan time.Time {
	b.Helper()
	cmd := exec.Command("etcdctl", "--endpoints", endpoint, "watch", "--prefix", key)
	cmd.Env = append(cleanEnv(), "ETCDCTL_API=3")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deleted := make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "DELETE" {
				deleted <- time.Now()
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // the watch is open
	return deleted
}
