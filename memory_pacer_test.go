package main

import (
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

var pacerSink []byte

func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestHeapPacerCollects: the supervisor's periodic tick collects once
// collectEvery bytes were allocated since the last collection, so a
// launcher's heap never holds more garbage than that however long it runs.
// Fails if tick leaves the collection to the runtime, whose floor is 4 MiB
// (1 MiB past the last collection at any GOGC).
func TestHeapPacerCollects(t *testing.T) {
	// The runtime's own collections are off, so that every one counted is
	// the pacer's.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	p := newHeapPacer()
	p.tick()
	for round := 0; round < 3; round++ {
		before := gcCycles()
		pacerSink = make([]byte, collectEvery)
		p.tick()
		if got := gcCycles(); got == before {
			t.Fatalf("round %d: %d bytes allocated, then a tick: %d collections, want more than %d", round, collectEvery, got, before)
		}
	}
	pacerSink = nil
}
