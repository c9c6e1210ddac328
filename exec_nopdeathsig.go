//go:build unix && !linux && !freebsd

package main

import "syscall"

// forkGateway starts path as the gateway in its own process group. macOS
// and the other BSDs have no parent-death signal, and their pipes signal
// O_ASYNC owners with SIGIO alone (no F_SETSIG): a gateway whose launcher
// is SIGKILLed gets no signal at all there and lives on, keeping the lock
// through its inherited descriptor (fd 3) until it exits; status reports it
// as orphaned.
func forkGateway(path string, argv, env []string, files []uintptr, _ syscall.Signal) (int, func(), error) {
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: env, Files: files,
		Sys: &syscall.SysProcAttr{Setpgid: true}})
	return pid, nil, err
}
