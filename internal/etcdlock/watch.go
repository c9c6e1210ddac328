package etcdlock

import (
	"context"
	"errors"
	"time"

	"gwlock/internal/etcd"
)

// watchLoop watches our own key: a DELETE or another create_revision means
// someone else may hold it now. A broken stream is not a loss: reconnect
// (another endpoint) from the last revision seen.
func (h *Hold) watchLoop() {
	defer h.wg.Done()
	w := &holdWatch{h: h, rev: h.fence + 1}
	for !h.lostNow() && !h.isDone() {
		if w.once() == watchStop {
			return
		}
	}
}

// holdWatch is the hold's watch on its own key: rev is the next revision it
// has not seen.
type holdWatch struct {
	h   *Hold
	rev int64
}

// watchNext says whether watchLoop watches again.
type watchNext int

const (
	watchAgain watchNext = iota // the stream ended and the key is still ours: watch again from rev
	watchStop                   // the lock is lost or the hold is done
)

// streamEnd is how one watch stream ended.
type streamEnd struct {
	verdict   string // a lost reason: the key is someone else's now
	compacted bool   // the history from rev is gone
	err       error  // the stream broke
}

// once is one watch stream and what follows from how it ended.
func (w *holdWatch) once() watchNext {
	end := w.stream()
	if end.verdict != "" {
		if !w.h.isDone() {
			w.h.lose(end.verdict)
		}
		return watchStop
	}
	if end.compacted && w.judgeKeyNow() == watchStop {
		return watchStop
	}
	return w.pauseAfter(end.err)
}

// stream watches from rev for at most a TTL (or until the hold is done).
func (w *holdWatch) stream() streamEnd {
	ctx, cancel := context.WithTimeout(context.Background(), w.h.lease.TTL)
	go cancelOn(ctx, cancel, w.h.done)
	var end streamEnd
	end.err = w.h.l.client.Watch(ctx, w.h.Key(), w.rev, func(r etcd.WatchResp) bool {
		return w.judge(r, &end)
	})
	cancel()
	return end
}

// judge reads one watch reply: rev moves past what it shows; a DELETE or
// another create_revision, or a compacted history, ends the stream.
func (w *holdWatch) judge(r etcd.WatchResp, end *streamEnd) bool {
	if r.Canceled || r.CompactRevision != 0 {
		end.compacted = true
		return false
	}
	for _, ev := range r.Events {
		if ev.KV.ModRevision >= w.rev {
			w.rev = ev.KV.ModRevision + 1
		}
		if ev.Type == "DELETE" || ev.KV.CreateRevision != w.h.fence {
			end.verdict = LostKeyDeleted
			return false
		}
	}
	if r.Header.Revision >= w.rev && len(r.Events) == 0 && !r.Created {
		w.rev = r.Header.Revision + 1
	}
	return true
}

// judgeKeyNow: the history is gone, so the key as it is now decides; a
// failed read decides nothing and the watch goes on.
func (w *holdWatch) judgeKeyNow() watchNext {
	h := w.h
	h.mu.Lock()
	h.compactions++
	h.mu.Unlock()
	rctx, rcancel := h.reqCtx()
	kv, cur, err := h.l.client.Get(rctx, h.Key())
	rcancel()
	if err != nil {
		return watchAgain
	}
	if (kv == nil || kv.CreateRevision != h.fence) && !h.isDone() {
		h.lose(LostKeyDeleted)
		return watchStop
	}
	w.rev = cur + 1
	return watchAgain
}

// pauseAfter paces a stream that broke (not one that merely lived out its
// time) before the next one.
func (w *holdWatch) pauseAfter(err error) watchNext {
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return watchAgain
	}
	select {
	case <-w.h.done:
		return watchStop
	case <-time.After(200 * time.Millisecond):
		return watchAgain
	}
}
