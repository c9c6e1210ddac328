package main

import (
	"bufio"
	"errors"
	"fmt"
	"gwlock/internal/notify"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Readiness. A TCP accept says only that a socket listens: a
// gateway such as openclaw accepts connections seconds before it serves, and
// says when it does on an HTTP endpoint (/startupz) or, for a gateway written
// for systemd, with READY=1 on $NOTIFY_SOCKET. gateway-ready (and systemd's
// READY=1) fire once every check configured for the gateway has passed.
//
// To add a check: a new kind of probe (one of TCP, HTTP, ...) is a case in
// newReadiness and in probeReady, which runs off the supervisor's loop and
// answers on its ready channel; a check that must pass as well (like
// --ready-notify) is a field of readiness, counted in complete and by, fed
// by an event of supervisor.next. Its flag goes in config.flags and
// validateRun, its text in manual.go (then make man).

// readyTry bounds one HTTP readiness try, connect to status line, as a
// Kubernetes httpGet probe's timeoutSeconds (1 s by default) does.
const readyTry = time.Second

// checkReadyURL accepts what the probe can ask: plain http with a host and
// an explicit or default port. (The probe speaks HTTP/1.1 itself: net/http
// would add about 2 MiB to a binary whose budget is 3.)
func checkReadyURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "http":
		return errors.New("want http://HOST:PORT/PATH (https is not supported)")
	case u.Hostname() == "":
		return errors.New("no host")
	case u.User != nil:
		return errors.New("credentials in the URL are not supported")
	}
	return nil
}

// httpReady reports whether a GET of rawURL answers 2xx within timeout.
func httpReady(rawURL string, timeout time.Duration) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	deadline := time.Now().Add(timeout)
	c, err := net.DialTimeout("tcp", net.JoinHostPort(u.Hostname(), port), timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gwlock/%s\r\nAccept: */*\r\nConnection: close\r\n\r\n",
		u.RequestURI(), u.Host, version); err != nil {
		return false
	}
	// The status line, at most 4 KiB of it: whoever answers on the port
	// (the gateway, a squatter) must not make gwlock buffer without end.
	raw, err := bufio.NewReaderSize(c, 4096).ReadSlice('\n')
	if err != nil {
		return false
	}
	line := string(raw)
	// "HTTP/1.1 200 OK"
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
		return false
	}
	code, err := strconv.Atoi(f[1])
	return err == nil && code >= 200 && code < 300
}

// waitForHTTP tries rawURL until it answers 2xx, backing off from 1 ms to
// maxPause like waitForPort; stop, when closed, abandons the wait.
func waitForHTTP(rawURL string, maxPause time.Duration, stop <-chan struct{}) (time.Duration, bool) {
	// Each try has readyTry of its own; the wait ends with the gateway (stop).
	return pollUntil(func(time.Duration) bool { return httpReady(rawURL, readyTry) }, 100*365*24*time.Hour, maxPause, stop)
}

// readiness is what one life of the gateway still owes before it is ready.
type readiness struct {
	probe  string // "tcp", "http" or "" when none is configured
	notify bool   // --ready-notify: the gateway's own READY=1 is awaited
	probed bool
	told   bool // the gateway sent READY=1
	done   bool
}

func newReadiness(c *config) readiness {
	r := readiness{notify: c.readyNotify}
	switch {
	case c.readyURL != "":
		r.probe = "http"
	case c.port != 0:
		r.probe = "tcp"
	}
	return r
}

// complete reports whether every configured check has passed.
func (r *readiness) complete() bool {
	return (r.probe == "" || r.probed) && (!r.notify || r.told)
}

// by names what made the gateway ready, for telemetry.
func (r *readiness) by() string {
	var parts []string
	if r.probe != "" {
		parts = append(parts, r.probe)
	}
	if r.notify {
		parts = append(parts, "notify")
	}
	if len(parts) == 0 {
		return "start"
	}
	return strings.Join(parts, "+")
}

// probeReady runs the configured probe for one life of the gateway and
// delivers how long it took on ready; gone abandons it.
func probeReady(c *config, probe string, gone <-chan struct{}, ready chan<- time.Duration) {
	var waited time.Duration
	var ok bool
	switch probe {
	case "http":
		waited, ok = waitForHTTP(c.readyURL, c.poll, gone)
	case "tcp":
		waited, ok = waitForPort(c.host, c.port, maxDuration, c.poll, gone)
	}
	if ok {
		ready <- waited
	}
}

// awaitReady arms this life's readiness checks: the probe, the deadline, or
// nothing to wait for at all.
func (s *supervisor) awaitReady() {
	s.childGone, s.ready = make(chan struct{}), make(chan time.Duration, 1)
	s.rd = newReadiness(s.c)
	if s.rd.probe != "" {
		go probeReady(s.c, s.rd.probe, s.childGone, s.ready)
	}
	if s.c.readyTimeout > 0 && !s.rd.complete() {
		s.readyTimer = time.After(s.c.readyTimeout)
	}
	if s.rd.probe == "" && !s.rd.notify {
		// Nothing to wait for: started is ready, as systemd's Type=simple.
		s.rd.done = true
		s.notifyReady()
	}
}

// notReadyNow: a gateway being stopped (a stop signal, a restart, a lost
// lock, its readiness deadline) or already gone is not ready, whatever it
// says on the way out.
func (s *supervisor) notReadyNow() bool {
	return s.state != stateRunning && s.state != stateRemnants
}

// checkReady fires gateway-ready, once per life, when every configured
// check has passed.
func (s *supervisor) checkReady() {
	if s.rd.done || !s.rd.complete() || s.notReadyNow() {
		return
	}
	s.rd.done, s.readyTimer = true, nil
	s.log.Info("gateway-ready", "port", s.c.port, "by", s.rd.by(), "waited_ms", ms(time.Since(s.started)))
	s.notifyReady()
}

// notifyReady tells systemd the unit is up, and with a backend that has
// more to say (etcd: active, with its fence) its status line.
func (s *supervisor) notifyReady() {
	state := "READY=1\nMAINPID=" + strconv.Itoa(os.Getpid())
	if a, ok := s.hold.(interface{ activeStatus() string }); ok && a.activeStatus() != "" {
		state += "\n" + a.activeStatus()
	}
	sdNotify(state)
}

// onNote handles one line the gateway sent to its NOTIFY_SOCKET.
func (s *supervisor) onNote(note string) {
	switch notify.Classify(note) {
	case notify.Ready:
		if s.rd.notify {
			s.rd.told = true
			s.checkReady()
		}
	case notify.Pass:
		sdNotify(note)
		if status, ok := strings.CutPrefix(note, "STATUS="); ok && status != s.status {
			s.status = status
			s.log.Info("gateway-status", "status", status)
		}
	}
}

// readyExpired is the end of --ready-timeout: the gateway is stopped and its
// life ends with exitReadyTimeout, to which the restart policy applies.
func (s *supervisor) readyExpired() {
	s.readyTimer = nil
	if s.rd.done || s.notReadyNow() {
		// A stop under way (an operator's, a restart, a lost lock) decides
		// this life's end: a second stop signal would cut its drain short.
		return
	}
	s.log.Warn("ready-timeout", "pid", s.child, "timeout_ms", ms(s.c.readyTimeout), "by", s.rd.by())
	s.stop(s.c.stopSignal, causeReadyTimeout, "")
}
