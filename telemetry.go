package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// telemetry writes one line per event to stderr: logfmt by default, JSON with
// --log-format json. A nil *telemetry discards everything (benchmarks, library use).
type telemetry struct {
	logger *slog.Logger
	min    slog.Level // events below it are not written (warnOnly)
}

func newTelemetry(w io.Writer, format string, quiet bool) *telemetry {
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: renameAttrs}
	out := bestEffort{w}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(out, opts)
	} else {
		h = slog.NewTextHandler(out, opts)
	}
	return &telemetry{logger: slog.New(h), min: slog.LevelDebug}
}

// warnOnly is the same telemetry with its info events left out: a lock that
// guards another (etcd's local file lock) says only what went wrong.
func (t *telemetry) warnOnly() *telemetry {
	if t == nil {
		return nil
	}
	return &telemetry{logger: t.logger, min: slog.LevelWarn}
}

// renameAttrs makes every line carry event=<name> and a UTC millisecond time.
func renameAttrs(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.MessageKey:
		a.Key = "event"
	case slog.TimeKey:
		a.Value = slog.StringValue(a.Value.Time().UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	return a
}

func (t *telemetry) emit(level slog.Level, event string, kv []any) {
	if t == nil || level < t.min || !t.logger.Enabled(context.Background(), level) {
		return
	}
	t.logger.Log(context.Background(), level, event, kv...)
}

func (t *telemetry) info(event string, kv ...any)  { t.emit(slog.LevelInfo, event, kv) }
func (t *telemetry) warn(event string, kv ...any)  { t.emit(slog.LevelWarn, event, kv) }
func (t *telemetry) error(event string, kv ...any) { t.emit(slog.LevelError, event, kv) }

// bestEffort swallows write errors: a closed or broken stderr must never change
// a lock decision (Invariant 6). SIGPIPE is caught in main for the same reason.
type bestEffort struct{ w io.Writer }

func (b bestEffort) Write(p []byte) (int, error) {
	_, _ = b.w.Write(p)
	return len(p), nil
}

// stderrQueue is a command's stderr that never blocks the command
// (Invariant 6): a stalled log reader fills a pipe, and a write(2) to a full
// pipe blocks until it reads. Lines go into a bounded queue drained by one
// goroutine, the only one that ever blocks in write(2). O_NONBLOCK on fd 2
// would do it with no goroutine, but the flag belongs to the open file
// description, which the gateway and the shell that started us share: it
// would turn their writes into EAGAIN errors. A line that finds the queue
// full is dropped and counted; the next line queued says dropped=N.
type stderrQueue struct {
	dst      io.Writer
	lines    chan []byte
	progress chan struct{} // a line was written
	born     time.Time

	mu      sync.Mutex
	dropped int // lines dropped since the last one queued

	pending atomic.Int64 // queued or being written
	writing atomic.Int64 // 1 + nanoseconds since born when the current write began; 0 when idle
}

const (
	// stderrQueueLines holds a burst far larger than any run emits between
	// two reads of a live log reader (a handful of lines per event).
	stderrQueueLines = 128
	// stderrStall is how long flush lets a single write(2) stay blocked
	// before it calls the reader stalled and gives up what is still queued.
	// It only ever delays the exit, after the lock is released; 20 ms lost
	// the last lines of healthy runs on a loaded machine, where a thread in
	// write(2) can wait that long for a CPU.
	stderrStall = 250 * time.Millisecond
	// stderrFlushMax bounds flush against a reader that takes every line,
	// slowly: progress never stalls, but exit must still come.
	stderrFlushMax = time.Second
)

func newStderrQueue(dst io.Writer) *stderrQueue {
	q := &stderrQueue{dst: dst, lines: make(chan []byte, stderrQueueLines), progress: make(chan struct{}, 1), born: time.Now()}
	go q.drain()
	return q
}

// Write queues one line, or drops it if the queue is full. It never blocks
// and never fails: telemetry is best effort.
func (q *stderrQueue) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	line := withDropped(p, q.dropped)
	q.pending.Add(1)
	select {
	case q.lines <- line:
		q.dropped = 0
	default:
		q.pending.Add(-1)
		q.dropped++
	}
	return len(p), nil
}

func (q *stderrQueue) drain() {
	for line := range q.lines {
		q.writing.Store(1 + int64(time.Since(q.born)))
		_, _ = q.dst.Write(line)
		q.writing.Store(0)
		q.pending.Add(-1)
		select {
		case q.progress <- struct{}{}:
		default:
		}
	}
}

// flush waits, before exit, for the queued lines to be written, but only
// while the reader keeps up: once one write has been blocked for
// stderrStall, the rest is given up. The bound is on the reader, not on
// the scheduler, so a loaded machine delays the last lines but loses none.
func (q *stderrQueue) flush() {
	deadline := time.Now().Add(stderrFlushMax)
	for q.pending.Load() > 0 && time.Now().Before(deadline) {
		if began := q.writing.Load(); began != 0 && time.Since(q.born)-time.Duration(began-1) >= stderrStall {
			return
		}
		select {
		case <-q.progress:
		case <-time.After(stderrStall / 4):
		}
	}
}

// withDropped returns a copy of line (the caller reuses its buffer) that
// reports n lines dropped before it: a dropped key in a logfmt or JSON line,
// dropped=N at the end of any other line (the one-line errors).
func withDropped(line []byte, n int) []byte {
	if n == 0 {
		return bytes.Clone(line)
	}
	body := bytes.TrimSuffix(line, []byte("\n"))
	out := make([]byte, 0, len(line)+24)
	if bytes.HasPrefix(body, []byte("{")) && bytes.HasSuffix(body, []byte("}")) {
		out = append(out, body[:len(body)-1]...)
		out = append(out, `,"dropped":`...)
		out = strconv.AppendInt(out, int64(n), 10)
		out = append(out, '}')
	} else {
		out = append(out, body...)
		out = append(out, " dropped="...)
		out = strconv.AppendInt(out, int64(n), 10)
	}
	return append(out, '\n')
}
