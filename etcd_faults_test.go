//go:build linux

package main

import (
	"gwlock/internal/etcdtest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// quietFor reads b's telemetry for d and fails on any event in forbidden, or
// if b ends.
func quietFor(t testing.TB, b *background, d time.Duration, forbidden ...string) {
	t.Helper()
	if ev := eventWithin(t, b, d, forbidden...); ev != nil {
		t.Fatalf("%s while it must not happen: %v\nstderr:\n%s", ev["event"], ev, strings.Join(b.seen, "\n"))
	}
}

// TestEtcdHolderKilled: SIGKILL of the holder kills its gateway with it; the
// standby wins within TTL + 1 s, when the lease expires, and starts its
// gateway at once: the holder's stop deadline passed before its lease ended.
func TestEtcdHolderKilled(t *testing.T) {
	c := etcdtest.Start(t, 1, "http")
	// A gateway that ignores SIGTERM too (third review, R3): with its
	// launcher dead nothing could escalate, so across hosts the kernel's
	// parent-death signal is SIGKILL, or it would run beside the standby's.
	for _, tc := range []struct{ name, gw string }{{"term", ""}, {"ignore-term", "-ignore-term"}} {
		t.Run(tc.name, func(t *testing.T) { etcdHolderKilled(t, c, tc.name, tc.gw) })
	}
}

func etcdHolderKilled(t *testing.T, c *etcdtest.Cluster, name, gw string) {
	r := newEtcdRunner(t, c.Endpoints(), "-name", "killed-"+name)
	a := r.start(nil, gw)
	r.waitGateway(t, a.waitEvent(t, "acquire-success"))
	b := r.start(nil, "")
	b.waitEvent(t, "acquire-contention")
	killed := time.Now()
	a.signal(t, syscall.SIGKILL)
	_, _ = a.wait(t)
	evB := b.waitEvent(t, "acquire-success")
	won := time.Since(killed)
	// The killed holder's lease expired: its stop deadline passed before,
	// so the standby starts its gateway without a delay.
	delay := b.waitEvent(t, "takeover-delay")
	if delay["delay_ms"] != "0" || delay["reason"] != "lease-ended" {
		t.Errorf("takeover-delay after the holder's lease expired = %v, want delay_ms=0 reason=lease-ended", delay)
	}
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
	c := etcdtest.Start(t, 1, "http")
	for _, tc := range []struct{ name, gw string }{{"term", ""}, {"ignore-term", "-ignore-term"}} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := etcdtest.StartProxy(t, strings.TrimPrefix(c.Endpoints()[0], "http://"))
			r := newEtcdRunner(t, c.Endpoints(), "-name", "partition-"+tc.name)
			a := r.start([]string{proxy.URL()}, tc.gw)
			r.waitGateway(t, a.waitEvent(t, "acquire-success"))
			b := r.start(nil, "")
			b.waitEvent(t, "acquire-contention")
			cut := time.Now()
			proxy.Set(etcdtest.BlackHole)
			lost := a.waitEvent(t, "lock-lost")
			if lost["reason"] != "keepalive-deadline" {
				t.Fatalf("lock-lost reason = %s, want %s", lost["reason"], "keepalive-deadline")
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
	c := etcdtest.Start(t, 1, "http")
	for _, tc := range []struct {
		name, flag string
		want       time.Duration
	}{
		{"auto", "", etcdTestStopTimeout + stopReserve + etcdTestMargin},
		{"explicit", "2300ms", 2300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newEtcdRunner(t, c.Endpoints(), "-name", "deleted-"+tc.name)
			// Its gateway ignores SIGTERM, so the holder's gwlock revokes
			// its lease only --stop-timeout after the deletion: the standby
			// finds the lease alive, the case where it must wait.
			a := r.start(nil, "-ignore-term")
			r.waitGateway(t, a.waitEvent(t, "acquire-success"))
			var extra []string
			if tc.flag != "" {
				extra = []string{"-takeover-delay", tc.flag}
			}
			b := r.start(nil, "", extra...)
			b.waitEvent(t, "acquire-contention")
			c.Etcdctl("del", "/gwlock-test/v1/deleted-"+tc.name)
			lost := a.waitEvent(t, "lock-lost")
			if lost["reason"] != "key-deleted" {
				t.Fatalf("lock-lost reason = %s, want %s", lost["reason"], "key-deleted")
			}
			waitExit(t, a, 1)
			evB := b.waitEvent(t, "acquire-success")
			delay := b.waitEvent(t, "takeover-delay")
			if delay["delay_ms"] != strconv.FormatInt(tc.want.Milliseconds(), 10) || delay["reason"] != "key-deleted-lease-alive" {
				t.Errorf("takeover-delay = %v, want delay_ms=%d reason=key-deleted-lease-alive", delay, tc.want.Milliseconds())
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

// TestEtcdTokenExpiry: RBAC with a token that dies under the holder (auth
// disabled and enabled again drops every token): the holder re-authenticates,
// keeps the lock and releases it cleanly to a standby.
func TestEtcdTokenExpiry(t *testing.T) {
	c := etcdtest.Start(t, 1, "http", "--auth-token", "simple", "--auth-token-ttl", "1")
	c.Etcdctl("user", "add", "root:secret")
	c.Etcdctl("auth", "enable")
	pw := filepath.Join(tempDir(t), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newEtcdRunner(t, c.Endpoints(), "-name", "token", "-user", "root", "-password-file", pw)
	a := r.start(nil, "")
	r.waitGateway(t, a.waitEvent(t, "acquire-success"))
	b := r.start(nil, "")
	b.waitEvent(t, "acquire-contention")
	c.Etcdctl("--user", "root:secret", "auth", "disable")
	c.Etcdctl("auth", "enable")
	time.Sleep(2 * time.Second) // past the token TTL too: both ways of dying
	a.signal(t, syscall.SIGTERM)
	outA := waitExit(t, a, 0)
	evs := parseLogfmt(outA)
	mustEvent(t, evs, "lock-released")
	if len(findEvents(evs, "lock-lost")) > 0 {
		t.Fatalf("lock lost over a token expiry:\n%s", outA)
	}
	authErrs := 0
	for _, e := range findEvents(evs, "backend-error") {
		if strings.Contains(e["err"], "auth token") {
			authErrs++
		}
	}
	if authErrs == 0 {
		t.Fatalf("no request met the dead token (the test did not test):\n%s", outA)
	}
	r.waitGateway(t, b.waitEvent(t, "acquire-success"))
	b.signal(t, syscall.SIGTERM)
	outB := waitExit(t, b, 0)
	if len(findEvents(parseLogfmt(strings.Join(b.seen, "\n")+outB), "takeover-delay")) > 0 {
		t.Errorf("takeover-delay: the released:true put after re-authentication did not land")
	}
	checkGatewayLog(t, r.dir)
}

// TestEtcdMemberLoss: in a 3-member cluster, losing a follower and then the
// leader costs no lock; losing quorum stops the gateway everywhere until
// quorum returns, and then a standby takes over.
func TestEtcdMemberLoss(t *testing.T) {
	c := etcdtest.Start(t, 3, "http")
	r := newEtcdRunner(t, c.Endpoints(), "-name", "members")
	a := r.start(nil, "")
	r.waitGateway(t, a.waitEvent(t, "acquire-success"))
	b := r.start(nil, "")
	b.waitEvent(t, "acquire-contention")
	for _, loss := range []string{"follower", "leader"} {
		l := c.Leader()
		if l < 0 {
			t.Fatal("no leader")
		}
		victim := l
		if loss == "follower" {
			victim = (l + 1) % 3
		}
		c.Kill(victim)
		quietFor(t, a, 2*etcdTestTTL, "lock-lost")
		quietFor(t, b, 10*time.Millisecond, "acquire-success")
		c.Start(victim)
		c.WaitHealthy(c.Members[victim])
	}
	// Quorum loss: two of three gone.
	l := c.Leader()
	c.Kill((l + 1) % 3)
	c.Kill((l + 2) % 3)
	lost := a.waitEvent(t, "lock-lost")
	if lost["reason"] != "keepalive-deadline" {
		t.Fatalf("lock-lost reason = %s, want %s", lost["reason"], "keepalive-deadline")
	}
	waitExit(t, a, 1)
	quietFor(t, b, 2*etcdTestTTL, "acquire-success")
	restored := time.Now()
	c.Start((l + 1) % 3)
	c.Start((l + 2) % 3)
	evB := b.waitEvent(t, "acquire-success")
	r.waitGateway(t, evB)
	b.signal(t, syscall.SIGTERM)
	waitExit(t, b, 0)
	runs := checkGatewayLog(t, r.dir)
	if len(runs) != 2 {
		t.Fatalf("gateway runs = %v, want 2", runs)
	}
	if !runs[1].first.After(restored) {
		t.Fatalf("a gateway started at %s, before quorum returned at %s", runs[1].first, restored)
	}
}
