// Package etcdlock is a lock on one etcd key held with a lease: take the
// key, be told when it is lost, let it go.
//
// Acquire grants a lease and creates the key on it if the key is absent;
// otherwise it watches the key until its holder's DELETE and tries again,
// keeping its own lease alive meanwhile, until the request's timeout. The
// key's create revision is the fence: it increases from one holder to the
// next.
//
// The safety rule: a Hold is lost at a local monotonic deadline, the send
// time of its last good keepalive + TTL - StopBudget, and no request it makes
// outlives that deadline. The server cannot expire the lease before send
// time + TTL, and a contender wins only after expiry, so a holder that stops
// its work within StopBudget of the loss is done before anyone else starts.
// A Hold is also lost when its lease expires or its key is deleted or
// replaced. Every loss is told once: to the Observer, then on Lost.
//
// A contender that wins after a holder vanished without marking its value
// released asks whether that holder's lease has ended, and reads, while it
// waits, how long that lease has left at least. A lease that ended no
// earlier than it could expire unrenewed proves its holder's stop deadline
// passed: Acquire returns at once. A key deleted while its lease lives, a
// lease that ended sooner (revoked by hand, or by a frozen etcd leader that
// resumed), or a lease it could not ask about: it waits the takeover delay,
// as the vanished holder may still be stopping. A contender claims the key
// only on a lease renewed within the last keepalive period.
//
// The package knows nothing of how its events are shown: it reports them to
// an Observer and returns values.
package etcdlock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"gwlock/internal/etcd"
)

// Reasons a hold is lost, as Lost delivers them.
const (
	LostDeadline     = "keepalive-deadline"
	LostLeaseExpired = "lease-expired"
	LostKeyDeleted   = "key-deleted"
)

// TakeoverAuto as Options.TakeoverDelay waits the vanished holder's own stop
// budget, from its value (ours if it recorded none).
const TakeoverAuto time.Duration = -1

// Options say which key, on which lease terms, and what the value says.
type Options struct {
	Client        *etcd.Client
	Key           string
	TTL           time.Duration // whole seconds
	StopBudget    time.Duration // from the loss to the holder's work stopped
	TakeoverDelay time.Duration // TakeoverAuto, or a duration of 0 or more
	// WatchLifetime, if set and shorter than TTL/3, bounds one watch stream
	// of a contender (tests).
	WatchLifetime time.Duration
	// Owner is the owner part of the key's value, a value that encodes as a
	// JSON object with at least "pid", "hostname" and "childPid" (the
	// gateway pid given); the lock adds its own fields.
	Owner func(gatewayPID int) any
}

// Observer hears what a lock does while it is not answering a call. Its
// methods run on the lock's goroutines and must not block for long.
type Observer interface {
	// Contention: a holder not seen before holds the key.
	Contention(holder Holder)
	// Acquired: the key is ours; the hold's loops run from now.
	Acquired(h *Hold, waited time.Duration)
	// TakeoverDelay: the previous holder vanished without releasing; the
	// new holder waits delay (0 after its lease ended), for reason (one of
	// the Takeover* constants).
	TakeoverDelay(delay time.Duration, prev Holder, reason string)
	// KeepaliveFailed: one keepalive failed; stopIn is what is left.
	KeepaliveFailed(h *Hold, stopIn time.Duration, err error)
	// Lost: the hold is lost, for reason (one of the Lost* constants).
	Lost(h *Hold, reason string)
}

// Holder is who holds the key, as its value says.
type Holder struct {
	Fence        int64  `json:"-"`
	Hostname     string `json:"hostname"`
	PID          int64  `json:"pid"`
	GatewayPID   int    `json:"childPid"`
	StopBudgetMs int64  `json:"stopBudgetMs"`
	Released     bool   `json:"released"`
}

// valueTail is what the lock adds to the owner part of the value.
type valueTail struct {
	Backend      string `json:"backend"`
	Lease        string `json:"lease"`
	TTLSeconds   int64  `json:"ttlSeconds"`
	StopBudgetMs int64  `json:"stopBudgetMs"`
	Released     bool   `json:"released,omitempty"`
}

// ParseValue reads the holder facts of a key's value.
func ParseValue(b []byte) (*Holder, error) {
	var v Holder
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after value")
	}
	if v.StopBudgetMs < 0 || v.StopBudgetMs > int64(time.Hour/time.Millisecond) {
		v.StopBudgetMs = 0
	}
	return &v, nil
}

// holderOf is kv's holder; an unreadable value names nobody.
func holderOf(kv *etcd.KV) Holder {
	v, err := ParseValue(kv.Value)
	if err != nil {
		v = &Holder{}
	}
	v.Fence = kv.CreateRevision
	return *v
}

// Lease is a lease as granted or last refreshed.
type Lease struct {
	ID       int64
	TTL      time.Duration
	goodSend time.Time // send time of the last grant or keepalive the server answered with a TTL
}

// Locker takes one key.
type Locker struct {
	opts   Options
	client *etcd.Client
}

// New returns a Locker; it contacts nothing.
func New(opts Options) *Locker {
	return &Locker{opts: opts, client: opts.Client}
}

// Key is the locked key.
func (l *Locker) Key() string { return l.opts.Key }

// value is the key's value for lease, with the gateway pid and the release mark.
func (l *Locker) value(lease *Lease, gatewayPID int, released bool) []byte {
	tail, _ := json.Marshal(valueTail{Backend: "etcd", Lease: strconv.FormatInt(lease.ID, 16),
		TTLSeconds: int64(lease.TTL / time.Second), StopBudgetMs: l.opts.StopBudget.Milliseconds(), Released: released})
	if l.opts.Owner == nil {
		return tail
	}
	owner, err := json.Marshal(l.opts.Owner(gatewayPID))
	if err != nil || len(owner) < 2 || owner[0] != '{' || owner[len(owner)-1] != '}' {
		return tail
	}
	if len(bytes.TrimSpace(owner[1:len(owner)-1])) == 0 {
		return tail
	}
	return append(append(owner[:len(owner)-1:len(owner)-1], ','), tail[1:]...)
}

// refreshLease keeps lease alive, or grants a new one if it has none or
// the server no longer knows it.
func (l *Locker) refreshLease(ctx context.Context, lease *Lease) error {
	if lease.ID != 0 {
		send := time.Now()
		r, err := l.client.KeepAlive(ctx, lease.ID)
		if err != nil {
			return err
		}
		if r.TTL > 0 {
			lease.goodSend, lease.TTL = send, time.Duration(r.TTL)*time.Second
			return nil
		}
	}
	send := time.Now()
	r, err := l.client.Grant(ctx, l.opts.TTL)
	if err != nil {
		return err
	}
	lease.ID, lease.TTL, lease.goodSend = r.ID, time.Duration(r.TTL)*time.Second, send
	return nil
}

// Why a new holder waits, or not, after its predecessor vanished without
// releasing, as Observer.TakeoverDelay hears it.
const (
	// TakeoverLeaseEnded: the predecessor's lease is gone, and went no
	// earlier than it could expire unrenewed: the predecessor stopped
	// renewing, and its stop deadline passed before the lease could end.
	// Nothing waits.
	TakeoverLeaseEnded = "lease-ended"
	// TakeoverLeaseRevoked: the lease went before it could have expired:
	// revoked by hand, or early by an etcd leader that was frozen. The
	// predecessor is stopping only now.
	TakeoverLeaseRevoked = "lease-revoked"
	// TakeoverLeaseLives: the key went while its lease lives (deleted by
	// hand): the predecessor is stopping only now.
	TakeoverLeaseLives = "key-deleted-lease-alive"
	// TakeoverLeaseUnknown: the lease could not be asked about, or its
	// remaining life was never read: the predecessor may still be stopping.
	TakeoverLeaseUnknown = "lease-unknown"
)

// vanished is what a contender knows of a predecessor gone without
// releasing: its lease, the earliest that lease could expire unrenewed as
// last read (zero: never read), and when its DELETE was seen.
type vanished struct {
	lease      int64
	expiry, at time.Time
}

// takeover is how long to wait before Acquire returns after the holder prev
// vanished, and why: nothing after released:true (and no reason to tell),
// nothing once its lease has ended no earlier than it could expire, else
// takeoverDelay.
func (l *Locker) takeover(ctx context.Context, prev *Holder, gone vanished) (time.Duration, string) {
	if prev == nil || prev.Released {
		return 0, ""
	}
	if gone.lease == 0 {
		return l.takeoverDelay(prev), TakeoverLeaseUnknown
	}
	tctx, cancel := context.WithTimeout(ctx, l.client.Attempt())
	defer cancel()
	ttl, err := l.client.TimeToLive(tctx, gone.lease)
	switch {
	case err != nil || (ttl < 0 && gone.expiry.IsZero()):
		return l.takeoverDelay(prev), TakeoverLeaseUnknown
	case ttl >= 0:
		return l.takeoverDelay(prev), TakeoverLeaseLives
	case gone.at.Before(gone.expiry):
		return l.takeoverDelay(prev), TakeoverLeaseRevoked
	}
	return 0, TakeoverLeaseEnded
}

// takeoverDelay is how long to wait after the holder prev vanished while
// its lease may live: none after released:true, else Options.TakeoverDelay,
// or under TakeoverAuto prev's own stop budget (ours if it recorded none).
func (l *Locker) takeoverDelay(prev *Holder) time.Duration {
	switch {
	case prev == nil || prev.Released:
		return 0
	case l.opts.TakeoverDelay != TakeoverAuto:
		return l.opts.TakeoverDelay
	case prev.StopBudgetMs > 0:
		return time.Duration(prev.StopBudgetMs) * time.Millisecond
	}
	return l.opts.StopBudget
}

// revoke gives up a contender lease, best effort.
func (l *Locker) revoke(lease *Lease) {
	if lease.ID != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), l.client.Attempt())
		_ = l.client.Revoke(ctx, lease.ID)
		cancel()
	}
}

// Status is what the key says now.
type Status struct {
	Held    bool
	Holder  Holder // Fence and, when the value is readable, the rest
	TTLLeft int64  // seconds left on the holder's lease, 0 if unknown
}

// Inspect reads who holds key now.
func Inspect(ctx context.Context, c *etcd.Client, key string) (Status, error) {
	if err := c.Authenticate(ctx); err != nil {
		return Status{}, err
	}
	kv, _, err := c.Get(ctx, key)
	if err != nil || kv == nil {
		return Status{}, err
	}
	st := Status{Held: true, Holder: Holder{Fence: kv.CreateRevision}}
	if v, err := ParseValue(kv.Value); err == nil {
		st.Holder = *v
		st.Holder.Fence = kv.CreateRevision
	}
	if kv.Lease != 0 {
		if ttl, err := c.TimeToLive(ctx, kv.Lease); err == nil {
			st.TTLLeft = ttl
		}
	}
	return st, nil
}

// BusyError is Acquire's answer when a live holder keeps the key.
type BusyError struct {
	Key    string
	Holder Holder
	Waited time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("etcd lock %s held by pid %d on %s", e.Key, e.Holder.PID, e.Holder.Hostname)
}

// UnreachableError is Acquire's answer when the cluster did not answer in
// time: Err is the last request's error.
type UnreachableError struct{ Err error }

func (e *UnreachableError) Error() string { return e.Err.Error() }
func (e *UnreachableError) Unwrap() error { return e.Err }

// ErrCanceled: the caller's context ended before the key was ours.
var ErrCanceled = errors.New("etcd lock: canceled")
