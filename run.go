package main

import (
	"errors"
	"fmt"
	"gwlock/internal/telemetry"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Restart backoff (DESIGN.md "run"): 1 s doubling to 30 s, reset after 60 s up.
const (
	backoffFirst   = time.Second
	backoffMax     = 30 * time.Second
	backoffResetUp = 60 * time.Second
)

// commandError is a gateway that could not be started: 126 or 127.
type commandError struct {
	code int
	err  error
}

func (e *commandError) Error() string { return e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

// portConflictError: the port is served by a process that does not hold the lock (exit 69).
type portConflictError struct {
	host string
	port int
}

func (e *portConflictError) Error() string {
	return fmt.Sprintf("port %s: already served by a process that does not hold the lock; the gateway could not bind (hint: stop that process or use another --port)",
		net.JoinHostPort(e.host, strconv.Itoa(e.port)))
}

// lockLostError ends a run whose lock was lost under it; the final line
// repeats lock-lost's reason, so it stands alone in a journal.
type lockLostError struct{ where, reason string }

func (e *lockLostError) Error() string {
	return fmt.Sprintf("lock %s lost (%s): gateway stopped", e.where, e.reason)
}

func cmdRun(c *config, log *telemetry.Logger, stderr io.Writer) int {
	st := runStartup()
	if os.Getenv("GWLOCK_ALLOW_MULTI") == "1" {
		log.Warn("acquire-skipped", "reason", "GWLOCK_ALLOW_MULTI=1")
		code, err := supervise(c, nil, log, st)
		if err != nil {
			return fail(stderr, err)
		}
		return code
	}
	b, err := backendFor(c, log)
	if err != nil {
		return fail(stderr, err)
	}
	cancel, endWatch := watchStopSignals(st.sigs, st.registered)
	hold, err := b.acquire(acquireRequest{Timeout: c.timeout, Log: log, Cancel: cancel,
		CancelReady: st.registered, StopIfAlive: c.ifRunning == "ok"})
	if sig := endWatch(); sig != nil {
		// Stopped before the gateway started: start nothing, leave nothing.
		if hold != nil {
			_ = hold.release(log)
		}
		fmt.Fprintf(stderr, "gwlock: run %s: stopped by %v before the gateway started\n", b.where(), sig)
		return 128 + int(sig.(syscall.Signal))
	}
	var busy *busyError
	if errors.As(err, &busy) && c.ifRunning == "ok" && busy.Status.established() {
		// Idempotent start: a live owner is certain. An owner that cannot be
		// judged is no proof that a gateway runs: that waits and ends in 75.
		log.Info("already-running", "lock", busy.Path, "owner_pid", busy.OwnerPID, "owner_status", string(busy.Status),
			gatewayKey(verdict{gatewayPID: busy.GatewayPID}), "waited_ms", ms(busy.Waited))
		return exitOK
	}
	if err != nil {
		return fail(stderr, err)
	}
	code, err := supervise(c, hold, log, st)
	if rerr := hold.release(log); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		if code == exitOK {
			code = exitCode(err)
		}
		fail(stderr, err)
	}
	return code
}

// startup is run's start-up state: its signals, registered in the
// background from the process's first instruction (runStartup).
type startup struct {
	sigs       chan os.Signal
	registered chan struct{} // closed once sigs receives runSignals
}

// runStartup makes run's start-up state, once. Registering a signal takes a
// round trip per signal to the runtime's signal thread (about 50 us each
// here) and the payload needs /proc reads: both start here, called from init
// for `gwlock run`, and overlap parsing and the lock directory checks.
var runStartup = sync.OnceValue(func() *startup {
	st := &startup{sigs: make(chan os.Signal, 64), registered: make(chan struct{})}
	go func() {
		signal.Notify(st.sigs, runSignals...)
		close(st.registered)
	}()
	go selfFacts()
	return st
})

// watchStopSignals turns a stop signal that arrives while the lock is being
// acquired into a cancellation, so Ctrl-C or SIGTERM ends a waiting gwlock at
// once. end stops the watch and returns the signal, if one came; signals
// after that are the supervisor's.
func watchStopSignals(sigs <-chan os.Signal, registered <-chan struct{}) (cancel <-chan struct{}, end func() os.Signal) {
	canceled, quit, got := make(chan struct{}), make(chan struct{}), make(chan os.Signal, 1)
	go func() {
		var stop os.Signal
		defer func() { got <- stop }()
		select {
		case <-registered:
		case <-quit:
			return
		}
		for {
			select {
			case s := <-sigs:
				if signalRole(s) == roleStop {
					stop = s
					close(canceled)
					return
				}
			case <-quit:
				return
			}
		}
	}()
	return canceled, func() os.Signal {
		close(quit)
		return <-got
	}
}

// lookGateway finds the gateway's program as a shell would (PATH), with
// 127 for one that is not there and 126 for one that cannot run.
func lookGateway(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil {
		return path, nil
	}
	code := exitNotExecutable
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		code = exitNotFound
	}
	return "", &commandError{code: code, err: &fs.PathError{Op: "start gateway", Path: name, Err: errors.Unwrap(err)}}
}

// checkPort refuses to start a gateway whose port another process serves:
// it could not bind and would only crash-loop.
func checkPort(c *config, log *telemetry.Logger) error {
	if c.port == 0 {
		return nil
	}
	for _, host := range conflictHosts(c.host) {
		if portListening(host, c.port, probeTimeout) {
			log.Error("port-conflict", "port", c.port, "host", host)
			return &portConflictError{host: host, port: c.port}
		}
	}
	return nil
}

// conflictHosts are the addresses checked for a squatter on the port. A
// gateway bound to loopback (openclaw's --bind loopback) listens on both
// 127.0.0.1 and ::1: a squatter on [::1]:port leaves it serving IPv4 alone,
// or failing, so the IPv4 loopback is not checked alone (issue 12).
func conflictHosts(host string) []string {
	if host == "127.0.0.1" || host == "localhost" {
		return []string{"127.0.0.1", "::1"}
	}
	return []string{host}
}

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
// cannot list them.
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

// unitEnv are the variables systemd gives the unit's main process, gwlock,
// that are false or harmful in the gateway, a supervised child (issue 12):
// NOTIFY_SOCKET, WATCHDOG_* and LISTEN_* name gwlock's pid or its channel to
// systemd (gwlock gives the gateway its own NOTIFY_SOCKET); INVOCATION_ID,
// SYSTEMD_EXEC_PID, JOURNAL_STREAM and MANAGERPID make a gateway such as
// openclaw conclude that systemd restarts it directly, so on a respawn
// request it exits 0 expecting a restart that --restart on-failure never
// gives. The gateway's stderr still reaches the journal: it is gwlock's.
var unitEnv = map[string]string{
	"NOTIFY_SOCKET": "", "WATCHDOG_PID": "", "WATCHDOG_USEC": "",
	"LISTEN_PID": "", "LISTEN_FDS": "", "LISTEN_FDNAMES": "",
	"INVOCATION_ID": "", "SYSTEMD_EXEC_PID": "", "JOURNAL_STREAM": "", "MANAGERPID": "",
}

// gatewayEnv is base without unitEnv, with every variable in set replaced,
// not appended: with duplicates, Go's os.Getenv and most C runtimes return
// the first entry, so a GWLOCK_LOCK_PATH inherited from an outer gwlock
// would win over ours.
func gatewayEnv(base []string, set map[string]string) []string {
	env := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		if name := envName(kv); !envSets(set, name) && !envSets(unitEnv, name) {
			env = append(env, kv)
		}
	}
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		env = append(env, name+"="+set[name])
	}
	return env
}

// envName is the name in a NAME=value entry. Windows keeps per-drive
// directories as "=C:=C:\\dir": a leading '=' belongs to the name.
func envName(kv string) string {
	if kv == "" {
		return ""
	}
	if i := strings.IndexByte(kv[1:], '='); i >= 0 {
		return kv[:i+1]
	}
	return kv
}

// envSets reports whether set names the variable name; Windows names are
// case-insensitive, so Gwlock_Lock_Path is the same variable there.
func envSets(set map[string]string, name string) bool {
	if _, ok := set[name]; ok || runtime.GOOS != "windows" {
		return ok
	}
	for k := range set {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// The supervisor: one loop for every OS. It starts the gateway, stays with
// its whole process tree until no process of it is left, applies the restart
// policy, forwards signals, reports readiness, and stops the gateway when
// the lock is lost. The per-OS files give it primitives only: a gatewayTree
// that starts, signals, kills and reports exits, and the signals' roles.

// sigRole is what a caught signal asks of the supervisor.
type sigRole int

const (
	roleForward sigRole = iota // pass it to the gateway
	roleStop                   // stop the gateway and exit
	roleRestart                // stop the gateway and start it again (SIGHUP)
)

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

	child      int // the gateway's main process, 0 once it exited
	mainCode   int // its exit code
	lastCode   int // the code to report for this life of the gateway
	restarts   int
	remnants   bool           // the main process exited, other processes of the tree live
	stopping   bool           // a stop signal or a lost lock: no restart
	restarting bool           // SIGHUP: start again as soon as the gateway is gone
	lost       *lockLostError // the lock was lost: no restart, exit 1
	killing    bool           // the stop reached SIGKILL: whatever of the tree remains gets it
	unready    bool           // --ready-timeout ended this life
	started    time.Time
	remnantsAt time.Time
	stopTimer  <-chan time.Time
	stopAt     time.Time
	stopReason string
	stopSig    os.Signal
	backoff    <-chan time.Time
	rd         readiness
	ready      chan time.Duration
	readyTimer <-chan time.Time
	childGone  chan struct{}
	lockAlone  chan error // the lock's other sharers are gone (no subreaper)
	status     string     // the gateway's last STATUS=
	treeTimer  <-chan time.Time
	treeStep   int
}

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
	}
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
	s := &supervisor{c: c, hold: hold, log: log, procs: procs, lockAlone: make(chan error, 1)}
	s.tree, _ = hold.(treeHolder)
	if s.relay, err = openNotifyRelay(hold, c.readyNotify); err != nil {
		if c.readyNotify {
			return exitFailure, err
		}
		log.Warn("notify-relay-unavailable", "error", err.Error())
	}
	defer s.relay.close()
	if c.readyNotify && s.relay == nil && err == nil {
		// Windows, or GWLOCK_ALLOW_MULTI (no lock dir): READY=1 could never come.
		return exitUsage, usagef("--ready-notify: no NOTIFY_SOCKET can be given to the gateway here (hint: drop --ready-notify on Windows and with GWLOCK_ALLOW_MULTI=1)")
	}
	if err := s.start(); err != nil {
		return exitCode(err), err
	}
	var lost <-chan string
	if hold != nil {
		lost = hold.lost()
	}
	var notes <-chan string
	if s.relay != nil {
		notes = s.relay.notes
	}
	tick := time.NewTicker(c.stale / 3)
	defer tick.Stop()
	for {
		done, code, err := s.next(st.sigs, lost, notes, tick.C)
		if done {
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
	case <-s.stopTimer:
		s.escalate()
		return false, 0, nil
	default:
	}
	select {
	case e := <-s.procs.exits:
		return s.reaped(e)
	case err := <-s.lockAlone:
		if err != nil {
			return true, exitFailure, err
		}
		return s.treeGone()
	case sig := <-sigs:
		return s.onSignal(sig)
	case <-s.stopTimer:
		s.escalate()
	case reason := <-lost:
		return s.lockLost(reason)
	case <-tick:
		s.recordTree()
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
		if err := s.start(); err != nil {
			return true, exitCode(err), err
		}
	}
	return false, 0, nil
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

// deathSignal is what the kernel sends the gateway when its launcher dies.
// On one host the stop signal: the gateway drains, and the lock it
// inherited keeps a successor out until it is gone. Across hosts nothing
// would keep one out: the lease expires and a standby starts, with no
// launcher left to escalate to SIGKILL, so the gateway is killed at once.
func (s *supervisor) deathSignal() os.Signal {
	if s.c.backend == "etcd" {
		return killSignal
	}
	return s.c.stopSignal
}

func (s *supervisor) running() bool { return s.child != 0 || s.remnants }

// where names the lock, for telemetry.
func (s *supervisor) where() string {
	if s.hold == nil {
		return ""
	}
	return s.hold.where()
}

func (s *supervisor) start() error {
	if err := checkPort(s.c, s.log); err != nil {
		return err
	}
	set := map[string]string{}
	if s.hold != nil {
		set = s.hold.gatewayEnv()
	}
	if s.relay != nil {
		// A new life starts once the last one's tree is gone: whatever it
		// said (a READY=1 from its stop handler) must not count for this one.
		s.relay.drain()
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
	s.child, s.started, s.treeStep = pid, time.Now(), 0
	s.scheduleTreeRecord()
	if s.hold != nil {
		s.hold.setGateway(pid)
	}
	s.log.Info("child-start", "pid", pid, "command", s.c.command[0])
	s.childGone, s.ready, s.unready = make(chan struct{}), make(chan time.Duration, 1), false
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
	return nil
}

// checkReady fires gateway-ready, once per life, when every configured
// check has passed.
func (s *supervisor) checkReady() {
	// A gateway being stopped (a stop signal, a restart, a lost lock, its
	// readiness deadline) is not ready, whatever it says on the way out.
	if s.rd.done || !s.rd.complete() || !s.running() || s.stopTimer != nil || s.stopping || s.restarting || s.lost != nil {
		return
	}
	s.rd.done, s.readyTimer = true, nil
	s.log.Info("gateway-ready", "port", s.c.port, "by", s.rd.by(), "waited_ms", ms(time.Since(s.started)))
	s.notifyReady()
}

// onNote handles one line the gateway sent to its NOTIFY_SOCKET.
func (s *supervisor) onNote(note string) {
	switch relayedNote(note) {
	case "ready":
		if s.rd.notify {
			s.rd.told = true
			s.checkReady()
		}
	case "relay":
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
	if s.rd.done || !s.running() || s.stopTimer != nil {
		// A stop under way (an operator's, a restart, a lost lock) decides
		// this life's end: a second stop signal would cut its drain short.
		return
	}
	s.log.Warn("ready-timeout", "pid", s.child, "timeout_ms", ms(s.c.readyTimeout), "by", s.rd.by())
	s.unready = true
	s.stop(s.c.stopSignal, "ready-timeout", "")
}

// stop signals the gateway's tree and arms the SIGKILL timer. The first
// call of a stop says so in one line; later ones (descendants left behind)
// pass the same stop on.
func (s *supervisor) stop(sig os.Signal, reason, by string) {
	if !s.running() {
		return
	}
	if s.killing {
		s.procs.kill(s.others())
		return
	}
	if s.stopTimer == nil {
		s.stopAt, s.stopReason, s.stopSig = time.Now(), reason, sig
		byKey := slog.Attr{} // skipped by the handler: no signal asked
		if by != "" {
			byKey = slog.String("by", by)
		}
		s.log.Info("stop", "pid", s.child, "signal", signalName(sig), "reason", reason, byKey,
			"timeout_ms", ms(s.c.stopTimeout))
		s.stopTimer = time.After(s.c.stopTimeout)
	}
	s.procs.signal(sig, s.others())
}

// escalate is the end of --stop-timeout: SIGKILL to the whole tree. Processes
// that join the tree afterwards (a daemon adopted once its parent was
// killed) get SIGKILL too: the timer comes back until the tree is gone.
func (s *supervisor) escalate() {
	s.stopTimer = nil
	if !s.running() {
		return
	}
	if !s.killing {
		s.log.Warn("stop-escalated", "pid", s.child, "signal", "SIGKILL", "reason", s.stopReason,
			"after_ms", ms(time.Since(s.stopAt)))
	}
	s.killing = true
	s.procs.kill(s.others())
	s.stopTimer = time.After(killRepeat)
}

// others are the processes of the tree a signal to the gateway's process
// group misses: once the main process exited, the adopted daemons and the
// lock's other holders.
func (s *supervisor) others() []int {
	if s.child != 0 || !s.remnants {
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
func (s *supervisor) recordTree() []int {
	pids := s.remnantPIDs()
	if s.tree != nil {
		s.tree.setDescendants(pids)
	}
	return pids
}

// gatewayStopSignal is what the gateway gets when sig asks gwlock to stop.
// SIGINT (Ctrl-C) passes as it is where signals exist, so an interactive gateway behaves as in a
// terminal. SIGTERM and SIGQUIT become --stop-signal: they are a service
// manager's or an operator's request to stop, and the gateway's graceful
// stop is the one it names; SIGQUIT passed on kills a Node gateway at once
// (exit 131) in the middle of its drain. SIGQUIT the gateway's pid itself
// for a core dump.
func (s *supervisor) gatewayStopSignal(sig os.Signal) os.Signal {
	if sig == os.Interrupt && interruptPassesThrough {
		return sig
	}
	return s.c.stopSignal
}

func (s *supervisor) onSignal(sig os.Signal) (bool, int, error) {
	switch signalRole(sig) {
	case roleRestart:
		if s.running() {
			if s.stopTimer != nil || s.killing {
				// A stop is under way: an operator's stop or a lost lock
				// wins over a restart, and a restart is already one. A
				// second stop signal would only cut the gateway's drain short.
				return false, 0, nil
			}
			s.restarting = true
			s.stop(s.c.stopSignal, "restart", signalName(sig))
			return false, 0, nil
		}
		if s.backoff != nil {
			// The attempt the backoff was waiting for starts now.
			s.backoff = nil
			s.log.Info("restart", "attempt", s.restarts, "backoff_ms", 0, "reason", signalName(sig))
			if err := s.start(); err != nil {
				return true, exitCode(err), err
			}
		}
	case roleStop:
		s.stopping = true
		sdNotify("STOPPING=1")
		if !s.running() {
			// Stopped during a backoff: the exit says what stopped gwlock,
			// not how the gateway before the backoff ended.
			s.log.Info("stop", "pid", 0, "signal", "none", "reason", "signal", "by", signalName(sig), "timeout_ms", 0)
			return true, 128 + int(sig.(syscall.Signal)), nil
		}
		s.stop(s.gatewayStopSignal(sig), "signal", signalName(sig))
	default:
		if s.child != 0 {
			s.procs.forward(s.child, sig)
		}
	}
	return false, 0, nil
}

// lockLost: the holder said the lock is gone. Stop the gateway; exit 1.
func (s *supervisor) lockLost(reason string) (bool, int, error) {
	s.lost = &lockLostError{where: s.where(), reason: reason}
	if !s.running() {
		return true, exitFailure, s.lost
	}
	s.stop(s.c.stopSignal, "lock-lost", "")
	return false, 0, nil
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
	if !s.remnants {
		return false, 0, nil // an orphan from an earlier life, reaped
	}
	if s.mainCode == 0 && !s.stopping && !s.restarting && s.lost == nil {
		// A daemonizing gateway's main process exits 0 at once: the tree's
		// last process is the real gateway, and its code is the one to
		// report. A main process that failed keeps its code.
		s.lastCode = e.code
	}
	if e.treeKnown && e.treeEmpty {
		return s.treeGone()
	}
	s.recordTree()
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
	s.remnants, s.remnantsAt = true, time.Now()
	pids := s.recordTree()
	s.log.Warn("gateway-descendants", "pids", pidList(pids), "lock", s.where(),
		"action", "waiting for them before releasing the lock, restarting or exiting")
	if s.stopTimer != nil || s.killing {
		s.stop(s.stopSig, s.stopReason, "")
	}
	return true
}

// treeGone: no process of the gateway is left. Apply the policy.
func (s *supervisor) treeGone() (bool, int, error) {
	if s.remnants {
		s.log.Info("gateway-descendants-gone", "code", s.lastCode, "waited_ms", ms(time.Since(s.remnantsAt)))
	}
	close(s.childGone)
	code, uptime := s.lastCode, time.Since(s.started)
	if s.unready {
		code = exitReadyTimeout
	}
	s.remnants, s.stopTimer, s.killing, s.readyTimer = false, nil, false, nil
	s.procs.ended()
	switch {
	case s.lost != nil:
		return true, exitFailure, s.lost
	case s.stopping:
		return true, code, nil
	case s.restarting:
		s.restarting = false
		s.log.Info("restart", "attempt", s.restarts+1, "backoff_ms", 0, "reason", "SIGHUP")
		s.restarts++
		if err := s.start(); err != nil {
			return true, exitCode(err), err
		}
		return false, 0, nil
	case !s.shouldRestart(code):
		return true, code, nil
	}
	delay, next := restartDelay(s.restarts, uptime)
	s.restarts, s.lastCode = next, code
	reason := "exit code " + strconv.Itoa(code)
	if s.unready {
		reason = "ready-timeout"
	}
	s.log.Warn("restart", "attempt", s.restarts, "backoff_ms", ms(delay), "reason", reason, "last_exit", code)
	if s.hold != nil {
		s.hold.setRestarting(time.Now().Add(delay), code)
	}
	s.backoff = time.After(delay)
	return false, 0, nil
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
