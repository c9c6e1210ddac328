//go:build unix

package main

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// runSignals are caught by run: TERM, INT and QUIT stop the gateway, HUP
// restarts it, USR1, USR2 and WINCH are forwarded. SIGCHLD is not needed: a
// goroutine waits in wait4.
var runSignals = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGQUIT, unix.SIGHUP,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

func signalRole(s os.Signal) sigRole {
	switch s {
	case unix.SIGTERM, unix.SIGINT, unix.SIGQUIT:
		return roleStop
	case unix.SIGHUP:
		return roleRestart
	}
	return roleForward
}

// stderrWriter writes to file descriptor 2 with write(2). Through os.Stderr,
// Go kills the process with SIGPIPE when fd 2 is a broken pipe; here the
// write just fails with EPIPE, which telemetry ignores (a log that cannot be
// written never changes a decision), and no
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

// gatewayTree is the gateway's process tree as POSIX lets gwlock hold it:
// the gateway leads a process group of its own, and gwlock is a subreaper
// where the OS allows (Linux, FreeBSD) or PID 1, so a daemon that forked and
// let its parent exit becomes gwlock's child and its exit is seen.
type gatewayTree struct {
	reapAll bool // PID 1 or subreaper: every orphan of the tree comes to us
	group   int  // the gateway's process group, 0 once the tree is gone
	// leaderGone: the group's leader, the gateway's main process, was
	// reaped, so its number is free for anyone once the group empties.
	leaderGone bool
	exits      chan childExit
	kick       chan struct{} // a child was started: reapEverything may wait again
	// disarm stops the current life's death signal once its tree is gone;
	// nil where the OS arms nothing that outlives the gateway.
	disarm func()

	// own are gwlock's children beside the gateway (startBeside), each
	// with where its exit goes: the reaper hands them back, and they are
	// never counted or recorded as the gateway's tree.
	mu  sync.Mutex
	own map[int]chan<- childExit
}

// stopSignal is the default of --stop-signal.
var stopSignal os.Signal = unix.SIGTERM

// killSignal ends a gateway that may not wait.
var killSignal os.Signal = unix.SIGKILL

// interruptPassesThrough: a SIGINT to gwlock reaches the gateway as SIGINT.
const interruptPassesThrough = true

// parseStopSignal reads --stop-signal as systemd's KillSignal= and Docker's
// STOPSIGNAL do: SIGTERM, TERM or 15.
func parseStopSignal(name string) (os.Signal, error) {
	sig, err := signalByName(name)
	if err != nil {
		return nil, err
	}
	switch sig {
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGCONT, unix.SIGCHLD, unix.SIGWINCH, unix.SIGURG:
		// Their default action is not to end the process: a gateway "stopped"
		// with one, or sent one by the kernel when its launcher dies, would
		// live on (frozen, or not at all stopped) beside a successor.
		return nil, errors.New("does not end a process by default (want e.g. SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1)")
	}
	return sig, nil
}

func signalByName(name string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(name); err == nil {
		if unix.SignalName(syscall.Signal(n)) == "" {
			return 0, errors.New("no such signal")
		}
		return syscall.Signal(n), nil
	}
	up := strings.ToUpper(name)
	if !strings.HasPrefix(up, "SIG") {
		up = "SIG" + up
	}
	if n := unix.SignalNum(up); n != 0 {
		return n, nil
	}
	return 0, errors.New("no such signal (want e.g. SIGTERM, SIGINT, 15)")
}

// signalName is a signal as telemetry writes it: SIGTERM.
func signalName(s os.Signal) string {
	if n, ok := s.(syscall.Signal); ok && unix.SignalName(n) != "" {
		return unix.SignalName(n)
	}
	return s.String()
}

func openGatewayTree(mustReap bool) (*gatewayTree, error) {
	t := &gatewayTree{reapAll: os.Getpid() == 1, exits: make(chan childExit, 64), kick: make(chan struct{}, 1),
		own: map[int]chan<- childExit{}}
	if err := setSubreaper(); err == nil {
		t.reapAll = true
	} else if mustReap {
		return nil, err
	}
	if t.reapAll {
		go t.reapEverything()
	}
	return t, nil
}

// start runs argv as the gateway, with fd, if inherit, as its fd 3, and
// deathSig as its parent-death signal where the OS has one.
func (t *gatewayTree) start(argv, env []string, fd uintptr, inherit bool, deathSig os.Signal) (int, error) {
	pid, disarm, err := startGateway(argv, env, fd, inherit, deathSig)
	if err != nil {
		return 0, err
	}
	t.group, t.leaderGone, t.disarm = pid, false, disarm
	if !t.reapAll {
		go func() { t.exits <- waitPID(pid) }()
		return pid, nil
	}
	t.kickReaper()
	return pid, nil
}

// kickReaper wakes a reaper that found no child at all.
func (t *gatewayTree) kickReaper() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// startBeside runs argv as gwlock's own child beside the gateway (a probe, a
// hook): outside the gateway's process group and tree, never recorded in
// the lock, and its exit delivered once on exited rather than to the
// supervisor. A process run this way must not leave children of its own:
// the reaper could not tell them from the gateway's.
func (t *gatewayTree) startBeside(argv, env []string) (int, <-chan childExit, error) {
	exited := make(chan childExit, 1)
	// Registered under mu before the reaper can look it up: the reaper
	// takes mu after wait4 returns, so even a child that exits at once is
	// found in own.
	t.mu.Lock()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}})
	if err == nil {
		t.own[pid] = exited
	}
	t.mu.Unlock()
	if err != nil {
		return 0, nil, &fs.PathError{Op: "start", Path: argv[0], Err: err}
	}
	if !t.reapAll {
		go func() { t.handBack(waitPID(pid)) }()
		return pid, exited, nil
	}
	t.kickReaper()
	return pid, exited, nil
}

// handBack delivers e to its starter if the process was started beside the
// gateway, and reports whether it was.
func (t *gatewayTree) handBack(e childExit) bool {
	t.mu.Lock()
	exited, ok := t.own[e.pid]
	delete(t.own, e.pid)
	t.mu.Unlock()
	if ok {
		exited <- e
	}
	return ok
}

// ownOnly reports whether every live child of gwlock's, where the OS can
// list them, was started beside the gateway: then the gateway's tree is
// gone although wait4 still finds children.
func (t *gatewayTree) ownOnly() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.own) == 0 {
		return false
	}
	pids := descendantPIDs()
	for _, pid := range pids {
		if _, ok := t.own[pid]; !ok {
			return false
		}
	}
	return len(pids) > 0
}

// notOwn is pids less those started beside the gateway.
func (t *gatewayTree) notOwn(pids []int) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := pids[:0]
	for _, pid := range pids {
		if _, ok := t.own[pid]; !ok {
			out = append(out, pid)
		}
	}
	return out
}

// signal sends sig to the gateway's process group and to others, the
// processes of the tree that left it (a daemon's setsid).
func (t *gatewayTree) signal(sig os.Signal, others []int) {
	// Once its leader was reaped, the group's number is signalled only while
	// a member in our session is left: an emptied group's number may lead
	// another user's group by now.
	if t.group > 0 && (!t.leaderGone || processGroupAlive(t.group, sessionID())) {
		_ = unix.Kill(-t.group, sig.(syscall.Signal))
	}
	for _, pid := range others {
		_ = unix.Kill(pid, sig.(syscall.Signal))
	}
}

func (t *gatewayTree) kill(others []int) { t.signal(unix.SIGKILL, others) }

// forward passes a signal to the gateway's main process alone.
func (t *gatewayTree) forward(pid int, sig os.Signal) { _ = unix.Kill(pid, sig.(syscall.Signal)) }

// children are the gateway's whole tree below gwlock, where the OS can list
// it, less the processes started beside the gateway.
func (t *gatewayTree) children() []int { return t.notOwn(descendantPIDs()) }

// mainExited: the gateway's main process, its group's leader, was reaped.
func (t *gatewayTree) mainExited() { t.leaderGone = true }

// ended: the tree is gone; its group id may be anyone's now, and its
// death signal must not outlive it.
func (t *gatewayTree) ended() {
	t.group = 0
	t.muteDeathSignal()
}

// muteDeathSignal: the current life's death signal is not to be sent.
func (t *gatewayTree) muteDeathSignal() {
	if t.disarm != nil {
		t.disarm()
		t.disarm = nil
	}
}

func (t *gatewayTree) close() {}

// waitPID waits in wait4 for one child alone, where gwlock is no
// subreaper: no SIGCHLD handler needed, and nothing else of ours is reaped.
func waitPID(pid int) childExit {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR || (err == nil && !ws.Exited() && !ws.Signaled()) {
			continue
		}
		return exitOf(got, ws)
	}
}

// reapEverything is the PID 1 (or subreaper) loop: it reaps every child,
// orphans adopted from the gateway included, so none stays a zombie; the
// children gwlock started beside the gateway are handed back (report). After
// each exit it collects the others already waiting without blocking, so the
// last report of a batch says whether any child at all remains.
func (t *gatewayTree) reapEverything() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case err == unix.EINTR:
		case err == unix.ECHILD:
			<-t.kick // no children at all until the next gateway starts
		case err != nil:
			return
		case ws.Exited() || ws.Signaled():
			t.report(reapMore([]childExit{exitOf(pid, ws)}))
		}
	}
}

// report hands the exits of processes started beside the gateway back and
// passes the others on; the last of them says whether the gateway's tree is
// empty: no child left (none), or only those started beside it.
func (t *gatewayTree) report(batch []childExit, none bool) {
	tree := batch[:0]
	for _, e := range batch {
		if !t.handBack(e) {
			tree = append(tree, e)
		}
	}
	empty := none || t.ownOnly()
	for i, e := range tree {
		e.treeKnown, e.treeEmpty = true, empty && i == len(tree)-1
		t.exits <- e
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
			batch = append(batch, exitOf(pid, ws))
		}
	}
}

// exitOf is a wait status as an exit: the code, signalExit(N) if signal N killed it.
func exitOf(pid int, ws unix.WaitStatus) childExit {
	if ws.Signaled() {
		return childExit{pid: pid, code: signalExit(int(ws.Signal())), signal: int(ws.Signal())}
	}
	return childExit{pid: pid, code: ws.ExitStatus()}
}

// startGateway runs argv directly (no shell) in its own process group, with
// env, and fd as its fd 3 if inherit: the lock, shared by inheritance. It
// returns how to disarm the gateway's death signal (nil: nothing to do).
func startGateway(argv, env []string, fd uintptr, inherit bool, deathSig os.Signal) (int, func(), error) {
	path, err := lookGateway(argv[0])
	if err != nil {
		return 0, nil, err
	}
	files := []uintptr{0, 1, 2}
	if inherit {
		files = append(files, fd)
	}
	pid, disarm, err := forkGateway(path, argv, env, files, deathSig.(syscall.Signal))
	if err != nil {
		return 0, nil, startError(path, err)
	}
	return pid, disarm, nil
}

// startError is why the gateway could not be started, with its exit code:
// a program that is not there (127) or cannot run (126) is the command's
// fault; a fork the OS refused (no process, descriptor or memory left) is
// not, and says so (71).
func startError(path string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return &commandError{code: exitNotFound, err: &fs.PathError{Op: "start gateway", Path: path, Err: err}}
	case isResourceErr(err):
		if errno, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError("fork", errno)
		}
		return &resourceError{op: "start gateway " + path, err: err}
	}
	return &commandError{code: exitNotExecutable, err: &fs.PathError{Op: "start gateway", Path: path, Err: err}}
}
