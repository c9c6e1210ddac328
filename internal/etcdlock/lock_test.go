//go:build linux

package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gwlock/internal/etcd"
	"gwlock/internal/etcdtest"
)

// Test lease terms: TTL 3 s, stop budget 1 s (3B fits).
const (
	testTTL        = 3 * time.Second
	testStopBudget = time.Second
)

type testOwner struct {
	PID      int64  `json:"pid"`
	Hostname string `json:"hostname"`
	ChildPID int    `json:"childPid,omitempty"`
}

func newTestLocker(name string, endpoints ...string) *Locker {
	c := etcd.New(etcd.Config{Endpoints: endpoints, Attempt: time.Second})
	return New(Options{Client: c, Key: "/etcdlock-test/" + name, TTL: testTTL, StopBudget: testStopBudget,
		TakeoverDelay: TakeoverAuto, Owner: func(pid int) any { return testOwner{PID: 1, Hostname: "test", ChildPID: pid} }})
}

// events is an Observer that keeps what it hears.
type events struct {
	mu   sync.Mutex
	seen []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen = append(e.seen, s)
}

func (e *events) Contention(Holder)             { e.add("contention") }
func (e *events) Acquired(*Hold, time.Duration) { e.add("acquired") }
func (e *events) TakeoverDelay(d time.Duration, _ Holder, why string) {
	e.add(fmt.Sprintf("takeover-delay %s %s", d, why))
}
func (e *events) KeepaliveFailed(*Hold, time.Duration, error) { e.add("keepalive-failed") }
func (e *events) Lost(_ *Hold, reason string)                 { e.add("lost " + reason) }

func mustAcquire(t testing.TB, l *Locker, obs Observer) *Hold {
	t.Helper()
	h, err := l.Acquire(context.Background(), Request{Timeout: etcdtest.Scaled(5 * time.Second), Observer: obs})
	if err != nil {
		t.Fatalf("acquire %s: %v", l.Key(), err)
	}
	t.Cleanup(func() { _ = h.Release() })
	return h
}

func mustCall(t testing.TB, c *etcd.Client, op, path string, req, resp any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Call(ctx, op, path, req, resp); err != nil {
		t.Fatal(err)
	}
}

// TestAcquireResults: a live holder is a *BusyError at once with Timeout 0
// or GiveUpOnHolder, and after the timeout otherwise; a cancelled context is
// ErrCanceled, promptly.
func TestAcquireResults(t *testing.T) {
	c := etcdtest.Start(t, 1, "http")
	h := mustAcquire(t, newTestLocker("results", c.Endpoints()...), nil)
	contender := newTestLocker("results", c.Endpoints()...)
	for _, req := range []Request{{Timeout: 0}, {Timeout: time.Hour, GiveUpOnHolder: true}, {Timeout: 500 * time.Millisecond}} {
		start := time.Now()
		_, err := contender.Acquire(context.Background(), req)
		var busy *BusyError
		if !errors.As(err, &busy) || busy.Holder.Fence != h.Fence() || busy.Holder.PID != 1 {
			t.Fatalf("Acquire(%+v) = %v, want a BusyError naming fence %d, pid 1", req, err, h.Fence())
		}
		if took := time.Since(start); took > req.Timeout%time.Hour+etcdtest.Scaled(time.Second) {
			t.Errorf("Acquire(%+v) took %s", req, took)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := contender.Acquire(ctx, Request{Timeout: time.Hour})
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ErrCanceled) {
			t.Fatalf("Acquire after cancel = %v, want ErrCanceled", err)
		}
	case <-time.After(etcdtest.Scaled(2 * time.Second)):
		t.Fatal("Acquire did not return within 2 s of the cancel")
	}
}

// TestReleaseHandsOver: the release hands over to a waiting contender with
// a higher fence and no takeover delay; a second release has nothing to do.
func TestReleaseHandsOver(t *testing.T) {
	c := etcdtest.Start(t, 1, "http")
	h := mustAcquire(t, newTestLocker("handover", c.Endpoints()...), nil)
	contender := newTestLocker("handover", c.Endpoints()...)
	var standby events
	won := make(chan *Hold, 1)
	go func() {
		h2, err := contender.Acquire(context.Background(), Request{Timeout: etcdtest.Scaled(10 * time.Second), Observer: &standby})
		if err != nil {
			t.Error(err)
		}
		won <- h2
	}()
	waitFor(t, "the standby's contention", func() bool { return standby.has("contention") })
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	h2 := <-won
	if h2 == nil {
		t.FailNow()
	}
	defer h2.Release()
	if h2.Fence() <= h.Fence() || standby.has("takeover-delay") {
		t.Fatalf("after a release: fence %d (was %d), events %v; want a higher fence and no takeover delay", h2.Fence(), h.Fence(), standby.seen)
	}
	if err := h.Release(); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("second Release = %v, want ErrNotHeld", err)
	}
}

func (e *events) has(s string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.seen {
		if x == s {
			return true
		}
	}
	return false
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(etcdtest.Scaled(5 * time.Second))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSetGatewayReturnsAtOnce: with the cluster unreachable, SetGateway
// returns at once (the caller is the supervisor's loop); once the cluster
// answers again, the value names the latest gateway.
func TestSetGatewayReturnsAtOnce(t *testing.T) {
	c := etcdtest.Start(t, 1, "http")
	proxy := etcdtest.StartProxy(t, strings.TrimPrefix(c.Endpoints()[0], "http://"))
	h := mustAcquire(t, newTestLocker("gateway", proxy.URL()), nil)
	proxy.Set(etcdtest.BlackHole)
	start := time.Now()
	h.SetGateway(111)
	h.SetGateway(222)
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Fatalf("SetGateway took %s with the cluster unreachable, want at once", took)
	}
	proxy.Set(etcdtest.Pass)
	direct := etcd.New(etcd.Config{Endpoints: c.Endpoints()})
	waitFor(t, "gateway pid 222 in the value", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := Inspect(ctx, direct, h.Key())
		return err == nil && st.Holder.GatewayPID == 222
	})
}

// TestWatchCompaction: the holder's own-key watch, broken while history
// is compacted past its revision, comes back from the compaction and still
// sees a DELETE.
func TestWatchCompaction(t *testing.T) {
	c := etcdtest.Start(t, 1, "http")
	proxy := etcdtest.StartProxy(t, strings.TrimPrefix(c.Endpoints()[0], "http://"))
	h := mustAcquire(t, newTestLocker("compaction", proxy.URL()), nil)
	direct := etcd.New(etcd.Config{Endpoints: c.Endpoints()})
	proxy.Set(etcdtest.Reset)
	var rev int64
	for i := 0; i < 20; i++ {
		var r struct {
			Header etcd.Header `json:"header"`
		}
		mustCall(t, direct, "put", "/v3/kv/put", map[string]any{"key": []byte("/other"), "value": []byte{byte(i)}}, &r)
		rev = r.Header.Revision
	}
	var x struct{}
	mustCall(t, direct, "compact", "/v3/kv/compaction", map[string]any{"revision": rev, "physical": true}, &x)
	proxy.Set(etcdtest.Pass)
	waitFor(t, "the watch meeting the compaction", func() bool { return h.Compactions() > 0 })
	select {
	case reason := <-h.Lost():
		t.Fatalf("lock lost after a compaction of other keys: %s", reason)
	default:
	}
	mustCall(t, direct, "delete", "/v3/kv/deleterange", map[string]any{"key": []byte(h.Key())}, &x)
	select {
	case reason := <-h.Lost():
		if reason != LostKeyDeleted {
			t.Fatalf("Lost() = %s, want %s", reason, LostKeyDeleted)
		}
	case <-time.After(etcdtest.Scaled(testTTL)):
		t.Fatalf("DELETE after the compaction not seen within %s", testTTL)
	}
}

// TestPredecessorFromHistory: a standby that won without having watched
// the DELETE (it fell between two watch streams) reads the predecessor's last
// value from the history, so a released handoff costs no takeover delay and
// an unreleased one still does.
func TestPredecessorFromHistory(t *testing.T) {
	c := etcdtest.Start(t, 1, "http")
	l := newTestLocker("history", c.Endpoints()...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, released := range []bool{true, false} {
		var lease Lease
		if err := l.refreshLease(ctx, &lease); err != nil {
			t.Fatal(err)
		}
		_, seen, err := l.client.Get(ctx, "/nothing")
		if err != nil {
			t.Fatal(err)
		}
		var x struct{}
		mustCall(t, l.client, "put", "/v3/kv/put", map[string]any{"key": []byte(l.Key()), "value": l.value(&lease, 0, released)}, &x)
		mustCall(t, l.client, "delete", "/v3/kv/deleterange", map[string]any{"key": []byte(l.Key())}, &x)
		won, _, fence, err := l.client.CreateIfAbsent(ctx, l.Key(), l.value(&lease, 0, false), lease.ID)
		if err != nil || !won {
			t.Fatalf("CreateIfAbsent = %v, %v", won, err)
		}
		prev := l.predecessor(ctx, seen+1, fence)
		if prev == nil {
			t.Fatalf("released=%v: no predecessor found in the history", released)
		}
		v, err := ParseValue(prev.Value)
		if err != nil || v.Released != released {
			t.Fatalf("predecessor = %s (%v), want released=%v", prev.Value, err, released)
		}
		_ = l.client.Revoke(ctx, lease.ID)
	}
}
