package main

import (
	"io"
	"net"
	"strconv"
	"time"
)

// probeTimeout bounds one connect attempt used to judge an owner: an
// unreachable host must not stall an acquisition.
const probeTimeout = 250 * time.Millisecond

// portListening reports whether a TCP connect to host:port succeeds within timeout.
func portListening(host string, port int, timeout time.Duration) bool {
	if port <= 0 || port > 65535 {
		return false
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), timeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitForPort probes until host:port accepts or wait passes, backing off from
// 1 ms up to maxPause so a fast gateway is seen fast without a busy loop.
// stop, when closed, abandons the wait (the gateway exited).
func waitForPort(host string, port int, wait, maxPause time.Duration, stop <-chan struct{}) (time.Duration, bool) {
	return pollUntil(func(bound time.Duration) bool { return portListening(host, port, bound) }, wait, maxPause, stop)
}

// pollUntil calls ready, each try bounded by at most probeTimeout, until it
// says yes or wait passes, backing off from 1 ms up to maxPause; stop, when
// closed, abandons it.
func pollUntil(ready func(bound time.Duration) bool, wait, maxPause time.Duration, stop <-chan struct{}) (time.Duration, bool) {
	start := time.Now()
	deadline := start.Add(wait)
	pause := time.Millisecond
	for {
		attempt := probeTimeout
		if left := time.Until(deadline); left < attempt {
			attempt = left
		}
		if attempt > 0 && ready(attempt) {
			return time.Since(start), true
		}
		if !time.Now().Before(deadline) {
			return time.Since(start), false
		}
		t := time.NewTimer(min(pause, time.Until(deadline)))
		select {
		case <-stop:
			t.Stop()
			return time.Since(start), false
		case <-t.C:
		}
		if pause *= 2; pause > maxPause {
			pause = maxPause
		}
	}
}

// cmdProbe is `gwlock probe`: 0 when host:port accepts, 1 when not.
func cmdProbe(c *config, stderr io.Writer) int {
	addr := c.host + ":" + strconv.Itoa(c.port)
	if c.wait > 0 {
		if _, ok := waitForPort(c.host, c.port, c.wait, 100*time.Millisecond, nil); ok {
			return exitOK
		}
		printLine(stderr, "gwlock: probe %s: not listening after %s", addr, c.wait)
		return exitFailure
	}
	if portListening(c.host, c.port, time.Second) {
		return exitOK
	}
	printLine(stderr, "gwlock: probe %s: not listening", addr)
	return exitFailure
}
