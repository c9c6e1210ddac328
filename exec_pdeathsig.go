//go:build linux || freebsd

package main

import (
	"runtime"
	"syscall"
)

// gatewayProcAttr: the gateway gets its own process group and its stop
// signal (--stop-signal: a dying launcher asks for the same graceful stop as
// a live one) when its launcher dies (SIGKILL, OOM), so it never lives on
// unsupervised.
func gatewayProcAttr(stop syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: stop}
}

// forkGateway forks on a thread that lives as long as the launcher: Linux
// sends the parent-death signal when the *thread* that forked exits
// (golang/go#27505), and the Go runtime retires idle threads. The calling
// goroutine, run's main goroutine, is locked to its thread from the first
// fork on and never unlocked, so every gateway is forked from that one thread
// and no goroutine switch is paid per start (a forking goroutine of its own
// cost about 0.4 ms a start on two loaded cores).
func forkGateway(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	runtime.LockOSThread()
	return syscall.ForkExec(path, argv, attr)
}
