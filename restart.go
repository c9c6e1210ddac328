package main

import (
	"strconv"
	"time"
)

// The restart policy, in systemd's terms: --restart no, on-failure or
// always, with exit codes that force or prevent a restart whatever it says,
// and a backoff between attempts.

// Restart backoff: 1 s doubling to 30 s, reset after 60 s up, so a gateway
// that crashes at once does not spin and one that ran well restarts fast.
const (
	backoffFirst   = time.Second
	backoffMax     = 30 * time.Second
	backoffResetUp = 60 * time.Second
)

// restartDelay is the pause before restart number n (0-based) of a gateway
// whose last run lasted uptime; a long healthy run resets the count.
func restartDelay(n int, uptime time.Duration) (time.Duration, int) {
	if uptime >= backoffResetUp {
		n = 0
	}
	d := backoffFirst
	for i := 0; i < n && d < backoffMax; i++ {
		d *= 2
	}
	if d > backoffMax {
		d = backoffMax
	}
	return d, n + 1
}

// restartFor applies the restart policy to an exit code, in systemd's
// terms: a code in force is restarted and one in prevent is not, whatever
// --restart says (RestartForceExitStatus=, RestartPreventExitStatus=).
// byCode says that a list, not the policy, decided.
func restartFor(policy string, code int, prevent, force exitCodes) (restart, byCode bool) {
	switch {
	case force.has(code):
		return true, true
	case prevent.has(code):
		return false, true
	}
	return shouldRestartPolicy(policy, code), false
}

// shouldRestartPolicy applies --restart alone to an exit code.
func shouldRestartPolicy(policy string, code int) bool {
	switch policy {
	case "always":
		return true
	case "on-failure":
		return code != 0
	}
	return false
}

// shouldRestart applies the restart policy to a life that ended with code,
// and says so when an exit code overrides --restart.
func (s *supervisor) shouldRestart(code int) bool {
	restart, byCode := restartFor(s.c.restart, code, s.c.preventExit, s.c.forceExit)
	if byCode && !restart && shouldRestartPolicy(s.c.restart, code) {
		s.log.Warn("restart-prevented", "code", code, "policy", s.c.restart,
			"reason", "exit code in --restart-prevent-exit-status")
	}
	return restart
}

// backOff waits out the restart delay after a life that ended with code,
// and tells the lock's holder when the next start comes.
func (s *supervisor) backOff(code int, uptime time.Duration, unready bool) (bool, int, error) {
	delay, next := restartDelay(s.restarts, uptime)
	s.restarts, s.lastCode = next, code
	reason := "exit code " + strconv.Itoa(code)
	if unready {
		reason = causeReadyTimeout.String()
	}
	s.log.Warn("restart", "attempt", s.restarts, "backoff_ms", ms(delay), "reason", reason, "last_exit", code)
	if s.hold != nil {
		s.hold.setRestarting(time.Now().Add(delay), code)
	}
	s.backoff = time.After(delay)
	s.enter(stateBackoff)
	return false, 0, nil
}

// restartNow starts the next life at once, as SIGHUP asks.
func (s *supervisor) restartNow(attempt int, reason string) (bool, int, error) {
	s.log.Info("restart", "attempt", attempt, "backoff_ms", 0, "reason", reason)
	return s.begin()
}
