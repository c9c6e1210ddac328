package main

import (
	"errors"
	"fmt"
	"gwlock/internal/telemetry"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
)

// `gwlock run`: take the lock, hand it to the supervisor, release it once the
// gateway is gone. The errors that end a run and their codes are here too.

// commandError is a gateway that could not be started: 126 or 127.
type commandError struct {
	code int
	err  error
}

func (e *commandError) Error() string { return e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

// resourceError: the OS refused gwlock a resource it needed (a process, a
// thread, a descriptor, memory): exit 71, EX_OSERR, whatever the step. The
// line names the step and the resource, and the limit to raise.
type resourceError struct {
	op  string // what failed: "start gateway /usr/bin/gw: fork"
	err error
}

func (e *resourceError) Error() string {
	return fmt.Sprintf("%s: %v (hint: %s)", e.op, e.err, resourceHint(e.err))
}
func (e *resourceError) Unwrap() error { return e.err }

// isResourceErr reports whether err is the OS running out of something
// rather than refusing the request itself.
func isResourceErr(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EAGAIN, syscall.ENOMEM, syscall.EMFILE, syscall.ENFILE} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// osRefusal makes err, an error no step classified, a resourceError when
// it is the OS refusing a descriptor or memory (creating the lock file under
// ulimit -n): exit 71, as the contract says, not 1. EAGAIN is left out: a
// lock held by another is one too.
func osRefusal(op string, err error) error {
	if exitCode(err) != exitFailure {
		return err
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM} {
		if errors.Is(err, errno) {
			return &resourceError{op: op, err: err}
		}
	}
	return err
}

// resourceHint says which limit ran out.
func resourceHint(err error) string {
	switch {
	case errors.Is(err, syscall.EMFILE):
		return "too many open files in gwlock: raise ulimit -n"
	case errors.Is(err, syscall.ENFILE):
		return "the system's file table is full"
	case errors.Is(err, syscall.ENOMEM):
		return "out of memory: raise ulimit -v or free memory"
	}
	return "no process or thread left for this user: raise ulimit -u (RLIMIT_NPROC) or stop some of its processes"
}

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

// cmdRun is `gwlock run`. Before the fork, in order: the inits (the exec
// helper's mode, exec_deathpipe.go; runStartup's signals and self facts);
// parseFlags and validateRun (2); startPoller and reserveThreads
// (threads.go, else 71);
// GWLOCK_ALLOW_MULTI; backendFor (no config: 66), openLockDir (unsafe:
// 77), acquire (a live owner: 75); then supervise: subreaper, notify
// relay, checkPort (69), the environment, lookGateway (126/127) and
// forkGateway (exec_deathpipe.go: death pipe, exec helper, gateway).
func cmdRun(c *config, log *telemetry.Logger, stderr io.Writer) int {
	st := runStartup()
	startPoller()
	if err := reserveThreads(); err != nil {
		return fail(stderr, err)
	}
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
		printLine(stderr, "gwlock: run %s: stopped by %s before the gateway started", b.where(), signalName(sig))
		return signalExit(int(sig.(syscall.Signal)))
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
		return fail(stderr, osRefusal("run", err))
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
// or failing, so the IPv4 loopback is not checked alone.
func conflictHosts(host string) []string {
	if host == "127.0.0.1" || host == "localhost" {
		return []string{"127.0.0.1", "::1"}
	}
	return []string{host}
}
