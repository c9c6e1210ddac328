package main

import (
	"path/filepath"
	"syscall"
	"testing"

	"gwlock/internal/etcdtest"
)

// The death signal reaches the gateway's whole process group: the workers a
// gateway starts die with its launcher, as they stop with a live one's stop.

// TestLauncherKilledStopsWorkers: a gateway with a worker in its process
// group; its launcher is SIGKILLed. Both must end: under etcd (SIGKILL) a
// surviving worker would serve on, with the old fence, beside the gateway a
// standby starts once the lease expires; under the file backend (SIGTERM)
// it would keep the lock unsupervised. Fails with the death pipe owned by
// the main process alone: the worker lives on.
func TestLauncherKilledStopsWorkers(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		dir := lockDir(t)
		killLauncherWorkersGone(t, dir, "--lock", filepath.Join(dir, "g.lock"))
	})
	t.Run("etcd", func(t *testing.T) {
		c := etcdtest.Start(t, 1, "http")
		killLauncherWorkersGone(t, lockDir(t), "--backend", "etcd", "--etcd-endpoints", c.Endpoints()[0],
			"--lock-name", "workers")
	})
}

// killLauncherWorkersGone runs gwlock with runFlags and a gateway that starts
// a worker in its process group, SIGKILLs gwlock once both are up, and
// waits for both to be gone.
func killLauncherWorkersGone(t *testing.T, dir string, runFlags ...string) {
	t.Helper()
	pidfile, workerPidfile := filepath.Join(dir, "pid"), filepath.Join(dir, "worker")
	args := append(append([]string{"run"}, runFlags...), "--", testBinary(t), "helper:gateway",
		"-pidfile", pidfile, "-child-pidfile", workerPidfile, "-sleep", "60s")
	b := startHelper(t, "gwlock", nil, args...)
	waitFile(t, pidfile)
	waitFile(t, workerPidfile)
	gateway, worker := readPIDs(t, pidfile)[0], readPIDs(t, workerPidfile)[0]
	t.Cleanup(func() {
		_ = syscall.Kill(gateway, syscall.SIGKILL)
		_ = syscall.Kill(worker, syscall.SIGKILL)
	})
	if pgid, err := syscall.Getpgid(worker); err != nil || pgid != gateway {
		t.Fatalf("worker %d: process group %d (%v), want the gateway's %d", worker, pgid, err, gateway)
	}
	_ = b.cmd.Process.Kill()
	waitGone(t, gateway)
	waitGone(t, worker)
}
