package etcdlock

import (
	"context"
	"fmt"
	"time"

	"gwlock/internal/etcd"
)

// Request is how long and how to wait for the key.
type Request struct {
	Timeout time.Duration // 0: try once
	// GiveUpOnHolder returns the BusyError as soon as a live holder is
	// seen, instead of waiting out Timeout.
	GiveUpOnHolder bool
	Observer       Observer
}

// Acquire takes the key as req says. A live holder when the time is up (or
// at once, with GiveUpOnHolder or Timeout 0) is a *BusyError; ctx ending is
// ErrCanceled; a cluster that did not answer before the timeout is an
// *UnreachableError.
func (l *Locker) Acquire(ctx context.Context, req Request) (*Hold, error) {
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := start.Add(req.Timeout)
	if l.client.HasUser() {
		if err := l.client.Authenticate(l.opCtx(ctx, deadline)); err != nil {
			if ctx.Err() != nil {
				return nil, ErrCanceled
			}
			return nil, &UnreachableError{err}
		}
	}
	a := &attempt{l: l, req: req, ctx: ctx, start: start, deadline: deadline}
	for {
		if r := a.round(); r.next == attemptFinished {
			return r.h, r.err
		}
	}
}

// attempt is one Acquire in progress: what it holds (the lease) and what
// it has seen of the current holder.
type attempt struct {
	l        *Locker
	req      Request
	ctx      context.Context
	start    time.Time
	deadline time.Time

	lease       Lease
	lastHolder  int64 // fence of the last holder reported
	holderValue *Holder
	holderLease int64 // the lease the last holder seen kept the key on
	// holderExpiry is the earliest the holder's lease can expire unless
	// renewed, as last read (zero: never read): a lease gone before it was
	// revoked, not left to expire.
	holderExpiry time.Time
	deletedAt    time.Time // when the watch saw the holder's DELETE
	sawHolder    bool
	deleted      *etcd.KV // the predecessor as the DELETE event showed it
	seenRev      int64    // the revision at which a holder was last seen
}

// attemptNext says where Acquire goes after one step.
type attemptNext int

const (
	attemptProceed  attemptNext = iota // this step is done: on to the next one in the round
	attemptAgain                       // the round is over: start a new one
	attemptFinished                    // Acquire answers h, err
)

// attemptStep is one step's outcome.
type attemptStep struct {
	next attemptNext
	h    *Hold
	err  error
}

var (
	stepProceed = attemptStep{next: attemptProceed}
	stepAgain   = attemptStep{next: attemptAgain}
)

func stepFinish(h *Hold, err error) attemptStep {
	return attemptStep{next: attemptFinished, h: h, err: err}
}

// giveUp revokes the contender lease and ends Acquire with err.
func (a *attempt) giveUp(err error) attemptStep {
	a.l.revoke(&a.lease)
	return stepFinish(nil, err)
}

// round is one try: a live lease, create-if-absent, then won, or the holder
// noted and either given up on or waited for.
func (a *attempt) round() attemptStep {
	if a.ctx.Err() != nil {
		return a.giveUp(ErrCanceled)
	}
	if s := a.ensureLease(); s.next != attemptProceed {
		return s
	}
	l := a.l
	won, holder, rev, err := l.client.CreateIfAbsent(l.opCtx(a.ctx, a.deadline), l.opts.Key, l.value(&a.lease, 0, false), a.lease.ID)
	if etcd.LeaseNotFound(err) {
		a.lease = Lease{} // revoked or expired under us (a paused host): grant a new one
	}
	if err != nil {
		return a.requestFailed(err)
	}
	// A retried txn whose first try won finds our own lease on the key.
	if !won && holder != nil && holder.Lease == a.lease.ID {
		won, rev = true, holder.CreateRevision
	}
	if won {
		return a.finishWon(rev)
	}
	if holder == nil {
		// A failed compare with no holder in the reply: not a shape etcd
		// sends, so pace the retry instead of spinning on it.
		sleepCtx(a.ctx, 100*time.Millisecond)
		return stepAgain
	}
	v := a.noteHolder(holder, rev)
	return a.giveUpOrWait(v)
}

// ensureLease grants a lease, or refreshes ours once a third of its life is gone.
func (a *attempt) ensureLease() attemptStep {
	if time.Since(a.lease.goodSend) <= a.lease.TTL/3 && a.lease.ID != 0 {
		return stepProceed
	}
	if err := a.l.refreshLease(a.l.opCtx(a.ctx, a.deadline), &a.lease); err != nil {
		return a.requestFailed(err)
	}
	return stepProceed
}

// requestFailed: canceled or past the deadline ends Acquire; otherwise pause
// and try again.
func (a *attempt) requestFailed(err error) attemptStep {
	if a.ctx.Err() != nil {
		return a.giveUp(ErrCanceled)
	}
	if time.Now().After(a.deadline) {
		return a.giveUp(&UnreachableError{err})
	}
	sleepCtx(a.ctx, 200*time.Millisecond)
	return stepAgain
}

// finishWon hands over the hold, with the predecessor's last words when the
// DELETE was not seen.
func (a *attempt) finishWon(rev int64) attemptStep {
	if a.sawHolder && a.deleted == nil {
		// The holder went between two watch streams: its last
		// words (released:true or not) are still in the history.
		a.deleted = a.l.predecessor(a.ctx, a.seenRev+1, rev)
	}
	if s := a.freshen(); s.next != attemptProceed {
		return s
	}
	return stepFinish(a.l.won(a, rev))
}

// freshen renews our lease before the key counts as won, when its last
// refresh is more than a keepalive period old (a slow round, an election):
// a hold that started on it could reach its stop deadline before its first
// keepalive is answered. A renewal that fails leaves the key unclaimed; the
// next round renews again and finds the key on our own lease, or, if the
// lease ended, the key gone.
func (a *attempt) freshen() attemptStep {
	if time.Since(a.lease.goodSend) <= a.lease.TTL/3 {
		return stepProceed
	}
	send := time.Now()
	r, err := a.l.client.KeepAlive(a.l.opCtx(a.ctx, a.deadline), a.lease.ID)
	switch {
	case err != nil:
		return a.requestFailed(err)
	case r.TTL <= 0:
		a.lease = Lease{} // expired: its key went with it
		return stepAgain
	}
	a.lease.goodSend, a.lease.TTL = send, time.Duration(r.TTL)*time.Second
	return stepProceed
}

// noteHolder records the holder seen at rev, and tells the observer when it
// is a new one.
func (a *attempt) noteHolder(kv *etcd.KV, rev int64) Holder {
	v := holderOf(kv)
	if kv.Lease != a.holderLease {
		a.holderExpiry = time.Time{}
	}
	a.sawHolder, a.holderValue, a.holderLease, a.seenRev, a.deleted = true, &v, kv.Lease, rev, nil
	if kv.CreateRevision != a.lastHolder {
		a.lastHolder = kv.CreateRevision
		if a.req.Observer != nil {
			a.req.Observer.Contention(v)
		}
	}
	return v
}

// giveUpOrWait: busy when the caller will not wait (or waited enough);
// otherwise watch for the holder's DELETE, then start a new round.
func (a *attempt) giveUpOrWait(v Holder) attemptStep {
	if a.req.GiveUpOnHolder || a.req.Timeout == 0 || time.Now().After(a.deadline) {
		return a.giveUp(&BusyError{Key: a.l.opts.Key, Holder: v, Waited: time.Since(a.start)})
	}
	a.readHolderLease()
	a.deleted = a.l.waitForDelete(a.ctx, &a.lease, a.seenRev+1, a.deadline)
	if a.deleted != nil {
		a.deletedAt = time.Now()
	}
	return stepAgain
}

// readHolderLease notes the earliest moment the holder's lease can expire
// if it is not renewed: the send time of a TimeToLive plus the whole
// seconds it reports (the server truncates). A failed read keeps the last
// one, which renewals can only have moved later.
func (a *attempt) readHolderLease() {
	if a.holderLease == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.l.client.Attempt())
	defer cancel()
	send := time.Now()
	if ttl, err := a.l.client.TimeToLive(ctx, a.holderLease); err == nil && ttl > 0 {
		a.holderExpiry = send.Add(time.Duration(ttl) * time.Second)
	}
}

// waitForDelete watches the key from rev until a DELETE, the deadline, or a
// lease refresh is due; it returns the deleted kv if it saw one.
func (l *Locker) waitForDelete(ctx context.Context, lease *Lease, rev int64, deadline time.Time) *etcd.KV {
	wait := lease.TTL / 3
	if l.opts.WatchLifetime > 0 && l.opts.WatchLifetime < wait {
		wait = l.opts.WatchLifetime
	}
	if until := time.Until(deadline); until < wait {
		wait = until
	}
	if wait <= 0 {
		return nil
	}
	// A watch stream lives at most one lease refresh period: a black-holed
	// stream never reports anything, so it must not be trusted for longer.
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var gone *etcd.KV
	err := l.client.Watch(wctx, l.opts.Key, rev, func(r etcd.WatchResp) bool {
		if r.Canceled || r.CompactRevision != 0 {
			return false // compacted: the range in the next txn is the truth
		}
		for _, ev := range r.Events {
			if ev.Type == "DELETE" {
				gone = &etcd.KV{}
				if ev.PrevKV != nil {
					gone = ev.PrevKV
				}
				return false
			}
		}
		return true
	})
	if err != nil && wctx.Err() == nil {
		sleepCtx(wctx, 200*time.Millisecond)
	}
	return gone
}

// predecessor reads the key's history from rev up to our own creation at
// fence and returns the kv its DELETE removed (nil if the history is gone or
// unreachable: the caller then assumes the worst and delays).
func (l *Locker) predecessor(ctx context.Context, rev, fence int64) *etcd.KV {
	hctx, cancel := context.WithTimeout(ctx, l.client.Attempt())
	defer cancel()
	var gone *etcd.KV
	_ = l.client.Watch(hctx, l.opts.Key, rev, func(r etcd.WatchResp) bool {
		if r.Canceled || r.CompactRevision != 0 {
			return false
		}
		for _, ev := range r.Events {
			if ev.Type == "DELETE" && ev.PrevKV != nil {
				gone = ev.PrevKV
			}
			if ev.KV.ModRevision >= fence {
				return false
			}
		}
		return true
	})
	return gone
}

// won starts the hold on the key created at fence, then waits the takeover
// delay if a predecessor vanished without releasing.
func (l *Locker) won(a *attempt, fence int64) (*Hold, error) {
	h := newHold(l, a.lease, fence, a.req.Observer)
	if a.req.Observer != nil {
		a.req.Observer.Acquired(h, time.Since(a.start))
	}
	h.start()
	if !a.sawHolder {
		return h, nil
	}
	prev := a.holderValue
	gone := vanished{lease: a.holderLease, expiry: a.holderExpiry, at: a.deletedAt}
	if a.deleted != nil && len(a.deleted.Value) > 0 {
		if v, err := ParseValue(a.deleted.Value); err == nil {
			prev = v
			if a.deleted.Lease != gone.lease {
				gone = vanished{lease: a.deleted.Lease}
			}
		}
	}
	if gone.at.IsZero() {
		gone.at = time.Now() // the DELETE went between two watch streams: no earlier than now
	}
	delay, why := l.takeover(a.ctx, prev, gone)
	if why != "" && a.req.Observer != nil {
		a.req.Observer.TakeoverDelay(delay, *prev, why)
	}
	if delay <= 0 {
		return h, nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return h, nil
	case <-a.ctx.Done():
		h.abandon()
		return nil, ErrCanceled
	case reason := <-h.lostCh:
		// Lost while waiting: nothing was started, so give up as a failure.
		h.abandon()
		return nil, fmt.Errorf("etcd lock %s lost during the takeover delay: %s", l.opts.Key, reason)
	}
}

// opCtx bounds one operation of the acquisition: the attempt bound, and the
// acquire deadline with room for one attempt.
func (l *Locker) opCtx(ctx context.Context, deadline time.Time) context.Context {
	end := time.Now().Add(2 * l.client.Attempt())
	if d := deadline.Add(l.client.Attempt()); d.After(end) {
		end = d
	}
	c, cancel := context.WithDeadline(ctx, end)
	go func() { <-c.Done(); cancel() }()
	return c
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
