//go:build linux

package etcd

import (
	"context"
	"testing"
	"time"

	"gwlock/internal/etcdtest"
)

// TestLeaseCalls against real etcd: grant, keepalive, the words a txn on
// a revoked lease is refused with (LeaseNotFound), and a revoke of a lease
// already gone is no error.
func TestLeaseCalls(t *testing.T) {
	cl := etcdtest.Start(t, 1, "http")
	c := New(Config{Endpoints: cl.Endpoints(), Attempt: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := c.Grant(ctx, 5*time.Second)
	if err != nil || l.TTL != 5 {
		t.Fatalf("Grant = %+v, %v; want TTL 5", l, err)
	}
	if r, err := c.KeepAlive(ctx, l.ID); err != nil || r.TTL != 5 {
		t.Fatalf("KeepAlive = %+v, %v", r, err)
	}
	won, _, rev, err := c.CreateIfAbsent(ctx, "/k", []byte("v"), l.ID)
	if err != nil || !won {
		t.Fatalf("CreateIfAbsent = %v, %v", won, err)
	}
	if won, kv, _, err := c.CreateIfAbsent(ctx, "/k", []byte("w"), l.ID); err != nil || won || kv == nil || kv.CreateRevision != rev || string(kv.Value) != "v" {
		t.Fatalf("second CreateIfAbsent = %v, %+v, %v; want the first kv", won, kv, err)
	}
	if err := c.Revoke(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	if r, err := c.KeepAlive(ctx, l.ID); err != nil || r.TTL != 0 {
		t.Fatalf("KeepAlive of a revoked lease = %+v, %v; want TTL 0", r, err)
	}
	if _, _, _, err := c.CreateIfAbsent(ctx, "/k", []byte("{}"), l.ID); !LeaseNotFound(err) {
		t.Fatalf("txn on a revoked lease = %v, want LeaseNotFound", err)
	}
	if err := c.Revoke(ctx, l.ID); err != nil {
		t.Fatalf("second Revoke = %v, want nil", err)
	}
}
