//go:build linux

package main

import (
	"fmt"
	"gwlock/internal/etcdtest"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestEtcdChaos runs three supervisors (each restarted when it exits, as
// systemd would) on a 3-member cluster, each through its own proxies, and
// injects faults at random moments for GWLOCK_ETCD_CHAOS (e.g. 5m; `make
// chaos-etcd`): holder SIGKILL, holder SIGTERM, a black hole or resets
// between a supervisor and etcd, a member lost, quorum lost, the key
// deleted. The gateways' log must never interleave, and outside quorum loss
// a gateway must run again within TTL + B + 1 s of each fault.
func TestEtcdChaos(t *testing.T) {
	length, err := time.ParseDuration(os.Getenv("GWLOCK_ETCD_CHAOS"))
	if err != nil {
		t.Skip("set GWLOCK_ETCD_CHAOS=5m (make chaos-etcd)")
	}
	r := startChaos(t)
	end := time.Now().Add(length)
	time.Sleep(etcdTestTTL)
	for time.Now().Before(end) {
		r.inject()
		time.Sleep(r.bound + time.Duration(r.rng.Int63n(int64(etcdTestTTL))))
	}
	for _, s := range r.sups {
		s.stop()
	}
	runs := checkGatewayLog(t, r.dir)
	t.Logf("faults %v; %d gateway runs, fences %d..%d", r.faults, len(runs), runs[0].fence, runs[len(runs)-1].fence)
	r.checkGaps(runs)
}

// chaosSupervisors is the number of hosts in the chaos test.
const chaosSupervisors = 3

// chaosRun is the chaos test's cluster, hosts and record of faults.
type chaosRun struct {
	t          *testing.T
	rng        *rand.Rand
	c          *etcdtest.Cluster
	dir        string
	proxies    [chaosSupervisors][]*etcdtest.Proxy
	sups       []*chaosSupervisor
	budget     time.Duration
	bound      time.Duration // TTL + B + 1 s: the longest a fault may leave no gateway
	quorumLoss []chaosWindow
	faults     map[string]int
}

type chaosWindow struct{ from, to time.Time }

// startChaos starts the cluster and one supervisor per host, each through
// its own proxy to every member.
func startChaos(t *testing.T) *chaosRun {
	r := &chaosRun{t: t, rng: rand.New(rand.NewSource(testSeed(t))), c: etcdtest.Start(t, 3, "http"), dir: tempDir(t),
		sups: make([]*chaosSupervisor, chaosSupervisors), faults: map[string]int{}}
	for i := range r.sups {
		var eps []string
		for _, ep := range r.c.Endpoints() {
			p := etcdtest.StartProxy(t, strings.TrimPrefix(ep, "http://"))
			r.proxies[i] = append(r.proxies[i], p)
			eps = append(eps, p.URL())
		}
		r.sups[i] = startChaosSupervisor(t, r.dir, i, eps)
	}
	r.budget = etcdTestStopTimeout + stopReserve + etcdTestMargin
	r.bound = etcdTestTTL + r.budget + scaled(time.Second)
	return r
}

// inject makes one fault of a random kind, for a random while.
func (r *chaosRun) inject() {
	holder := chaosHolder(r.t, r.dir, r.sups)
	kind := []string{"kill", "term", "black-hole", "reset", "member", "quorum", "delete"}[r.rng.Intn(7)]
	hold := time.Duration(r.rng.Int63n(int64(2 * etcdTestTTL)))
	r.faults[kind]++
	r.t.Logf("%s fault %s (holder supervisor %d), %s", time.Now().Format("15:04:05.000"), kind, holder, hold)
	switch kind {
	case "kill", "term":
		if holder >= 0 {
			sig := syscall.SIGKILL
			if kind == "term" {
				sig = syscall.SIGTERM
			}
			r.sups[holder].signal(sig)
		}
	case "black-hole", "reset":
		r.cut(holder, kind, hold)
	case "member":
		m := r.rng.Intn(3)
		r.c.Kill(m)
		time.Sleep(hold)
		r.c.Start(m)
	case "quorum":
		from := time.Now()
		m := r.rng.Intn(3)
		r.c.Kill(m)
		r.c.Kill((m + 1) % 3)
		time.Sleep(hold + etcdTestTTL)
		r.c.Start(m)
		r.c.Start((m + 1) % 3)
		// The old lease lives on for up to a TTL after a new leader.
		r.quorumLoss = append(r.quorumLoss, chaosWindow{from, time.Now().Add(2*etcdTestTTL + r.budget + scaled(2*time.Second))})
	case "delete":
		cmd := exec.Command("etcdctl", "--endpoints", strings.Join(r.c.Endpoints(), ","), "--command-timeout", "3s", "del", "/gwlock-test/v1/chaos")
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		_ = cmd.Run()
	}
}

// cut black-holes or resets one host's traffic (mostly the holder's) for hold.
func (r *chaosRun) cut(holder int, kind string, hold time.Duration) {
	victim := holder
	if victim < 0 || r.rng.Intn(4) == 0 {
		victim = r.rng.Intn(chaosSupervisors)
	}
	mode := etcdtest.BlackHole
	if kind == "reset" {
		mode = etcdtest.Reset
	}
	for _, p := range r.proxies[victim] {
		p.Set(mode)
	}
	time.Sleep(hold)
	for _, p := range r.proxies[victim] {
		p.Set(etcdtest.Pass)
	}
}

// checkGaps: outside quorum loss, no stretch without a gateway is longer
// than the bound (plus a second for starting the gateway).
func (r *chaosRun) checkGaps(runs []gatewayRun) {
	var worst time.Duration
	for i := 1; i < len(runs); i++ {
		gap := runs[i].first.Sub(runs[i-1].last)
		if r.inQuorumLoss(runs[i-1], runs[i]) {
			continue
		}
		if gap > worst {
			worst = gap
		}
		if gap > r.bound+scaled(time.Second) {
			r.t.Errorf("no gateway for %s between fence %d (until %s) and %d, want at most TTL + B + 1 s = %s (plus a second for starting the gateway)",
				gap, runs[i-1].fence, runs[i-1].last.Format("15:04:05.000"), runs[i].fence, r.bound)
		}
	}
	r.t.Logf("longest gap without a gateway outside quorum loss: %s (bound %s)", worst, r.bound)
}

func (r *chaosRun) inQuorumLoss(prev, next gatewayRun) bool {
	for _, w := range r.quorumLoss {
		if prev.last.Before(w.to) && next.first.After(w.from) {
			return true
		}
	}
	return false
}

// chaosSupervisor is one host: etcd-run, restarted whenever it exits.
type chaosSupervisor struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	quit chan struct{}
	done chan struct{}
}

func startChaosSupervisor(t *testing.T, dir string, i int, endpoints []string) *chaosSupervisor {
	s := &chaosSupervisor{quit: make(chan struct{}), done: make(chan struct{})}
	stderr, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("sup%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	exe := testBinary(t)
	gw := fmt.Sprintf("-life 1h -log %s -marker %s -pidfile %s", filepath.Join(dir, "gateway.log"), filepath.Join(dir, "marker"),
		filepath.Join(dir, fmt.Sprintf("gw%d.pid", i)))
	go func() {
		defer close(s.done)
		defer stderr.Close()
		for {
			cmd := exec.Command(exe, "helper:etcd-run", "-endpoints", strings.Join(endpoints, ","), "-name", "chaos",
				"-ttl", etcdTestTTL.String(), "-stop-timeout", etcdTestStopTimeout.String(), "-margin", etcdTestMargin.String(),
				"-timeout", "1h", "-gateway", gw)
			cmd.Env = cleanEnv()
			cmd.Stderr = stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if cmd.Start() != nil {
				return
			}
			s.mu.Lock()
			s.cmd = cmd
			s.mu.Unlock()
			_ = cmd.Wait()
			select {
			case <-s.quit:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *chaosSupervisor) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

func (s *chaosSupervisor) stop() {
	select {
	case <-s.quit:
		return
	default:
	}
	close(s.quit)
	s.signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.signal(syscall.SIGKILL)
		<-s.done
	}
}

// chaosHolder is the supervisor whose gateway wrote the log's last line
// (-1 when none is known): its gateway pid file names it.
func chaosHolder(t *testing.T, dir string, sups []*chaosSupervisor) int {
	b, err := os.ReadFile(filepath.Join(dir, "gateway.log"))
	if err != nil {
		return -1
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) != 4 {
		return -1
	}
	for i := range sups {
		pids, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("gw%d.pid", i)))
		for _, p := range strings.Fields(string(pids)) {
			if p == f[2] {
				return i
			}
		}
	}
	return -1
}
