//go:build linux

package main

import (
	"gwlock/internal/etcdtest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEtcdLeaderLoss: on a three-member cluster with etcd's default
// election timing, the holder's own member is the leader, and the leader
// is killed (kill -9) or frozen (SIGSTOP) for a whole TTL, just before a
// keepalive is due: at the shortest
// TTL gwlock accepts for its stop budget, the holder keeps renewing through
// the election and never loses the lock, and the standby never wins.
func TestEtcdLeaderLoss(t *testing.T) {
	c := etcdtest.Start(t, 3, "http", etcdtest.DefaultTimings...)
	cfg := etcdConfig{StopTimeout: etcdTestStopTimeout, LeaseMargin: etcdTestMargin, election: etcdElection}
	ttl := cfg.minLeaseTTL(cfg.stopBudget())
	for _, fault := range []string{"kill", "stop"} {
		t.Run(fault, func(t *testing.T) {
			leader := leaderNow(t, c)
			r := newEtcdRunner(t, leaderFirst(c, leader), "-name", "election-"+fault, "-ttl", ttl.String(), "-real-election")
			a := r.start(nil, "")
			acquired := a.waitEvent(t, "acquire-success")
			r.waitGateway(t, acquired)
			b := r.start(nil, "")
			b.waitEvent(t, "acquire-contention")
			time.Sleep(time.Until(worstMoment(eventTime(t, acquired), ttl/3)))
			if fault == "kill" {
				c.Kill(leader)
			} else {
				c.Signal(leader, syscall.SIGSTOP)
			}
			// A lost lock would be told within TTL - stop budget of the last
			// good keepalive, which was before the fault.
			quietFor(t, a, ttl, "lock-lost")
			quietFor(t, b, 10*time.Millisecond, "acquire-success")
			if fault == "kill" {
				c.Start(leader)
			} else {
				c.Signal(leader, syscall.SIGCONT)
			}
			c.WaitHealthy(c.Members...)
			seen := parseLogfmt(strings.Join(a.seen, "\n"))
			t.Logf("leader %s at TTL %s (stop budget %s): lock kept; holder's keepalive-failed %d, backend-error %d",
				fault, ttl, cfg.stopBudget(), len(findEvents(seen, "keepalive-failed")), len(findEvents(seen, "backend-error")))
			// A frozen leader that resumes may delete the key, lease and
			// all (etcd before 3.5.13 does, and 3.6.16 was seen to once):
			// then the holder must stop, and the standby must wait.
			if lost := eventWithin(t, a, scaled(2*time.Second), "lock-lost"); lost != nil {
				resumedLeaderRevokes(t, r, lost, a, b)
				t.Logf("old leader's log:\n%s", c.Log(leader))
				return
			}
			// The standby first: stopped while it waits, it exits 128+15;
			// stopped after the holder, it would win and race its gateway.
			b.signal(t, syscall.SIGTERM)
			waitExit(t, b, 128+int(syscall.SIGTERM))
			a.signal(t, syscall.SIGTERM)
			waitExit(t, a, 0)
			checkGatewayLog(t, r.dir)
		})
	}
}

// worstMoment is the fault's moment: just before one of the holder's
// keepalives is due (they follow the acquisition every period while they
// succeed), so the one that was answered last is a whole period old and
// the election eats into what is left before the stop deadline.
func worstMoment(acquired time.Time, period time.Duration) time.Time {
	at := acquired.Add(period - 100*time.Millisecond)
	for time.Until(at) < 50*time.Millisecond {
		at = at.Add(period)
	}
	return at
}

// leaderNow is the member that leads now, waiting for the cluster to agree on one.
func leaderNow(t *testing.T, c *etcdtest.Cluster) int {
	t.Helper()
	deadline := time.Now().Add(scaled(10 * time.Second))
	for time.Now().Before(deadline) {
		if l := c.Leader(); l >= 0 {
			return l
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no leader within 10 s")
	return -1
}

// leaderFirst is the cluster's endpoints with the leader's first, so the
// holder talks to the member the fault hits.
func leaderFirst(c *etcdtest.Cluster, leader int) []string {
	eps := []string{c.Endpoints()[leader]}
	for i, e := range c.Endpoints() {
		if i != leader {
			eps = append(eps, e)
		}
	}
	return eps
}

// resumedLeaderRevokes: an etcd leader frozen past the holder's lease TTL
// may revoke that lease when it resumes (before 3.5.13 it does: it still
// believes it leads), though the new leader kept it renewed. The holder
// sees its key deleted and stops; the standby, finding the lease gone
// before it could have expired (or alive), waits the holder's stop budget,
// so the two gateways never overlap.
func resumedLeaderRevokes(t *testing.T, r *etcdRunner, lost map[string]string, a, b *background) {
	t.Helper()
	if lost["reason"] != "key-deleted" {
		t.Fatalf("lock-lost after the frozen leader resumed = %v, want reason=key-deleted", lost)
	}
	waitExit(t, a, 1)
	r.waitGateway(t, b.waitEvent(t, "acquire-success"))
	ev := b.waitEvent(t, "takeover-delay")
	if (ev["reason"] != "lease-revoked" && ev["reason"] != "key-deleted-lease-alive") || ev["delay_ms"] == "0" {
		t.Errorf("standby's takeover after an early deletion = %v, want reason=lease-revoked or key-deleted-lease-alive, and a delay", ev)
	}
	t.Logf("etcd %s: the resumed leader deleted the key (takeover reason %s); the holder stopped, the standby waited", etcdtest.Version(t), ev["reason"])
	b.signal(t, syscall.SIGTERM)
	waitExit(t, b, 0)
	if runs := checkGatewayLog(t, r.dir); len(runs) != 2 {
		t.Fatalf("gateway runs = %v, want 2", runs)
	}
}

// eventWithin reads b's telemetry for up to d and returns the first event
// named one of names (nil if none came).
func eventWithin(t testing.TB, b *background, d time.Duration, names ...string) map[string]string {
	t.Helper()
	end := time.After(d)
	for {
		select {
		case line, ok := <-b.lines:
			if !ok {
				t.Fatalf("helper ended; stderr:\n%s", strings.Join(b.seen, "\n"))
			}
			b.seen = append(b.seen, line)
			for _, ev := range parseLogfmt(line) {
				if slices.Contains(names, ev["event"]) {
					return ev
				}
			}
		case <-end:
			return nil
		}
	}
}
