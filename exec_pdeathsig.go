//go:build linux || freebsd

package main

import (
	"runtime"
	"syscall"
)

// gatewayProcAttr: the gateway gets its own process group and the stop
// signal when its launcher dies (SIGKILL, OOM), so it never lives on
// unsupervised.
func gatewayProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
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
