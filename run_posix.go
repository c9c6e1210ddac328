//go:build unix

package main

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runSignals are caught by run: TERM, INT and QUIT stop the gateway, HUP
// restarts it, USR1, USR2 and WINCH are forwarded. SIGCHLD is not needed: a
// goroutine waits in wait4.
var runSignals = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGQUIT, unix.SIGHUP,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

func isStopSignal(s os.Signal) bool {
	return s == unix.SIGTERM || s == unix.SIGINT || s == unix.SIGQUIT
}

// stderrWriter writes to file descriptor 2 with write(2). Through os.Stderr,
// Go kills the process with SIGPIPE when fd 2 is a broken pipe; here the
// write just fails with EPIPE, which telemetry ignores (Invariant 6), and no
// SIGPIPE handler has to be registered at start-up.
var stderrWriter io.Writer = fdWriter(2)

type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

// supervise starts the gateway and stays with it until it is gone for good,
// applying the restart policy, forwarding signals, reporting readiness and
// checking the lock. It returns the code gwlock should exit with.
//
// Invariant 2: the gateway inherits the lock's descriptor (as fd 3) and gets
// the stop signal if its launcher dies (gatewayProcAttr). "The gateway" is
// its whole process tree: gwlock is a subreaper where the OS allows (Linux,
// FreeBSD), so a daemon that forked and let its parent exit becomes our child,
// and gwlock neither restarts nor releases the lock nor exits until no process
// of the tree is left. Where it cannot be a subreaper, the lock itself tells:
// if another process still shares it, the tree lives.
//
// sigs carries runSignals once registered is closed. They are never
// unregistered: signal.Stop waits for the signal loop to drain, and the
// process exits right after this returns.
func supervise(c *config, lock *heldLock, lockPath string, log *telemetry, sigs <-chan os.Signal, registered <-chan struct{}) (int, error) {
	// A stop signal sent after the gateway started must reach it.
	<-registered

	reapAll := os.Getpid() == 1
	if err := setSubreaper(); err == nil {
		reapAll = true
	} else if c.subreaper {
		return exitFailure, err
	}

	s := &supervisor{c: c, lock: lock, lockPath: lockPath, log: log, reapAll: reapAll,
		exits: make(chan childExit, 64), kick: make(chan struct{}, 1), lockAlone: make(chan error, 1)}
	if reapAll {
		go s.reapEverything()
	}
	if err := s.start(); err != nil {
		return exitCode(err), err
	}
	var heartbeat <-chan time.Time
	if lock != nil {
		t := time.NewTicker(c.stale / 3)
		defer t.Stop()
		heartbeat = t.C
	}
	for {
		select {
		case e := <-s.exits:
			if done, code, err := s.reaped(e); done {
				return code, err
			}
		case err := <-s.lockAlone:
			if err != nil {
				return exitFailure, err
			}
			if done, code, err := s.treeGone(); done {
				return code, err
			}
		case sig := <-sigs:
			if done, code, err := s.onSignal(sig.(syscall.Signal)); done {
				return code, err
			}
		case <-s.stopTimer:
			s.escalate()
		case <-heartbeat:
			if s.remnants {
				s.recordTree() // daemons a daemon left behind are ours now
			}
			if ok, _ := lock.check(); !ok && !s.lost {
				s.lost = true
				lock.markLost()
				log.error("lock-lost", "lock", lockPath, "reason", "path no longer names our lock file")
				if !s.running() {
					return exitFailure, errLockLost
				}
				s.stop(unix.SIGTERM)
			}
		case waited := <-s.ready:
			log.info("gateway-ready", "port", c.port, "waited_ms", ms(waited))
			sdNotify("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid()))
		case <-s.backoff:
			s.backoff = nil
			if err := s.start(); err != nil {
				return exitCode(err), err
			}
		}
	}
}

type supervisor struct {
	c        *config
	lock     *heldLock
	lockPath string
	log      *telemetry
	reapAll  bool // PID 1 or subreaper: every orphan of the tree comes to us

	child      int // the gateway's pid (and process group), 0 when it exited
	group      int // the gateway's process group, kept while its descendants live
	remnants   bool
	remnantsAt time.Time
	started    time.Time
	restarts   int
	lastCode   int
	mainCode   int  // the exit code of the gateway's main process
	killing    bool // the stop reached SIGKILL: whatever of the tree remains gets it
	stopping   bool // a stop signal or lock loss: no restart
	restarting bool // SIGHUP: start again as soon as the gateway is gone
	lost       bool
	stopTimer  <-chan time.Time
	backoff    <-chan time.Time
	ready      chan time.Duration
	childGone  chan struct{}
	exits      chan childExit
	lockAlone  chan error    // the lock's other sharers are gone (no subreaper)
	kick       chan struct{} // a child was started: reapEverything may wait again
}

// childExit is one reaped process. treeKnown says the reaper knows whether
// other children remain: treeEmpty, then, that none does.
type childExit struct {
	pid       int
	status    unix.WaitStatus
	treeKnown bool
	treeEmpty bool
}

// running says some process of the gateway's tree is alive.
func (s *supervisor) running() bool { return s.child != 0 || s.remnants }

// waitChild waits in wait4 for the gateway alone: no SIGCHLD handler needed,
// and nothing else of ours is reaped.
func (s *supervisor) waitChild(pid int) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err == nil && !ws.Exited() && !ws.Signaled() {
			continue
		}
		s.exits <- childExit{pid: got, status: ws}
		return
	}
}

// reapEverything is the PID 1 (or subreaper) loop: it reaps every child,
// orphans adopted from the gateway included, so none stays a zombie. After
// each exit it collects the others already waiting without blocking, so the
// last report of a batch says whether any child at all remains.
func (s *supervisor) reapEverything() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case err == unix.EINTR:
		case err == unix.ECHILD:
			<-s.kick // no children at all until the next gateway starts
		case err != nil:
			return
		case ws.Exited() || ws.Signaled():
			batch, empty := reapMore([]childExit{{pid: pid, status: ws}})
			for i, e := range batch {
				e.treeKnown, e.treeEmpty = true, empty && i == len(batch)-1
				s.exits <- e
			}
		}
	}
}

// reapMore reaps the children that have already exited and says whether
// none remains (ECHILD) once they are collected.
func reapMore(batch []childExit) ([]childExit, bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
		case err == unix.ECHILD:
			return batch, true
		case err != nil || pid == 0:
			return batch, false
		case ws.Exited() || ws.Signaled():
			batch = append(batch, childExit{pid: pid, status: ws})
		}
	}
}

func (s *supervisor) start() error {
	if err := checkPort(s.c, s.log); err != nil {
		return err
	}
	pid, err := startGateway(s.c.command, s.lock, s.lockPath)
	if err != nil {
		return err
	}
	s.child, s.group, s.started = pid, pid, time.Now()
	if s.reapAll {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	} else {
		go s.waitChild(pid)
	}
	s.log.info("child-start", "pid", pid, "command", s.c.command[0])
	if s.lock != nil {
		_ = s.lock.setChild(pid)
	}
	s.childGone = make(chan struct{})
	s.ready = make(chan time.Duration, 1)
	if s.c.port > 0 {
		go func(gone <-chan struct{}, ready chan<- time.Duration) {
			if waited, ok := waitForPort(s.c.host, s.c.port, 24*time.Hour, s.c.poll, gone); ok {
				ready <- waited
			}
		}(s.childGone, s.ready)
	} else {
		sdNotify("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid()))
	}
	return nil
}

// stop signals the gateway's tree and arms the SIGKILL timer.
func (s *supervisor) stop(sig syscall.Signal) {
	if !s.running() {
		return
	}
	if s.killing {
		sig = unix.SIGKILL
	}
	s.signalTree(sig)
	if s.stopTimer == nil {
		s.stopTimer = time.After(s.c.stopTimeout)
	}
}

// escalate is the end of --stop-timeout: SIGKILL to the whole tree. Processes
// that join the tree afterwards (a daemon adopted once its parent was
// killed) get SIGKILL too: the timer comes back until the tree is gone.
func (s *supervisor) escalate() {
	s.stopTimer = nil
	if !s.running() {
		return
	}
	s.killing = true
	s.signalTree(unix.SIGKILL)
	s.stopTimer = time.After(killRepeat)
}

// killRepeat is how often a stop past its timeout kills the tree again.
const killRepeat = 100 * time.Millisecond

// signalTree sends sig to the gateway's process group and, once the gateway
// itself has exited, to each remaining process of its tree that we can name:
// our adopted children and whoever shares the lock. A daemon that left the
// group with setsid is reached that way.
func (s *supervisor) signalTree(sig syscall.Signal) {
	if s.group > 0 {
		_ = unix.Kill(-s.group, sig)
	}
	if s.child == 0 && s.remnants {
		for _, pid := range s.remnantPIDs() {
			_ = unix.Kill(pid, sig)
		}
	}
}

// remnantPIDs names the processes that keep the gateway alive after its main
// process exited, where the OS can tell (Linux).
func (s *supervisor) remnantPIDs() []int {
	pids := childPIDs()
	if s.lock != nil {
		pids = append(pids, s.lock.sharers()...)
	}
	return uniquePIDs(pids)
}

func (s *supervisor) onSignal(sig syscall.Signal) (done bool, code int, err error) {
	switch sig {
	case unix.SIGHUP:
		if !s.running() {
			if s.backoff != nil {
				s.backoff = nil
				if err := s.start(); err != nil {
					return true, exitCode(err), err
				}
			}
			return false, 0, nil
		}
		s.restarting = true
		s.stop(unix.SIGTERM)
	case unix.SIGTERM, unix.SIGINT, unix.SIGQUIT:
		s.stopping = true
		sdNotify("STOPPING=1")
		if !s.running() {
			return true, s.lastCode, nil
		}
		s.stop(sig)
	default:
		if s.child > 0 {
			_ = unix.Kill(s.child, sig)
		}
	}
	return false, 0, nil
}

// reaped handles one exit: the gateway's own, or one of its adopted
// descendants'. The gateway's life ends when the whole tree is gone.
func (s *supervisor) reaped(e childExit) (bool, int, error) {
	code := exitStatusCode(e.status)
	if e.pid == s.child && s.child != 0 {
		sig := 0
		if e.status.Signaled() {
			sig = int(e.status.Signal())
		}
		s.log.info("child-exit", "pid", s.child, "code", code, "signal", sig, "uptime_ms", ms(time.Since(s.started)))
		s.child, s.lastCode, s.mainCode = 0, code, code
		if s.treeLives(e) {
			return false, 0, nil
		}
		return s.treeGone()
	}
	if !s.remnants {
		return false, 0, nil // an orphan from an earlier life, reaped
	}
	if s.mainCode == 0 && !s.stopping && !s.restarting && !s.lost {
		// A daemonizing gateway's main process exits 0 at once: the tree's
		// last process is the real gateway, and its code is the one to report.
		// A main process that failed keeps its code.
		s.lastCode = code
	}
	if e.treeKnown && e.treeEmpty {
		return s.treeGone()
	}
	s.recordTree()
	return false, 0, nil
}

// treeLives decides, when the gateway's main process has exited, whether
// other processes of its tree remain, and if so says so in one line and
// passes on any stop already under way to them.
func (s *supervisor) treeLives(e childExit) bool {
	switch {
	case e.treeKnown:
		if e.treeEmpty {
			return false
		}
	case s.lock == nil:
		return false // no subreaper and no lock: nothing can tell
	default:
		shared, err := s.lock.othersHold()
		if err != nil || !shared {
			return false
		}
		go func() { s.lockAlone <- s.lock.waitAlone() }()
	}
	s.remnants, s.remnantsAt = true, time.Now()
	pids := s.recordTree()
	s.log.warn("gateway-descendants", "pids", pidList(pids), "lock", s.lockPath,
		"action", "waiting for them before releasing the lock, restarting or exiting")
	if s.stopping || s.restarting || s.lost {
		s.stop(unix.SIGTERM)
	}
	return true
}

// recordTree writes the live processes of the gateway's tree into the
// payload, so a judge that finds the kernel lock free (a daemon closed its
// descriptor, then the launcher was killed) still sees the gateway alive;
// it returns them.
func (s *supervisor) recordTree() []int {
	pids := s.remnantPIDs()
	if s.lock != nil {
		_ = s.lock.setDescendants(pids)
	}
	return pids
}

// treeGone: no process of the gateway is left. Apply the policy.
func (s *supervisor) treeGone() (bool, int, error) {
	if s.remnants {
		s.log.info("gateway-descendants-gone", "code", s.lastCode, "waited_ms", ms(time.Since(s.remnantsAt)))
	}
	close(s.childGone)
	code, uptime := s.lastCode, time.Since(s.started)
	s.remnants, s.group, s.stopTimer, s.killing = false, 0, nil, false
	switch {
	case s.lost:
		return true, exitFailure, errLockLost
	case s.stopping:
		return true, code, nil
	case s.restarting:
		s.restarting = false
		s.log.info("restart", "attempt", s.restarts+1, "backoff_ms", 0, "reason", "SIGHUP")
		s.restarts++
		if err := s.start(); err != nil {
			return true, exitCode(err), err
		}
		return false, 0, nil
	case !shouldRestart(s.c.restart, code):
		return true, code, nil
	}
	delay, next := restartDelay(s.restarts, uptime)
	s.restarts = next
	s.log.warn("restart", "attempt", s.restarts, "backoff_ms", ms(delay), "reason", "exit code "+strconv.Itoa(code))
	s.backoff = time.After(delay)
	return false, 0, nil
}

func exitStatusCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// startGateway runs argv directly (no shell) in its own process group, with
// the environment plus GWLOCK_LOCK_PATH, and the lock descriptor as fd 3.
func startGateway(argv []string, lock *heldLock, lockPath string) (int, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		code := exitNotExecutable
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = exitNotFound
		}
		return 0, &commandError{code: code, err: &fs.PathError{Op: "start gateway", Path: argv[0], Err: errors.Unwrap(err)}}
	}
	env := os.Environ()
	files := []uintptr{0, 1, 2}
	if lock != nil {
		env = gatewayEnv(env, map[string]string{"GWLOCK_LOCK_PATH": lockPath})
		files = append(files, uintptr(lock.f.fd))
	}
	pid, err := forkGateway(path, argv, &syscall.ProcAttr{
		Env:   env,
		Files: files,
		Sys:   gatewayProcAttr(),
	})
	if err != nil {
		code := exitNotExecutable
		if err == syscall.ENOENT {
			code = exitNotFound
		}
		return 0, &commandError{code: code, err: &fs.PathError{Op: "start gateway", Path: path, Err: err}}
	}
	return pid, nil
}

// sdNotify sends one datagram to systemd's $NOTIFY_SOCKET (abstract sockets
// start with '@'); without the variable it does nothing. Failures are ignored:
// readiness reporting must never stop the gateway.
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" || (!strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "@")) {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = conn.Write([]byte(state))
}
