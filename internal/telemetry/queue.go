package telemetry

import (
	"bytes"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Queue is a command's stderr that never blocks the command
// (telemetry is best effort): a stalled log reader fills a pipe, and a write(2) to a full
// pipe blocks until it reads. Lines go into a bounded queue drained by one
// goroutine, the only one that ever blocks in write(2). O_NONBLOCK on fd 2
// would do it with no goroutine, but the flag belongs to the open file
// description, which the gateway and the shell that started us share: it
// would turn their writes into EAGAIN errors. A line that finds the queue
// full is dropped and counted; the next line queued says dropped=N.
type Queue struct {
	dst      io.Writer
	lines    chan []byte
	progress chan struct{} // a line was written
	born     time.Time

	mu      sync.Mutex
	dropped int  // lines dropped since the last one queued
	started bool // the writer goroutine runs

	pending atomic.Int64 // queued or being written
	writing atomic.Int64 // 1 + nanoseconds since born when the current write began; 0 when idle
}

const (
	// queueLines holds a burst far larger than any run emits between
	// two reads of a live log reader (a handful of lines per event).
	queueLines = 128
	// writeStall is how long flush lets a single write(2) stay blocked
	// before it calls the reader stalled and gives up what is still queued.
	// It only ever delays the exit, after the lock is released; 20 ms lost
	// the last lines of healthy runs on a loaded machine, where a thread in
	// write(2) can wait that long for a CPU.
	writeStall = 250 * time.Millisecond
	// flushMax bounds flush against a reader that takes every line,
	// slowly: progress never stalls, but exit must still come.
	flushMax = time.Second
)

// NewQueue makes a queue of lines for dst. Its writer goroutine starts with
// the first line: a quiet command (run -q whose gateway exits 0) says
// nothing and starts nothing.
func NewQueue(dst io.Writer) *Queue {
	return &Queue{dst: dst, lines: make(chan []byte, queueLines), progress: make(chan struct{}, 1), born: time.Now()}
}

// Write queues one line, or drops it if the queue is full. It never blocks
// and never fails: telemetry is best effort.
func (q *Queue) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.started {
		q.started = true
		go q.drain()
	}
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

func (q *Queue) drain() {
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

// Flush waits, before exit, for the queued lines to be written, but only
// while the reader keeps up: once one write has been blocked for
// writeStall, the rest is given up. The bound is on the reader, not on
// the scheduler, so a loaded machine delays the last lines but loses none.
func (q *Queue) Flush() {
	deadline := time.Now().Add(flushMax)
	for q.pending.Load() > 0 && time.Now().Before(deadline) {
		if began := q.writing.Load(); began != 0 && time.Since(q.born)-time.Duration(began-1) >= writeStall {
			return
		}
		select {
		case <-q.progress:
		case <-time.After(writeStall / 4):
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
