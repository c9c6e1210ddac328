package main

import (
	"fmt"
	"gwlock/internal/telemetry"
	"io"
	"io/fs"
	"time"
)

// The seam between a lock and a supervised gateway. A lockBackend is where
// locks live: the file lock on this host is the first; the supervisor, status
// and unlock know nothing else of it. A holder is one lock held: it says when
// it is lost, what the gateway must be told, and lets go.
//
// To add a backend: implement lockBackend and holder (and treeHolder if the
// gateway inherits the lock), accept its name in checkBackendName, build it
// in backendFor below (a lock on another host stands on the local file lock
// inside a stackedBackend, so one contender per host reaches it), register
// its flags from config.flags as etcd_flags.go does, and say in
// supervisor.deathSignal whether a launcher's death must kill its gateway
// at once (a lock other hosts wait on: nothing else keeps them out).
type lockBackend interface {
	// acquire takes the lock as req says, emitting the acquire-* events. A
	// live owner when the time is up (or at once, with StopIfAlive) is a
	// *busyError; a stop signal while waiting is errCanceled.
	acquire(req acquireRequest) (holder, error)
	// status prints who holds the lock and returns the LSB code.
	status(stdout, stderr io.Writer, asJSON bool) int
	// unlock removes a lock whose owner is provably gone, never a live one.
	unlock(log *telemetry.Logger, stderr io.Writer) int
	// where names the lock for people: a path, a key.
	where() string
}

// acquireRequest is how long and how to wait for a lock.
type acquireRequest struct {
	Timeout time.Duration // 0: try once
	Log     *telemetry.Logger
	// Cancel is closed by a stop signal; CancelReady once Cancel can fire.
	Cancel, CancelReady <-chan struct{}
	// StopIfAlive returns the busy result as soon as a live owner is
	// established (--if-running ok), instead of waiting out Timeout.
	StopIfAlive bool
}

// holder is a lock held, as the supervisor sees it.
type holder interface {
	// lost delivers, once, why the lock was lost; the holder has already
	// said so in one lock-lost line.
	lost() <-chan string
	// gatewayEnv is what the gateway is told about its lock.
	gatewayEnv() map[string]string
	// setGateway records the gateway's main process (0: none now).
	setGateway(pid int)
	// setRestarting records that no gateway runs until at, after one that
	// exited with lastExit: status then says restarting, not running.
	setRestarting(at time.Time, lastExit int)
	// runtimeSocket is a socket name beside the lock (suffix): path for
	// others to send to, at most max bytes long, and bindPath to bind it
	// by, with any leftover of an earlier holder removed; remove deletes it.
	runtimeSocket(suffix string, max int) (path, bindPath string, remove func(), err error)
	// release lets go of the lock once the gateway is gone.
	release(log *telemetry.Logger) error
	// where names the lock for people: a path, a key.
	where() string
}

// treeHolder is a holder whose gateway inherits the lock itself (the file
// lock's descriptor, fd 3), so the gateway's descendants share it.
type treeHolder interface {
	holder
	// inheritedFD is the descriptor the gateway inherits, where the OS
	// passes the lock on (not Windows: a LockFileEx lock is the process's).
	inheritedFD() (uintptr, bool)
	// setDescendants records the gateway's other live processes.
	setDescendants(pids []int)
	// othersHold says whether other processes still share the lock; then
	// waitAlone waits them out.
	othersHold() (bool, error)
	waitAlone() error
	// sharers names the processes that share the lock, where the OS can tell.
	sharers() []int
}

// checkBackendName refuses a --backend that names no backend.
func checkBackendName(name string) error {
	if name != "file" && name != "etcd" {
		return usagef("bad --backend %q: want file or etcd", name)
	}
	return nil
}

// fileBackend is the lock file named by --config or --lock.
type fileBackend struct {
	c *config
	t lockTarget
}

func newFileBackend(c *config) (*fileBackend, error) {
	t, err := c.target()
	if err != nil {
		return nil, err
	}
	return &fileBackend{c: c, t: t}, nil
}

func (b *fileBackend) acquire(req acquireRequest) (holder, error) {
	d, err := openLockDir(b.t.dir, b.t.explicit, true, req.Log)
	if err != nil {
		return nil, err
	}
	c := b.c
	l, err := acquire(lockOptions{Path: b.t.path, Dir: d, ConfigPath: b.t.name, Port: c.port, Host: c.host,
		Timeout: req.Timeout, Poll: c.poll, Stale: c.stale, Log: req.Log, Cancel: req.Cancel,
		CancelReady: req.CancelReady, StopIfAlive: req.StopIfAlive, facts: hostProbe{probeHost: c.host}})
	if err != nil {
		return nil, err
	}
	return newFileHold(l, c.stale/3, req.Log), nil
}

func (b *fileBackend) where() string { return b.t.path }

func (b *fileBackend) status(stdout, stderr io.Writer, asJSON bool) int {
	return statusOf(b.c, b.t, stdout, stderr, asJSON)
}

func (b *fileBackend) unlock(log *telemetry.Logger, stderr io.Writer) int {
	return unlockOf(b.c, b.t, log, stderr)
}

// fileHold is a held lock file with its heartbeat: every --stale/3 it checks
// that the path still names our file and refreshes its mtime; a loss is said
// once and delivered on lost.
type fileHold struct {
	*heldLock
	lostCh chan string
	quit   chan struct{}
}

func newFileHold(l *heldLock, every time.Duration, log *telemetry.Logger) *fileHold {
	h := &fileHold{heldLock: l, lostCh: make(chan string, 1), quit: make(chan struct{})}
	go h.heartbeat(every, log)
	return h
}

func (h *fileHold) heartbeat(every time.Duration, log *telemetry.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.quit:
			return
		case <-t.C:
		}
		if ok, _ := h.check(); !ok && h.reportLost(log) {
			h.lostCh <- lostReason
			return
		}
	}
}

func (h *fileHold) lost() <-chan string { return h.lostCh }

func (h *fileHold) where() string { return h.path }

func (h *fileHold) gatewayEnv() map[string]string {
	return map[string]string{"GWLOCK_LOCK_PATH": h.path, "GWLOCK_LOCK_TOKEN": h.payload.Token}
}

func (h *fileHold) setGateway(pid int) { _ = h.setChild(pid) }

func (h *fileHold) setDescendants(pids []int) { _ = h.heldLock.setDescendants(pids) }

func (h *fileHold) setRestarting(at time.Time, lastExit int) {
	_ = h.heldLock.setRestarting(at, lastExit)
}

// runtimeSocket: the lock's directory is ours and checked, and holding the
// lock makes a leftover socket of the same name an earlier holder's.
func (h *fileHold) runtimeSocket(suffix string, max int) (string, string, func(), error) {
	name := h.base + suffix
	path := h.dir.join(name)
	if len(path) > max {
		return "", "", nil, &fs.PathError{Op: "bind notify socket", Path: path,
			Err: fmt.Errorf("longer than the %d bytes a socket address holds (hint: a shorter --lock-dir)", max)}
	}
	if err := clearSocket(h.dir, name); err != nil {
		return "", "", nil, &fs.PathError{Op: "remove old notify socket", Path: path, Err: err}
	}
	return path, socketBindPath(h.dir, name), func() { _ = clearSocket(h.dir, name) }, nil
}

func (h *fileHold) inheritedFD() (uintptr, bool) { return h.f.inheritable() }

func (h *fileHold) release(log *telemetry.Logger) error {
	select {
	case <-h.quit:
	default:
		close(h.quit)
	}
	return h.heldLock.release(log)
}

// stackedBackend takes the local file lock first, so one host has one
// contender for a key, then the remote lock (etcd). Status is the remote
// lock's; unlock removes only a dead local owner's file.
type stackedBackend struct {
	local  *fileBackend
	remote lockBackend
}

func (b *stackedBackend) acquire(req acquireRequest) (holder, error) {
	start := time.Now()
	quiet := req
	// The acquire-* lines are the remote lock's, but a wait on the local
	// lock (another contender of this host, or a tree left by a killed
	// launcher) says whom it waits for: with no --timeout it has no end.
	quiet.Log = req.Log.WarnOnly("acquire-contention")
	local, err := b.local.acquire(quiet)
	if err != nil {
		return nil, err
	}
	if req.Timeout -= time.Since(start); req.Timeout < 0 {
		req.Timeout = 0
	}
	remote, err := b.remote.acquire(req)
	if err != nil {
		_ = local.release(nil)
		return nil, err
	}
	return newStackedHold(local.(*fileHold), remote), nil
}

func (b *stackedBackend) status(stdout, stderr io.Writer, asJSON bool) int {
	return b.remote.status(stdout, stderr, asJSON)
}

func (b *stackedBackend) unlock(log *telemetry.Logger, stderr io.Writer) int {
	return b.local.unlock(log, stderr)
}

func (b *stackedBackend) where() string { return b.remote.where() }

// stackedHold is both locks held: the gateway inherits the local one (its
// tree keeps it), and is told about the remote one. Losing either is losing.
// The local lock's payload tells status about a restart backoff and its
// directory holds the notify socket (setRestarting, runtimeSocket).
type stackedHold struct {
	*fileHold
	remote holder
	lostCh chan string
}

func newStackedHold(local *fileHold, remote holder) *stackedHold {
	h := &stackedHold{fileHold: local, remote: remote, lostCh: make(chan string, 1)}
	go func() {
		select {
		case why := <-local.lost():
			h.lostCh <- why
		case why := <-remote.lost():
			h.lostCh <- why
		}
	}()
	return h
}

func (h *stackedHold) lost() <-chan string { return h.lostCh }

func (h *stackedHold) where() string { return h.remote.where() }

func (h *stackedHold) gatewayEnv() map[string]string {
	env := h.fileHold.gatewayEnv()
	for k, v := range h.remote.gatewayEnv() {
		env[k] = v
	}
	return env
}

func (h *stackedHold) setGateway(pid int) {
	h.fileHold.setGateway(pid)
	h.remote.setGateway(pid)
}

// activeStatus passes on the remote lock's systemd status line, if any.
func (h *stackedHold) activeStatus() string {
	if a, ok := h.remote.(interface{ activeStatus() string }); ok {
		return a.activeStatus()
	}
	return ""
}

// release lets the remote lock go first, then the local one: a contender on
// this host that gets the local lock then finds the remote one free.
func (h *stackedHold) release(log *telemetry.Logger) error {
	rerr := h.remote.release(log)
	if err := h.fileHold.release(log); err != nil {
		return err
	}
	return rerr
}

// backendFor is the backend the command line names. The etcd backend stands
// on the local file lock: one contender per host for one key.
func backendFor(c *config, log *telemetry.Logger) (lockBackend, error) {
	local, err := newFileBackend(c)
	if err != nil || c.backend != "etcd" {
		return local, err
	}
	remote, err := newEtcdBackend(c.etcd, log)
	if err != nil {
		return nil, err
	}
	remote.Notify = sdNotify
	return &stackedBackend{local: local, remote: remote}, nil
}
