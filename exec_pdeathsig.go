//go:build linux || freebsd

package main

import (
	"runtime"
	"sync"
	"syscall"
)

// gatewayProcAttr: the gateway gets its own process group and the stop
// signal when its launcher dies (SIGKILL, OOM), so it never lives on
// unsupervised. Linux sends the parent-death signal when the *thread* that
// forked exits (golang/go#27505), so every gateway is forked by forkGateway's
// one goroutine, locked to its OS thread for the launcher's whole life.
func gatewayProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

type forkRequest struct {
	path  string
	argv  []string
	attr  *syscall.ProcAttr
	reply chan forkReply
}

type forkReply struct {
	pid int
	err error
}

var (
	forkRequests = make(chan forkRequest)
	forkerOnce   sync.Once
)

// forkGateway runs ForkExec on the forker thread. The goroutine never returns
// and never unlocks its thread, so that thread exits only with the process.
func forkGateway(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	forkerOnce.Do(func() {
		go func() {
			runtime.LockOSThread()
			for r := range forkRequests {
				pid, err := syscall.ForkExec(r.path, r.argv, r.attr)
				r.reply <- forkReply{pid, err}
			}
		}()
	})
	reply := make(chan forkReply, 1)
	forkRequests <- forkRequest{path, argv, attr, reply}
	r := <-reply
	return r.pid, r.err
}
