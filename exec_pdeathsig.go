//go:build freebsd

package main

import (
	"runtime"
	"syscall"
)

// forkGateway starts path as the gateway in its own process group, with
// deathSig as its parent-death signal (procctl PROC_PDEATHSIG_CTL): FreeBSD
// sends it once, when the parent process exits (a child belongs to the
// process there, not to one of its threads). A fork clears it, so it reaches
// the gateway's main process alone; whether it survives the gateway's change
// of uid is not verified on FreeBSD. There is nothing to disarm: it dies
// with the gateway.
//
// The fork runs on a thread that lives as long as the launcher, as on Linux
// (golang/go#27505): the calling goroutine stays locked to its thread.
func forkGateway(path string, argv, env []string, files []uintptr, deathSig syscall.Signal) (int, func(), error) {
	runtime.LockOSThread()
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: env, Files: files,
		Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}})
	return pid, nil, err
}
