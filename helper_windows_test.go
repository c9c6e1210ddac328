package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

var gatewaySignals = []os.Signal{os.Interrupt}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func portOf(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

func testClosedStderr(t *testing.T, dir string) {
	t.Log("closing fd 2 needs a POSIX shell; covered on Linux")
}

func dieOfSignal(sig syscall.Signal) { os.Exit(128 + int(sig)) }

func noKernelLocksHere() {}

func holdExclusive(string) bool { return true }

func defaultLockDirIn(tmp string) string {
	return filepath.Join(tmp, "gwlock-"+os.Getenv("USERNAME"))
}

func startDaemon([]string) error { return errors.New("no daemons on Windows") }

func closeInheritedLock() {}
