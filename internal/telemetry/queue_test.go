package telemetry

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatedWriter blocks every Write until open is closed, like a pipe whose
// reader stalled; entered receives once per Write that started.
type gatedWriter struct {
	open    chan struct{}
	entered chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func newGatedWriter() *gatedWriter {
	return &gatedWriter{open: make(chan struct{}), entered: make(chan struct{}, 1024)}
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gatedWriter) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

// TestStderrQueueDrops: with the reader stalled, the queue takes
// queueLines lines, drops the rest without blocking, and the next line
// queued after the reader resumes carries the count, in both formats.
func TestStderrQueueDrops(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		gate := newGatedWriter()
		q := NewQueue(gate)
		log := New(q, format, false)
		log.Info("first")
		select {
		case <-gate.entered: // the drainer is now blocked in the first write
		case <-time.After(eventWait):
			t.Fatalf("%s: the first line never reached the writer", format)
		}
		const extra = 5
		start := time.Now()
		for i := 0; i < queueLines+extra; i++ {
			log.Info("queued", "i", i)
		}
		if took := time.Since(start); took > eventWait {
			t.Fatalf("%s: %d writes into a stalled stderr took %s", format, queueLines+extra, took)
		}
		close(gate.open)
		q.Flush() // the queue is full: "after" needs room
		log.Info("after")
		q.Flush()
		lines := strings.Split(strings.TrimSuffix(gate.String(), "\n"), "\n")
		if want := 1 + queueLines + 1; len(lines) != want {
			t.Fatalf("%s: %d lines written, want %d", format, len(lines), want)
		}
		for i, line := range lines[:len(lines)-1] {
			if strings.Contains(line, "dropped") {
				t.Errorf("%s: line %d says dropped: %s", format, i, line)
			}
		}
		last := lines[len(lines)-1]
		want := " dropped=5"
		if format == "json" {
			want = `,"dropped":5}`
		}
		if !strings.Contains(last, "after") || !strings.HasSuffix(last, want) {
			t.Errorf("%s: last line %q, want event after ending %q", format, last, want)
		}
	}
}

// TestStderrQueueFlushBounded: at exit, a writer blocked for good costs at
// most about writeStall, and a plain line gets dropped=N too.
func TestStderrQueueFlushBounded(t *testing.T) {
	gate := newGatedWriter()
	defer close(gate.open)
	q := NewQueue(gate)
	for i := 0; i < queueLines+2; i++ {
		_, _ = q.Write([]byte("gwlock: line\n"))
	}
	start := time.Now()
	q.Flush()
	if took := time.Since(start); took >= flushMax {
		t.Fatalf("flush with a stalled reader took %s, want about %s", took, writeStall)
	} else {
		t.Logf("flush with a stalled reader returned after %s (stall bound %s)", took, writeStall)
	}
	if got := string(withDropped([]byte("gwlock: run x: failed\n"), 3)); got != "gwlock: run x: failed dropped=3\n" {
		t.Errorf("withDropped(error line, 3) = %q", got)
	}
}

// eventWait bounds how long a test waits for a line: far above any healthy
// write, so only a queue that blocks fails it.
const eventWait = 10 * time.Second
