package main

import (
	"log/slog"
	"os"
	"syscall"
	"time"
)

// Stopping the gateway: what each signal asks, the stop signal to the whole
// tree, SIGKILL at --stop-timeout and again until the tree is gone.
//
// SIGTERM to `gwlock run`, step by step. While the lock is awaited,
// watchStopSignals (run.go) cancels the acquisition: run exits 128+15,
// having started nothing. Once supervising, onSignal reads it as roleStop:
// in starting or backoff no tree lives, so run exits 128+15 at once; else
// stop tells systemd STOPPING=1, mutes the death pipe when the stop signal
// is the death signal (one stop signal per life), logs stop, sends
// --stop-signal to the gateway's process group and any recorded process
// that left it, and arms --stop-timeout. When that passes, escalate logs
// stop-escalated and sends SIGKILL to whatever is left, again every
// killRepeat. When the last process of the tree is reaped (tree.go),
// treeGone ends the life with the gateway's code (128+N if a signal ended
// it); supervise returns it, cmdRun releases the lock (unlink, then
// unlock), and cli flushes stderr before the process exits with that code.

// sigRole is what a caught signal asks of the supervisor.
type sigRole int

const (
	roleForward sigRole = iota // pass it to the gateway
	roleStop                   // stop the gateway and exit
	roleRestart                // stop the gateway and start it again (SIGHUP)
)

// ending is a stop of one life, from its first signal to the tree's end.
type ending struct {
	first stopCause        // what asked the stop first: its telemetry reason
	cause stopCause        // the strongest cause asked: what follows the end
	sig   os.Signal        // the signal the stop began with
	at    time.Time        // when it began
	timer <-chan time.Time // --stop-timeout, then each killRepeat
}

// gatewayStopSignal is what the gateway gets when sig asks gwlock to stop.
// SIGINT (Ctrl-C) passes as it is where signals exist, so an interactive
// gateway behaves as in a terminal. SIGTERM and SIGQUIT become
// --stop-signal: they are a service manager's or an operator's request to
// stop, and the gateway's graceful stop is the one it names; SIGQUIT passed
// on kills a Node gateway at once (exit 131) in the middle of its drain.
// SIGQUIT the gateway's pid itself for a core dump.
func (s *supervisor) gatewayStopSignal(sig os.Signal) os.Signal {
	if sig == os.Interrupt && interruptPassesThrough {
		return sig
	}
	return s.c.stopSignal
}

// onSignal handles one signal caught by run.
func (s *supervisor) onSignal(sig os.Signal) (bool, int, error) {
	switch signalRole(sig) {
	case roleRestart:
		return s.onRestartSignal(sig)
	case roleStop:
		sdNotify("STOPPING=1")
		if !s.running() {
			// Stopped while no gateway runs (a backoff, a start under way):
			// the exit says what stopped gwlock, not how the gateway before
			// the backoff ended.
			s.log.Info("stop", "pid", 0, "signal", "none", "reason", causeSignal.String(), "by", signalName(sig), "timeout_ms", 0)
			return s.finish(signalExit(int(sig.(syscall.Signal))), nil)
		}
		s.stop(s.gatewayStopSignal(sig), causeSignal, signalName(sig))
	default:
		if s.child != 0 {
			s.procs.forward(s.child, sig)
		}
	}
	return false, 0, nil
}

// onRestartSignal: SIGHUP stops the gateway and starts it again at once, or
// cuts a backoff short.
func (s *supervisor) onRestartSignal(sig os.Signal) (bool, int, error) {
	switch {
	case s.state.stopping():
		// An operator's stop or a lost lock wins over a restart, and a
		// restart is already one. A second stop signal would only cut the
		// gateway's drain short.
	case s.running():
		s.stop(s.c.stopSignal, causeRestart, signalName(sig))
	case s.state == stateBackoff:
		// The attempt the backoff was waiting for starts now.
		s.backoff = nil
		return s.restartNow(s.restarts, signalName(sig))
	}
	return false, 0, nil
}

// lockLost: the holder said the lock is gone. Stop the gateway; exit 1.
func (s *supervisor) lockLost(reason string) (bool, int, error) {
	s.lost = &lockLostError{where: s.where(), reason: reason}
	if !s.running() {
		return s.finish(exitFailure, s.lost)
	}
	s.stop(s.c.stopSignal, causeLockLost, "")
	return false, 0, nil
}

// stop signals the gateway's tree for cause and arms the SIGKILL timer. The
// first call of a stop says so in one line; later ones (a stronger cause,
// descendants left behind) pass the same stop on.
func (s *supervisor) stop(sig os.Signal, cause stopCause, by string) {
	if !s.running() {
		return
	}
	s.ending.cause = max(s.ending.cause, cause)
	if s.state == stateKilling {
		s.procs.kill(s.others())
		return
	}
	if s.state != stateStopping {
		s.ending.first, s.ending.sig, s.ending.at = cause, sig, time.Now()
		byKey := slog.Attr{} // skipped by the handler: no signal asked
		if by != "" {
			byKey = slog.String("by", by)
		}
		s.log.Info("stop", "pid", s.child, "signal", signalName(sig), "reason", cause.String(), byKey,
			"timeout_ms", ms(s.c.stopTimeout))
		s.ending.timer = time.After(s.c.stopTimeout)
		s.enter(stateStopping)
	}
	if sig == s.deathSignal() {
		// One stop signal per life: a launcher that dies during this drain
		// is not to cut it short with the same signal again. Muted before
		// the send, so no death after the gateway saw it can signal twice.
		s.procs.muteDeathSignal()
	}
	s.procs.signal(sig, s.others())
}

// escalate is the end of --stop-timeout: SIGKILL to the whole tree. Processes
// that join the tree afterwards (a daemon adopted once its parent was
// killed) get SIGKILL too: the timer comes back until the tree is gone.
func (s *supervisor) escalate() {
	s.ending.timer = nil
	if !s.running() {
		return
	}
	if s.state != stateKilling {
		s.log.Warn("stop-escalated", "pid", s.child, "signal", "SIGKILL", "reason", s.ending.first.String(),
			"after_ms", ms(time.Since(s.ending.at)))
		s.enter(stateKilling)
	}
	s.procs.kill(s.others())
	s.ending.timer = time.After(killRepeat)
}

// passStopOn sends a stop under way to the processes the main process left
// behind, which the signal to its process group may have missed.
func (s *supervisor) passStopOn() {
	if s.state.stopping() {
		s.stop(s.ending.sig, s.ending.first, "")
	}
}
