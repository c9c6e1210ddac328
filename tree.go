package main

import (
	"gwlock/internal/proc"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The gateway's tree: its main process and everything it started. A life
// of the gateway ends when the whole tree is gone, not when its main process
// exits, and the tree's live processes are recorded in the lock so a judge
// still sees the gateway alive after a daemon closed its lock descriptor.

// treeRecordAt is when, after each start, the gateway's tree is recorded in
// the lock, besides every --stale/3: workers and daemons are mostly started
// in a gateway's first seconds, and a process of the tree that closed its
// lock descriptor is protected from a launcher's SIGKILL only once recorded.
var treeRecordAt = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, time.Second, 3 * time.Second}

// scheduleTreeRecord arms the next recording of treeRecordAt.
func (s *supervisor) scheduleTreeRecord() {
	s.treeTimer = nil
	if s.treeStep < len(treeRecordAt) {
		prev := time.Duration(0)
		if s.treeStep > 0 {
			prev = treeRecordAt[s.treeStep-1]
		}
		s.treeTimer = time.After(treeRecordAt[s.treeStep] - prev)
		s.treeStep++
		return
	}
	// A few seconds in, start-up is over, the gateway's and gwlock's:
	// what gwlock's start touched of its own program need not stay.
	dropProgramPages()
}

// remnants reports whether the main process exited and others of its tree
// live on.
func (s *supervisor) remnants() bool { return !s.remnantsSince.IsZero() }

// others are the processes of the tree a signal to the gateway's process
// group misses: once the main process exited, the adopted daemons and the
// lock's other holders.
func (s *supervisor) others() []int {
	if s.child != 0 || !s.remnants() {
		return nil
	}
	return s.remnantPIDs()
}

// remnantPIDs names the processes that keep the gateway alive after its main
// process exited, where the OS can tell.
func (s *supervisor) remnantPIDs() []int {
	pids := s.procs.children()
	if s.tree != nil {
		pids = append(pids, s.tree.sharers()...)
	}
	return uniquePIDs(pids)
}

// recordTree writes the live processes of the gateway's tree into the
// lock, so a judge that finds the kernel lock free (a daemon closed its
// descriptor, then the launcher was killed) still sees the gateway alive.
// A live remnant not yet named is named now.
func (s *supervisor) recordTree() []int {
	pids := s.remnantPIDs()
	if s.tree != nil {
		s.tree.setDescendants(pids)
	}
	if s.remnants() && !s.remnantsNamed && len(pids) > 0 {
		s.nameRemnants(pids, slog.Attr{})
	}
	return pids
}

// nameRemnants says, once per life, which processes outlived the gateway's
// main process, or why they cannot be named (unknownReason).
func (s *supervisor) nameRemnants(pids []int, unknownReason slog.Attr) {
	s.remnantsNamed = true
	s.log.Warn("gateway-descendants", "pids", pidList(pids), unknownReason, "lock", s.where(),
		"action", "waiting for them before releasing the lock, restarting or exiting")
}

// unlistedRemnants is why the main process's exit left processes that the
// listing did not name: the empty Attr when none of them is alive, because
// the reaper still has children to collect (killed with the main process,
// or zombies) and the OS listed every live descendant and found none.
func unlistedRemnants(e childExit) slog.Attr {
	if _, err := proc.Descendants(); err != nil {
		return slog.String("unknown_reason", err.Error())
	}
	if !e.treeKnown {
		return slog.String("unknown_reason", "a process outside gwlock's descendants shares the lock")
	}
	return slog.Attr{}
}

// reaped handles one exit: the gateway's main process, or one of its
// adopted descendants. The gateway's life ends when the whole tree is gone.
func (s *supervisor) reaped(e childExit) (bool, int, error) {
	if e.pid == s.child && s.child != 0 {
		s.log.Info("child-exit", "pid", s.child, "code", e.code, "signal", e.signal, "uptime_ms", ms(time.Since(s.started)))
		s.child, s.lastCode, s.mainCode = 0, e.code, e.code
		s.procs.mainExited()
		if s.treeLives(e) {
			return false, 0, nil
		}
		return s.treeGone()
	}
	if !s.remnants() {
		return false, 0, nil // an orphan from an earlier life, reaped
	}
	if s.mainCode == 0 && s.ending.cause <= causeReadyTimeout {
		// A daemonizing gateway's main process exits 0 at once: the tree's
		// last process is the real gateway, and its code is the one to
		// report. A main process that failed keeps its code, and so does a
		// life that a restart, a stop signal or a lost lock ends.
		s.lastCode = e.code
	}
	if e.treeKnown && e.treeEmpty {
		return s.treeGone()
	}
	if len(s.procs.exits) == 0 {
		// Recorded once the exits that came together are handled: a
		// recording reads the whole process table, and one per exit makes
		// a tree of thousands that is killed at once take quadratic time.
		s.recordTree()
	}
	return false, 0, nil
}

// treeLives decides, when the gateway's main process has exited, whether
// other processes of its tree remain; if so it says so in one line and
// passes any stop under way on to them.
func (s *supervisor) treeLives(e childExit) bool {
	switch {
	case e.treeKnown:
		if e.treeEmpty {
			return false
		}
	case s.tree == nil:
		return false // no reaper and no lock to tell by
	default:
		shared, err := s.tree.othersHold()
		if err != nil || !shared {
			return false
		}
		go func() { s.lockAlone <- s.tree.waitAlone() }()
	}
	s.remnantsSince = time.Now()
	if s.state == stateRunning {
		s.enter(stateRemnants)
	}
	if pids := s.recordTree(); len(pids) == 0 {
		// Every process left may be exiting: then its reaping, at once,
		// ends the life, and a line would name nobody; a live one that a
		// later recording finds is named then.
		if why := unlistedRemnants(e); why.Key != "" {
			s.nameRemnants(nil, why)
		}
	}
	s.passStopOn()
	return true
}

// treeGone: no process of the gateway is left. What the stop asked, or else
// the restart policy, decides what comes next.
func (s *supervisor) treeGone() (bool, int, error) {
	if s.remnantsNamed {
		s.log.Info("gateway-descendants-gone", "code", s.lastCode, "waited_ms", ms(time.Since(s.remnantsSince)))
	}
	close(s.childGone)
	code, uptime := s.lastCode, time.Since(s.started)
	unready := s.ending.first == causeReadyTimeout
	if unready {
		code = exitReadyTimeout
	}
	cause := s.ending.cause
	s.ending, s.remnantsSince, s.remnantsNamed, s.readyTimer = ending{}, time.Time{}, false, nil
	s.procs.ended()
	switch {
	case cause == causeLockLost:
		return s.finish(exitFailure, s.lost)
	case cause == causeSignal:
		return s.finish(code, nil)
	case cause == causeRestart:
		s.restarts++
		return s.restartNow(s.restarts, "SIGHUP")
	case !s.shouldRestart(code):
		return s.finish(code, nil)
	}
	return s.backOff(code, uptime, unready)
}

// uniquePIDs sorts pids and drops repeats.
func uniquePIDs(pids []int) []int {
	sort.Ints(pids)
	out := pids[:0]
	for i, p := range pids {
		if i == 0 || p != pids[i-1] {
			out = append(out, p)
		}
	}
	return out
}

// pidList renders pids for telemetry: "1,2,3", or "unknown" where the OS
// could not list them (the line says why).
func pidList(pids []int) string {
	if len(pids) == 0 {
		return "unknown"
	}
	parts := make([]string, len(pids))
	for i, p := range pids {
		parts[i] = strconv.Itoa(p)
	}
	return strings.Join(parts, ",")
}
