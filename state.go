package main

import "fmt"

// runState is where the supervisor stands in the gateway's lives. It is the
// one value that says what the loop is doing; the tree's shape (the main
// process's pid, when it left others behind) and the timers are data beside
// it, and a stop's cause says what follows the tree's end.
//
// A life's death signal (what the kernel sends the gateway if gwlock dies)
// is armed by the start that enters stateRunning and disarmed when the
// tree's end is seen, on the way out of whichever of the tree-alive states
// (treeAlive) the life was in; a start that fails arms nothing. No state is
// added for it: outside treeAlive no death signal is armed.
type runState int

const (
	// stateStarting: no gateway runs yet; the next one is being started
	// (its port checked off the loop, then forked).
	stateStarting runState = iota
	// stateRunning: the gateway's main process lives; no stop is asked.
	stateRunning
	// stateRemnants: the main process exited and other processes of its
	// tree live on (a daemon, workers); no stop is asked. Its life ends
	// when the last of them is gone.
	stateRemnants
	// stateStopping: the stop signal was sent to the tree; --stop-timeout runs.
	stateStopping
	// stateKilling: --stop-timeout passed; SIGKILL goes to whatever of the
	// tree remains, again every killRepeat, until none does.
	stateKilling
	// stateBackoff: the tree is gone and the policy restarts it after a delay.
	stateBackoff
	// stateExited: run is over; the loop has returned its code.
	stateExited
)

var stateNames = [...]string{"starting", "running", "remnants", "stopping", "killing", "backoff", "exited"}

func (s runState) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("runState(%d)", int(s))
}

// legalMoves is every transition the supervisor makes. A life goes
// starting, running, then either ends by itself (remnants first, if its main
// process leaves others behind) or is stopped (stopping, killing); its end
// leads to a start at once (SIGHUP), a backoff, or the exit. Any state but
// the last can exit: a lost lock or a failed start ends run wherever it is.
var legalMoves = map[runState][]runState{
	stateStarting: {stateRunning, stateExited},
	stateRunning:  {stateRemnants, stateStopping, stateBackoff, stateExited},
	stateRemnants: {stateStopping, stateBackoff, stateExited},
	stateStopping: {stateKilling, stateStarting, stateBackoff, stateExited},
	stateKilling:  {stateStarting, stateBackoff, stateExited},
	stateBackoff:  {stateStarting, stateExited},
	stateExited:   nil,
}

// legalMove reports whether the supervisor may go from one state to another.
func legalMove(from, to runState) bool {
	for _, next := range legalMoves[from] {
		if next == to {
			return true
		}
	}
	return false
}

// enter moves the supervisor to state to. An illegal move is a bug in the
// supervisor, not a condition to handle: it panics, naming both states.
func (s *supervisor) enter(to runState) {
	if !legalMove(s.state, to) {
		panic(fmt.Sprintf("supervisor: illegal move from %v to %v", s.state, to))
	}
	s.state = to
}

// treeAlive reports whether, in this state, some process of the gateway's
// tree lives.
func (s runState) treeAlive() bool {
	return s == stateRunning || s == stateRemnants || s == stateStopping || s == stateKilling
}

// stopping reports whether a stop of the tree is under way.
func (s runState) stopping() bool { return s == stateStopping || s == stateKilling }

// stopCause is why a stop was asked. A stop may be asked again for a
// stronger cause while it runs (SIGTERM during a restart, a lost lock
// during anything): the strongest decides what follows the tree's end, the
// first names the stop in telemetry.
type stopCause int

const (
	causeNone stopCause = iota
	// causeReadyTimeout: --ready-timeout passed. The life ends with
	// exitReadyTimeout and the restart policy applies. Only ever a first
	// cause: a stop under way already decides the life's end.
	causeReadyTimeout
	// causeRestart: SIGHUP. Start again as soon as the tree is gone.
	causeRestart
	// causeSignal: a stop signal. Exit with the gateway's code.
	causeSignal
	// causeLockLost: the lock is gone. Exit 1, whatever the gateway did.
	causeLockLost
)

// String is the stop's reason as telemetry writes it.
func (c stopCause) String() string {
	switch c {
	case causeReadyTimeout:
		return "ready-timeout"
	case causeRestart:
		return "restart"
	case causeSignal:
		return "signal"
	case causeLockLost:
		return "lock-lost"
	}
	return "none"
}
