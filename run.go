package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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

// errLockLost ends a run whose lock file was deleted or replaced under it.
var errLockLost = errors.New("lock lost: the lock path no longer names our file; gateway stopped")

func cmdRun(c *config, log *telemetry, stderr io.Writer) int {
	prepareRun() // normally already under way (init, cli)
	sigs, registered := runSignalsCh, signalsRegistered
	if os.Getenv("GWLOCK_ALLOW_MULTI") == "1" {
		log.warn("acquire-skipped", "reason", "GWLOCK_ALLOW_MULTI=1")
		code, err := supervise(c, nil, "", log, sigs, registered)
		if err != nil {
			return fail(stderr, err)
		}
		return code
	}
	t, err := openTarget(c, log)
	if err != nil {
		return fail(stderr, err)
	}
	opts := c.lockOptions(t, log)
	cancel, endWatch := watchStopSignals(sigs, registered)
	opts.Cancel, opts.CancelReady = cancel, registered
	opts.StopIfAlive = c.ifRunning == "ok"
	lock, err := acquire(opts)
	if sig := endWatch(); sig != nil {
		// Stopped before the gateway started: start nothing, leave nothing.
		if lock != nil {
			_ = lock.release(log)
		}
		fmt.Fprintf(stderr, "gwlock: run %s: stopped by %v before the gateway started\n", t.path, sig)
		return 128 + int(sig.(syscall.Signal))
	}
	var busy *busyError
	if errors.As(err, &busy) && c.ifRunning == "ok" && busy.Status.established() {
		// Idempotent start: a live owner is certain. An owner that cannot be
		// judged is no proof that a gateway runs: that waits and ends in 75.
		log.info("already-running", "lock", t.path, "owner_pid", busy.OwnerPID, "owner_status", string(busy.Status),
			gatewayKey(verdict{gatewayPID: busy.GatewayPID}), "waited_ms", ms(busy.Waited))
		return exitOK
	}
	if err != nil {
		return fail(stderr, err)
	}
	code, err := supervise(c, lock, t.path, log, sigs, registered)
	if rerr := lock.release(log); err == nil && rerr != nil {
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

// The signals run catches, registered by prepareRun.
var (
	runSignalsCh      = make(chan os.Signal, 64)
	signalsRegistered = make(chan struct{})
	registerOnce      sync.Once
)

// prepareRun starts, in the background, what run needs before its gateway
// can start: registering a signal takes a round trip per signal to the
// runtime's signal thread (about 50 us each here), and the payload needs
// /proc reads. Both then overlap parsing and the lock directory checks.
func prepareRun() {
	registerOnce.Do(func() {
		go func() {
			signal.Notify(runSignalsCh, runSignals...)
			close(signalsRegistered)
		}()
		go selfFacts()
	})
}

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
				if isStopSignal(s) {
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

// checkPort refuses to start a gateway whose port another process serves:
// it could not bind and would only crash-loop.
func checkPort(c *config, log *telemetry) error {
	if c.port == 0 || !portListening(c.host, c.port, probeTimeout) {
		return nil
	}
	log.error("port-conflict", "port", c.port, "host", c.host)
	return &portConflictError{host: c.host, port: c.port}
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

// shouldRestart applies --restart to an exit code.
func shouldRestart(policy string, code int) bool {
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

// gatewayEnv is base with every variable in set replaced, not appended: with
// duplicates, Go's os.Getenv and most C runtimes return the first entry, so a
// GWLOCK_LOCK_PATH inherited from an outer gwlock would win over ours.
func gatewayEnv(base []string, set map[string]string) []string {
	env := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		if !envSets(set, envName(kv)) {
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
