package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestLegalMoves spells out, for every pair of states, whether the
// supervisor may move between them; a move added to or dropped from
// legalMoves without this table changing fails here.
func TestLegalMoves(t *testing.T) {
	want := map[string]bool{
		"starting>running": true, "starting>exited": true,
		"running>remnants": true, "running>stopping": true, "running>backoff": true, "running>exited": true,
		"remnants>stopping": true, "remnants>backoff": true, "remnants>exited": true,
		"stopping>killing": true, "stopping>starting": true, "stopping>backoff": true, "stopping>exited": true,
		"killing>starting": true, "killing>backoff": true, "killing>exited": true,
		"backoff>starting": true, "backoff>exited": true,
	}
	for from := stateStarting; from <= stateExited; from++ {
		for to := stateStarting; to <= stateExited; to++ {
			key := from.String() + ">" + to.String()
			if got := legalMove(from, to); got != want[key] {
				t.Errorf("legalMove(%v, %v) = %v, want %v", from, to, got, want[key])
			}
		}
	}
}

// mustPanic runs f and returns what it panicked with, failing if it did not.
func mustPanic(t *testing.T, f func()) (v any) {
	t.Helper()
	defer func() { v = recover() }()
	f()
	t.Fatal("no panic")
	return nil
}

func TestEnterRefusesIllegalMove(t *testing.T) {
	s := &supervisor{state: stateBackoff}
	msg := fmt.Sprint(mustPanic(t, func() { s.enter(stateKilling) }))
	if !strings.Contains(msg, "backoff") || !strings.Contains(msg, "killing") {
		t.Fatalf("panic = %q, want both states named", msg)
	}
	if s.state != stateBackoff {
		t.Fatalf("state after a refused move = %v, want backoff", s.state)
	}
	s.state = stateExited
	mustPanic(t, func() { s.enter(stateStarting) })
}

// TestLives walks the lives the supervisor lives, each move checked by enter.
func TestLives(t *testing.T) {
	lives := [][]runState{
		{stateRunning, stateExited}, // runs, exits, no restart
		{stateRunning, stateBackoff, stateStarting, stateRunning, stateExited},  // crash, restart
		{stateRunning, stateRemnants, stateBackoff, stateStarting, stateExited}, // daemon, then a stop during the start
		{stateRunning, stateStopping, stateStarting, stateRunning},              // SIGHUP
		{stateRunning, stateStopping, stateKilling, stateExited},                // stop past its timeout
		{stateRunning, stateRemnants, stateStopping, stateKilling, stateBackoff, stateExited},
	}
	for _, life := range lives {
		s := &supervisor{}
		for _, to := range life {
			s.enter(to)
		}
	}
}

// TestTreeAliveAndStopping: which states have a live tree and a stop under way.
func TestTreeAliveAndStopping(t *testing.T) {
	for st, want := range map[runState][2]bool{
		stateStarting: {false, false}, stateRunning: {true, false}, stateRemnants: {true, false},
		stateStopping: {true, true}, stateKilling: {true, true}, stateBackoff: {false, false}, stateExited: {false, false},
	} {
		if got := [2]bool{st.treeAlive(), st.stopping()}; got != want {
			t.Errorf("%v: treeAlive, stopping = %v, want %v", st, got, want)
		}
	}
}

// A later, stronger cause decides what follows a stop; the order is the
// contract treeGone relies on.
func TestStopCauseOrder(t *testing.T) {
	order := []stopCause{causeNone, causeReadyTimeout, causeRestart, causeSignal, causeLockLost}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Fatalf("%v >= %v: a lost lock must outrank a stop signal, a stop signal a restart, a restart a readiness timeout", order[i-1], order[i])
		}
	}
}
