package main

import (
	"gwlock/internal/telemetry"
	"os"
	"runtime"
	"runtime/debug"
	"time"
)

// The supervisor: one loop for every OS. It starts the gateway, stays with
// its whole process tree until no process of it is left, applies the restart
// policy, forwards signals, reports readiness, and stops the gateway when
// the lock is lost. The per-OS files give it primitives only: a gatewayTree
// that starts, signals, kills and reports exits, and the signals' roles.
//
// The loop must never wait on the network: a lost lock is acted on at once
// whatever a server, a port or systemd does. So every call made on it
// returns without a round trip: the lock holder's setGateway,
// setDescendants and setRestarting queue their work where the lock lives
// remotely, systemd is told through a queue (sdNotify), the readiness probes
// run in goroutines of their own and answer on channels, and a restart's
// port check runs in a goroutine while the loop waits in stateStarting.

// childExit is one process of the gateway's tree gone. treeKnown says the
// OS told whether others remain: treeEmpty, then, that none does.
type childExit struct {
	pid, code, signal    int
	treeKnown, treeEmpty bool
}

// killRepeat is how often a stop past its timeout kills the tree again.
const killRepeat = 100 * time.Millisecond

type supervisor struct {
	c     *config
	hold  holder     // nil: GWLOCK_ALLOW_MULTI
	tree  treeHolder // hold, when the gateway shares it through a descriptor
	log   *telemetry.Logger
	procs *gatewayTree
	relay *notifyRelay // the gateway's NOTIFY_SOCKET; nil: none

	state  runState
	ending ending         // the stop under way, if any; zero between lives
	lost   *lockLostError // why the lock was lost, once it was

	child    int // the gateway's main process, 0 once it exited
	mainCode int // its exit code
	lastCode int // the code to report for this life of the gateway
	restarts int
	started  time.Time
	// remnantsSince is when the main process exited leaving other
	// processes of its tree alive; zero otherwise.
	remnantsSince time.Time
	remnantsNamed bool // gateway-descendants has named them, or said why it cannot
	backoff       <-chan time.Time
	portChecked   chan error // a restart's port check answers here
	rd            readiness
	ready         chan time.Duration
	readyTimer    <-chan time.Time
	childGone     chan struct{}
	lockAlone     chan error // the lock's other sharers are gone (no subreaper)
	status        string     // the gateway's last STATUS=
	treeTimer     <-chan time.Time
	treeStep      int
	heap          *heapPacer
}

// supervise runs the gateway under hold (nil: no lock) until it is gone for
// good, and returns the code gwlock should exit with.
func supervise(c *config, hold holder, log *telemetry.Logger, st *startup) (int, error) {
	<-st.registered // a stop signal sent after the gateway started must reach it
	procs, err := openGatewayTree(c.subreaper)
	if err != nil {
		return exitFailure, err
	}
	defer procs.close()
	s := &supervisor{c: c, hold: hold, log: log, procs: procs, lockAlone: make(chan error, 1), heap: newHeapPacer()}
	s.tree, _ = hold.(treeHolder)
	if s.relay, err = openNotifyRelay(hold, c.readyNotify); err != nil {
		if c.readyNotify || exitCode(err) == exitUnsafe {
			return exitCode(err), err
		}
		log.Warn("notify-relay-unavailable", "error", err.Error())
	}
	defer s.relay.close()
	if c.readyNotify && s.relay == nil && err == nil {
		// Windows, or GWLOCK_ALLOW_MULTI (no lock dir): READY=1 could never come.
		return exitUsage, usagef("--ready-notify: no NOTIFY_SOCKET can be given to the gateway here (hint: drop --ready-notify on Windows and with GWLOCK_ALLOW_MULTI=1)")
	}
	// The first start checks the port before the loop runs: nothing waits
	// on the loop yet, and a conflict ends run before any gateway exists.
	if done, code, err := s.launch(checkPort(c, log)); done {
		return code, err
	}
	settleHeap()
	return s.loop(st.sigs)
}

// The launcher stays beside its gateway for months with a live heap of a
// few hundred KiB and a trickle of garbage (tree records, heartbeats,
// reaping). The runtime's default target collects when the heap has
// doubled but never below 4 MiB, so that garbage piles up to 4 MiB of
// resident memory before anything is collected. Two settings bound it:
//
// supervisingGCPercent makes the runtime's own target 10% above what is
// live, for bursts (a tree of thousands exiting at once); the runtime
// still lets 1 MiB of garbage accumulate past the last collection (its
// minimum sweep distance), whatever the percentage.
//
// collectEvery is how much the launcher allocates before it asks for a
// collection itself, at its next periodic tick: a collection of a heap
// this small takes well under a millisecond. A memory limit
// (SetMemoryLimit) is no substitute: it counts the runtime's mapped but
// untouched memory too, and once the live heap nears it the collector runs
// back to back; no fixed number fits every tree.
const (
	supervisingGCPercent = 10
	collectEvery         = 256 << 10
)

// heapPacer asks for a collection once collectEvery bytes were allocated
// since the last one. It reads the counts with runtime.ReadMemStats, which
// stops the world for microseconds once a tick (every --stale/3): the
// runtime/metrics package would spare that, but its initialiser costs every
// start of gwlock a tenth of a millisecond.
type heapPacer struct {
	allocated uint64 // cumulative bytes allocated at the last collection seen
	cycles    uint32 // collections then
}

func newHeapPacer() *heapPacer { return &heapPacer{} }

// tick collects if collectEvery bytes were allocated since the last
// collection, the runtime's own included.
func (p *heapPacer) tick() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocated, cycles := ms.TotalAlloc, ms.NumGC
	if cycles == p.cycles && allocated-p.allocated < collectEvery {
		return
	}
	if cycles == p.cycles {
		runtime.GC()
		cycles++
	}
	p.allocated, p.cycles = allocated, cycles
}

// settleHeap sets supervisingGCPercent, unless GOGC in the environment
// says what the operator wants. (Heap profiling, whose records would grow
// with uptime, is off already: the linker turns it off in a program that
// never reads a profile.)
func settleHeap() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(supervisingGCPercent)
	}
}

// loop handles events until the supervisor exits.
func (s *supervisor) loop(sigs <-chan os.Signal) (int, error) {
	var lost <-chan string
	if s.hold != nil {
		lost = s.hold.lost()
	}
	var notes <-chan string
	if s.relay != nil {
		notes = s.relay.Notes()
	}
	tick := time.NewTicker(s.c.stale / 3)
	defer tick.Stop()
	for {
		if done, code, err := s.next(sigs, lost, notes, tick.C); done {
			return code, err
		}
	}
}

// next waits for one event and handles it.
func (s *supervisor) next(sigs <-chan os.Signal, lost <-chan string, notes <-chan string, tick <-chan time.Time) (bool, int, error) {
	// A lost lock and the end of a stop's grace come first: a gateway
	// flooding its notify socket must not keep them waiting in the select.
	select {
	case reason := <-lost:
		return s.lockLost(reason)
	case <-s.ending.timer:
		s.escalate()
		return false, 0, nil
	default:
	}
	select {
	case e := <-s.procs.exits:
		return s.reaped(e)
	case err := <-s.lockAlone:
		if err != nil {
			return s.finish(exitFailure, err)
		}
		return s.treeGone()
	case sig := <-sigs:
		return s.onSignal(sig)
	case <-s.ending.timer:
		s.escalate()
	case reason := <-lost:
		return s.lockLost(reason)
	case <-tick:
		s.recordTree()
		s.heap.tick()
	case <-s.treeTimer:
		s.recordTree()
		s.scheduleTreeRecord()
	case <-s.ready:
		s.rd.probed = true
		s.checkReady()
	case note := <-notes:
		s.onNote(note)
	case <-s.readyTimer:
		s.readyExpired()
	case <-s.backoff:
		s.backoff = nil
		return s.begin()
	case err := <-s.portChecked:
		s.portChecked = nil
		return s.launch(err)
	}
	return false, 0, nil
}

// finish ends the supervisor with code and err.
func (s *supervisor) finish(code int, err error) (bool, int, error) {
	s.enter(stateExited)
	return true, code, err
}

// begin starts the next life from the loop. Checking the port connects to
// it, which may take probeTimeout per address, so that runs in a goroutine
// and the loop goes on: a lost lock or a stop signal meanwhile is handled at
// once, and no gateway is started after all.
func (s *supervisor) begin() (bool, int, error) {
	s.enter(stateStarting)
	if s.c.port == 0 {
		return s.launch(nil)
	}
	checked := make(chan error, 1)
	s.portChecked = checked
	go func() { checked <- checkPort(s.c, s.log) }()
	return false, 0, nil
}

// launch starts the gateway once its port was found free (portErr nil).
func (s *supervisor) launch(portErr error) (bool, int, error) {
	err := portErr
	if err == nil {
		err = s.start()
	}
	if err != nil {
		return s.finish(exitCode(err), err)
	}
	return false, 0, nil
}

// start forks the gateway and begins its life: tree records, readiness.
func (s *supervisor) start() error {
	set := map[string]string{}
	if s.hold != nil {
		set = s.hold.gatewayEnv()
	}
	if s.relay != nil {
		// A new life starts once the last one's tree is gone: whatever it
		// said (a READY=1 from its stop handler) must not count for this one.
		s.relay.Drain()
		set["NOTIFY_SOCKET"] = s.relay.path
	}
	env := gatewayEnv(os.Environ(), set)
	var fd uintptr
	var inherit bool
	if s.tree != nil {
		fd, inherit = s.tree.inheritedFD()
	}
	pid, err := s.procs.start(s.c.command, env, fd, inherit, s.deathSignal())
	if err != nil {
		return err
	}
	s.enter(stateRunning)
	s.child, s.started, s.treeStep = pid, time.Now(), 0
	s.scheduleTreeRecord()
	if s.hold != nil {
		s.hold.setGateway(pid)
	}
	s.log.Info("child-start", "pid", pid, "command", s.c.command[0])
	s.awaitReady()
	return nil
}

// deathSignal is what the kernel sends the gateway when its launcher dies:
// --death-signal, or by default on one host the stop signal: the gateway
// drains, and the lock it inherited keeps a successor out until it is gone.
// Across hosts nothing would keep one out: the lease expires and a standby
// starts, with no launcher left to escalate to SIGKILL, so by default the
// gateway is killed at once.
func (s *supervisor) deathSignal() os.Signal {
	if s.c.deathSignal != nil {
		return s.c.deathSignal
	}
	if s.c.backend == "etcd" {
		return killSignal
	}
	return s.c.stopSignal
}

// running reports whether some process of the gateway's tree lives.
func (s *supervisor) running() bool { return s.state.treeAlive() }

// where names the lock, for telemetry.
func (s *supervisor) where() string {
	if s.hold == nil {
		return ""
	}
	return s.hold.where()
}
