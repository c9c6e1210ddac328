//go:build unix

package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// forwardedSignals reach the gateway as they are; stopSignals also end the run.
var (
	forwardedSignals = []os.Signal{unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}
	stopSignals      = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGQUIT}
)

// ignoreBrokenPipe catches SIGPIPE so that a write to a closed stderr pipe
// fails with EPIPE instead of killing gwlock (Invariant 6). signal.Notify,
// not signal.Ignore: an ignored disposition would be inherited by the gateway.
func ignoreBrokenPipe() {
	signal.Notify(make(chan os.Signal, 1), unix.SIGPIPE)
}

// supervise starts the gateway and stays with it until it is gone for good,
// applying the restart policy, forwarding signals, reporting readiness and
// checking the lock. It returns the code gwlock should exit with.
//
// Invariant 2: the gateway inherits the lock's descriptor (as fd 3), so the
// kernel lock lives exactly as long as the launcher or the gateway does. If the
// launcher is SIGKILLed, a second starter finds the lock still held and waits;
// no second gateway can start while the first lives. Pdeathsig was rejected:
// it follows the creating thread, not the process (golang/go#27505).
func supervise(c *config, lock *heldLock, lockPath string, log *telemetry) (int, error) {
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, append(append([]os.Signal{unix.SIGHUP, unix.SIGCHLD}, forwardedSignals...), stopSignals...)...)
	defer signal.Stop(sigs)

	reapAll := os.Getpid() == 1
	if c.subreaper {
		if err := setSubreaper(); err != nil {
			return exitFailure, err
		}
		reapAll = true
	}

	s := &supervisor{c: c, lock: lock, lockPath: lockPath, log: log, reapAll: reapAll}
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
		case sig := <-sigs:
			if done, code, err := s.onSignal(sig.(syscall.Signal)); done {
				return code, err
			}
		case <-s.stopTimer:
			s.stopTimer = nil
			if s.child > 0 {
				_ = unix.Kill(-s.child, unix.SIGKILL)
			}
		case <-heartbeat:
			if ok, _ := lock.check(); !ok && !s.lost {
				s.lost = true
				lock.markLost()
				log.error("lock-lost", "lock", lockPath, "reason", "path no longer names our lock file")
				if s.child == 0 {
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
	reapAll  bool // PID 1 or subreaper: reap every adopted zombie

	child      int // the gateway's pid (and process group), 0 when none
	started    time.Time
	restarts   int
	lastCode   int
	stopping   bool // a stop signal or lock loss: no restart
	restarting bool // SIGHUP: start again as soon as the gateway is gone
	lost       bool
	stopTimer  <-chan time.Time
	backoff    <-chan time.Time
	ready      chan time.Duration
	childGone  chan struct{}
}

func (s *supervisor) start() error {
	if err := checkPort(s.c, s.log); err != nil {
		return err
	}
	pid, err := startGateway(s.c.command, s.lock, s.lockPath)
	if err != nil {
		return err
	}
	s.child, s.started = pid, time.Now()
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

// stop signals the gateway's process group and arms the SIGKILL timer.
func (s *supervisor) stop(sig syscall.Signal) {
	if s.child == 0 {
		return
	}
	_ = unix.Kill(-s.child, sig)
	if s.stopTimer == nil {
		s.stopTimer = time.After(s.c.stopTimeout)
	}
}

func (s *supervisor) onSignal(sig syscall.Signal) (done bool, code int, err error) {
	switch sig {
	case unix.SIGCHLD:
		return s.reap()
	case unix.SIGHUP:
		if s.child == 0 {
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
		if s.child == 0 {
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

// reap collects every exited child (all adopted orphans too when PID 1 or a
// subreaper) and decides what the gateway's exit means.
func (s *supervisor) reap() (bool, int, error) {
	for {
		var ws unix.WaitStatus
		target := s.child
		if s.reapAll {
			target = -1
		}
		if target == 0 {
			return false, 0, nil
		}
		pid, err := unix.Wait4(target, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return false, 0, nil
		}
		if pid != s.child {
			continue // an adopted orphan, now reaped
		}
		if !ws.Exited() && !ws.Signaled() {
			continue
		}
		if done, code, err := s.gatewayExited(ws); done {
			return done, code, err
		}
	}
}

func (s *supervisor) gatewayExited(ws unix.WaitStatus) (bool, int, error) {
	code, sig := ws.ExitStatus(), 0
	if ws.Signaled() {
		sig = int(ws.Signal())
		code = 128 + sig
	}
	uptime := time.Since(s.started)
	s.log.info("child-exit", "pid", s.child, "code", code, "signal", sig, "uptime_ms", ms(uptime))
	close(s.childGone)
	s.child, s.stopTimer, s.lastCode = 0, nil, code
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
		env = append(env, "GWLOCK_LOCK_PATH="+lockPath)
		files = append(files, uintptr(lock.f.fd))
	}
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true},
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
