//go:build unix && !linux && !freebsd

package main

import "syscall"

// gatewayProcAttr: macOS and the other BSDs have no parent-death signal. A
// gateway whose launcher is SIGKILLed lives on there, keeping the lock
// through its inherited descriptor (fd 3) until it exits; status reports it
// as orphaned.
func gatewayProcAttr(syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func forkGateway(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	return syscall.ForkExec(path, argv, attr)
}
