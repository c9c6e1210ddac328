//go:build linux

package etcdlock

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gwlock/internal/etcdtest"
)

// TestTakeoverDecision: a new holder whose predecessor vanished without
// releasing waits only while that predecessor may still be stopping. Its
// lease expired: no wait, said as lease-ended. Its lease revoked (an
// operator's `etcdctl lease revoke`) or its key deleted while the lease
// lives: the predecessor's stop budget.
func TestTakeoverDecision(t *testing.T) {
	c := etcdtest.Start(t, 1, "http")
	for _, tc := range []struct {
		name  string
		fault func(t *testing.T, h *Hold)
		want  string
	}{
		{"lease-expired", func(t *testing.T, h *Hold) { h.stopLoops() }, "takeover-delay 0s " + TakeoverLeaseEnded},
		{"lease-revoked", func(t *testing.T, h *Hold) {
			h.stopLoops()
			if err := h.l.client.Revoke(context.Background(), h.lease.ID); err != nil {
				t.Fatal(err)
			}
		}, "takeover-delay 1s " + TakeoverLeaseRevoked},
		{"key-deleted", func(t *testing.T, h *Hold) {
			mustCall(t, h.l.client, "delete", "/v3/kv/deleterange", map[string]any{"key": []byte(h.Key())}, &struct{}{})
		}, "takeover-delay 1s " + TakeoverLeaseLives},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := mustAcquire(t, newTestLocker("decision-"+tc.name, c.Endpoints()...), nil)
			var standby events
			won := make(chan *Hold, 1)
			go func() {
				h2, err := newTestLocker("decision-"+tc.name, c.Endpoints()...).Acquire(context.Background(),
					Request{Timeout: etcdtest.Scaled(10 * time.Second), Observer: &standby})
				if err != nil {
					t.Error(err)
				}
				won <- h2
			}()
			waitFor(t, "the standby's contention", func() bool { return standby.has("contention") })
			tc.fault(t, h)
			h2 := <-won
			if h2 == nil {
				t.FailNow()
			}
			defer h2.Release()
			got := decision(&standby)
			if tc.name == "lease-revoked" && got == "takeover-delay 1s "+TakeoverLeaseUnknown {
				got = tc.want // revoked before the standby's first read of it: a wait all the same
			}
			if got != tc.want {
				t.Fatalf("takeover after %s = %q, want %q (events %v)", tc.name, got, tc.want, standby.seen)
			}
		})
	}
}

// decision is the takeover-delay event the observer heard.
func decision(e *events) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.seen {
		if strings.HasPrefix(s, "takeover-delay") {
			return s
		}
	}
	return ""
}

// TestClaimOnFreshLease: a contender whose claim was slow (its txn answered
// only after the lease's stop deadline, as in an election) renews its lease
// before the key counts as won, so its hold starts with the lease's life
// ahead instead of being lost at once.
func TestClaimOnFreshLease(t *testing.T) {
	c := etcdtest.Start(t, 1, "http")
	const slowTxn = 1500 * time.Millisecond // past the stop deadline below
	member, err := url.Parse(c.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	var txns atomic.Int32
	forward := httputil.NewSingleHostReverseProxy(member)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3/kv/txn" && txns.Add(1) == 1 {
			time.Sleep(slowTxn)
		}
		forward.ServeHTTP(w, r)
	}))
	defer slow.Close()
	l := newTestLocker("fresh", slow.URL)
	r, err := l.client.Grant(context.Background(), testTTL)
	if err != nil {
		t.Fatal(err)
	}
	// Renewed just under a keepalive period ago: the round claims without
	// renewing first, and the slow txn carries the claim past
	// renewal + TTL - stop budget.
	renewed := time.Now().Add(-(testTTL/3 - 100*time.Millisecond))
	var obs events
	a := &attempt{l: l, req: Request{Timeout: etcdtest.Scaled(5 * time.Second), Observer: &obs}, ctx: context.Background(),
		start: time.Now(), deadline: time.Now().Add(etcdtest.Scaled(5 * time.Second)),
		lease: Lease{ID: r.ID, TTL: time.Duration(r.TTL) * time.Second, goodSend: renewed}}
	s := a.round()
	for s.next == attemptAgain {
		s = a.round()
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	defer s.h.Release()
	if left, want := time.Until(s.h.deadline()), testTTL-testStopBudget-time.Second; left < want {
		t.Fatalf("hold's stop deadline %s ahead at the claim, want at least %s (events %v)", left, want, obs.seen)
	}
}
