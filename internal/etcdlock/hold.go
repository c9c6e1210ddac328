package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Hold is the key held. Three loops keep it: keepalives every TTL/3, the
// deadline, and a watch on the key; a fourth writes the gateway pid into
// the value when SetGateway asks, so no caller waits on the network.
type Hold struct {
	l        *Locker
	obs      Observer
	lease    Lease
	fence    int64
	acquired time.Time

	mu          sync.Mutex
	stopAt      time.Time // send time of the last good keepalive + TTL - StopBudget (monotonic)
	gateway     int
	compactions int // watches that found their start revision compacted
	isLost      bool
	released    bool

	gatewaySet chan struct{} // SetGateway's wake-up for valueLoop
	lostCh     chan string
	lostOnce   sync.Once
	done       chan struct{} // closed on release or abandon: the loops end
	stopOnce   sync.Once
	wg         sync.WaitGroup
}

func newHold(l *Locker, lease Lease, fence int64, obs Observer) *Hold {
	return &Hold{l: l, obs: obs, lease: lease, fence: fence, acquired: time.Now(),
		stopAt:     lease.goodSend.Add(lease.TTL - l.opts.StopBudget),
		gatewaySet: make(chan struct{}, 1), lostCh: make(chan string, 1), done: make(chan struct{})}
}

// Key is the held key.
func (h *Hold) Key() string { return h.l.opts.Key }

// Fence is the key's create revision: it increases from holder to holder.
func (h *Hold) Fence() int64 { return h.fence }

// Lease is the lease the key lives on.
func (h *Hold) Lease() Lease { return h.lease }

// Acquired is when the key became ours.
func (h *Hold) Acquired() time.Time { return h.acquired }

// Lost delivers, once, why the hold was lost.
func (h *Hold) Lost() <-chan string { return h.lostCh }

// Compactions counts the watches that found their history compacted.
func (h *Hold) Compactions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.compactions
}

// SetGateway records the gateway pid (0: none now) in the key's value. It
// returns at once; the write happens on the hold's own goroutine, the
// latest pid winning.
func (h *Hold) SetGateway(pid int) {
	h.mu.Lock()
	h.gateway = pid
	h.mu.Unlock()
	select {
	case h.gatewaySet <- struct{}{}:
	default: // a write is already due; it will read the latest pid
	}
}

// deadline is stopAt, read under the lock.
func (h *Hold) deadline() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopAt
}

// reqCtx bounds one request of the hold: an attempt, and never past stopAt.
func (h *Hold) reqCtx() (context.Context, context.CancelFunc) {
	return h.reqCtxWithin(h.lease.TTL / 3)
}

func (h *Hold) reqCtxWithin(bound time.Duration) (context.Context, context.CancelFunc) {
	end := time.Now().Add(bound)
	if s := h.deadline(); s.Before(end) {
		end = s
	}
	ctx, cancel := context.WithDeadline(context.Background(), end)
	go cancelOn(ctx, cancel, h.done)
	return ctx, cancel
}

// cancelOn cancels ctx when stop closes, and ends with ctx.
func cancelOn(ctx context.Context, cancel context.CancelFunc, stop <-chan struct{}) {
	select {
	case <-stop:
		cancel()
	case <-ctx.Done():
	}
}

func (h *Hold) lose(reason string) {
	h.lostOnce.Do(func() {
		h.mu.Lock()
		h.isLost = true
		h.mu.Unlock()
		if h.obs != nil {
			h.obs.Lost(h, reason)
		}
		h.lostCh <- reason
	})
}

func (h *Hold) start() {
	h.wg.Add(4)
	go h.keepaliveLoop()
	go h.deadlineLoop()
	go h.watchLoop()
	go h.valueLoop()
}

// keepaliveRetry is the pause after a failed keepalive try: tries follow
// each other closely until the deadline, so the first one after an election
// ends is sent within this of it.
const keepaliveRetry = 100 * time.Millisecond

// keepaliveLoop refreshes the lease every TTL/3 after the last good send;
// each failure says how long is left, and the next try follows at once.
func (h *Hold) keepaliveLoop() {
	defer h.wg.Done()
	period := h.lease.TTL / 3
	// A period after the lease's last renewal, as ever after: Acquire
	// claims only on a lease renewed within a period, so its stop deadline
	// is as far ahead as in the steady state.
	next := h.lease.goodSend.Add(period)
	for {
		if !h.sleepUntil(next) || h.lostNow() {
			return
		}
		send := time.Now()
		// Two attempts per try (never past the deadline): one may wait on
		// a frozen member, the other reaches the next one, which answers
		// as soon as the cluster has a leader again.
		ctx, cancel := h.reqCtxWithin(2 * h.l.client.Attempt())
		r, err := h.l.client.KeepAlive(ctx, h.lease.ID)
		cancel()
		switch {
		case err == nil && r.TTL > 0:
			ttl := time.Duration(r.TTL) * time.Second
			h.mu.Lock()
			h.stopAt = send.Add(ttl - h.l.opts.StopBudget)
			h.mu.Unlock()
			next = send.Add(period)
		case err == nil:
			h.lose(LostLeaseExpired)
			return
		case h.isDone():
			return // released meanwhile: the try was cut short, nothing failed
		default:
			if h.obs != nil {
				h.obs.KeepaliveFailed(h, time.Until(h.deadline()), err)
			}
			next = time.Now().Add(keepaliveRetry)
		}
	}
}

// sleepUntil waits for t; false if the hold ended first.
func (h *Hold) sleepUntil(t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-h.done:
		return false
	case <-timer.C:
		return true
	}
}

// deadlineLoop declares the hold lost at stopAt, unless a keepalive moved it.
func (h *Hold) deadlineLoop() {
	defer h.wg.Done()
	for {
		wait := time.Until(h.deadline())
		if wait <= 0 {
			h.lose(LostDeadline)
			return
		}
		if !h.sleepUntil(time.Now().Add(wait)) {
			return
		}
	}
}

// valueLoop writes the gateway pid SetGateway recorded, while the key is ours.
func (h *Hold) valueLoop() {
	defer h.wg.Done()
	for {
		select {
		case <-h.done:
			return
		case <-h.gatewaySet:
		}
		h.mu.Lock()
		pid := h.gateway
		h.mu.Unlock()
		ctx, cancel := h.reqCtx()
		_, _ = h.l.client.PutIfCreated(ctx, h.Key(), h.l.value(&h.lease, pid, false), h.lease.ID, h.fence)
		cancel()
	}
}

func (h *Hold) lostNow() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.isLost
}

func (h *Hold) isDone() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

func (h *Hold) stopLoops() {
	h.stopOnce.Do(func() { close(h.done) })
	h.wg.Wait()
}

// abandon ends a hold whose work never started: loops stopped, lease revoked.
func (h *Hold) abandon() {
	h.stopLoops()
	ctx, cancel := context.WithTimeout(context.Background(), h.l.client.Attempt())
	defer cancel()
	_ = h.l.client.Revoke(ctx, h.lease.ID)
}

// ErrNotHeld is Release's answer when there was nothing to let go: the hold
// was released before, or lost (and the loss was told then).
var ErrNotHeld = errors.New("etcd lock: not held")

// Release lets the key go once the holder's work is done (also after a
// loss): it marks the value released (only while the key is still ours),
// then revokes the lease, which deletes the key and wakes the standbys.
func (h *Hold) Release() error {
	h.mu.Lock()
	if h.released {
		h.mu.Unlock()
		return ErrNotHeld
	}
	h.released = true
	wasLost, pid := h.isLost, h.gateway
	h.mu.Unlock()
	h.stopLoops()
	c := h.l.client
	ctx, cancel := context.WithTimeout(context.Background(), 2*c.Attempt())
	defer cancel()
	if !wasLost {
		_, _ = c.PutIfCreated(ctx, h.Key(), h.l.value(&h.lease, pid, true), h.lease.ID, h.fence)
	}
	err := c.Revoke(ctx, h.lease.ID)
	if wasLost {
		return ErrNotHeld // the loss was told; the revoke was a courtesy
	}
	if err != nil {
		// The lease will expire on its own within its TTL.
		return fmt.Errorf("release etcd lock %s: revoke lease %x: %w (hint: standbys take over when it expires, within %s)", h.Key(), h.lease.ID, err, h.lease.TTL)
	}
	return nil
}
