package main

import "testing"

func TestSignalExit(t *testing.T) {
	for n, want := range map[int]int{2: 130, 9: 137, 15: 143} {
		if got := signalExit(n); got != want {
			t.Errorf("signalExit(%d) = %d, want %d", n, got, want)
		}
	}
	// The escalation's code is SIGKILL's on every OS, Windows included.
	if killedExit != 137 {
		t.Errorf("killedExit = %d, want 137", killedExit)
	}
}
