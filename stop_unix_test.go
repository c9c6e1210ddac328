//go:build unix

package main

import (
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// How a stop reaches the gateway's whole tree: the stop signal to its
// process group, and SIGKILL repeated until no process of it is left.

func init() {
	helpers["family"] = helperFamily
	helpers["latespawner"] = helperLateSpawner
}

// helperFamily is a gateway whose main process ignores SIGTERM and leaves
// the drain to a worker in its process group: it starts the worker
// (helper:gateway with the arguments given) and exits 0 once the worker has.
func helperFamily(args []string) int {
	signal.Ignore(syscall.SIGTERM)
	exe, _ := os.Executable()
	worker := exec.Command(exe, append([]string{"helper:gateway"}, args...)...)
	worker.Stdout, worker.Stderr = os.Stdout, os.Stderr
	if worker.Start() != nil {
		return 3
	}
	_ = worker.Wait()
	return 0
}

// helperLateSpawner is a gateway whose main process exits at once, leaving
// a spawner in a session of its own. The spawner ignores SIGTERM, writes its
// pid to the file named first, and from its first SIGTERM on starts
// processes that sleep for the seconds named second, each in a session of
// its own, as fast as it can: while a
// SIGKILL sweep lists the tree and kills it, the spawner starts more that
// the sweep's list does not name.
func helperLateSpawner(args []string) int {
	exe, _ := os.Executable()
	if len(args) == 2 {
		spawner := exec.Command(exe, "helper:latespawner", args[0], args[1], "spawner")
		spawner.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if spawner.Start() != nil {
			return 3
		}
		return 0
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	appendLine(args[0], strconv.Itoa(os.Getpid()))
	<-sigs
	attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{Setsid: true}}
	for i := 0; i < 5000; i++ {
		_, _ = syscall.ForkExec("/bin/sleep", []string{"sleep", args[1]}, attr)
	}
	time.Sleep(helperDeadline)
	return 0
}

// TestStopSignalReachesGroup: a stop's signal goes to the gateway's process
// group, so a worker of the group drains on SIGTERM while its main process
// waits for it, and the run ends with the gateway's code, long before
// --stop-timeout. Fails when the signal goes to the main process's pid
// alone: the worker is SIGKILLed at --stop-timeout, never having seen SIGTERM.
func TestStopSignalReachesGroup(t *testing.T) {
	dir := lockDir(t)
	workerPid, workerSigs := filepath.Join(dir, "worker"), filepath.Join(dir, "worker-sigs")
	g := startHelper(t, "gwlock", nil, "run", "--lock", filepath.Join(dir, "g.lock"), "--stop-timeout", (eventWait / 2).String(),
		"--", testBinary(t), "helper:family", "-pidfile", workerPid, "-sigfile", workerSigs, "-drain", "50ms", "-sleep", "60s")
	g.waitEvent(t, "child-start")
	waitFile(t, workerPid) // written once its handlers are in place
	g.signal(t, syscall.SIGTERM)
	code, stderr := g.wait(t)
	if b, _ := os.ReadFile(workerSigs); code != 0 || string(b) != "terminated\n" {
		t.Fatalf("exit %d, worker's signals %q; want exit 0 after the worker drained on one SIGTERM\n%s", code, b, stderr)
	}
	if len(findEvents(parseLogfmt(stderr), "stop-escalated")) != 0 {
		t.Fatalf("the stop escalated to SIGKILL:\n%s", stderr)
	}
}

// TestEscalationKillsLateChildren: a spawner in a session of its own keeps
// starting processes while the SIGKILL sweep at --stop-timeout lists and
// kills the tree; those it started after the list was read survive the
// sweep. The stop must still end: SIGKILL comes again until none is left,
// gwlock exits and the lock is released. Fails with the sweep done
// once: the survivors keep gwlock, and the lock, forever.
func TestEscalationKillsLateChildren(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs a subreaper that lists its descendants: Linux")
	}
	if _, err := os.Stat("/bin/sleep"); err != nil {
		t.Skip("no /bin/sleep")
	}
	dir := lockDir(t)
	lock, spawner := filepath.Join(dir, "s.lock"), filepath.Join(dir, "spawner")
	// A sleep length no other test uses names the spawner's children.
	mark := "600." + strconv.Itoa(os.Getpid())
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--stop-timeout", "300ms",
		"--", testBinary(t), "helper:latespawner", spawner, mark)
	g.waitEvent(t, "gateway-descendants")
	waitFile(t, spawner)
	sid := readPIDs(t, spawner)[0]
	t.Cleanup(func() { _ = syscall.Kill(sid, syscall.SIGKILL); killSleepers(mark) })
	g.signal(t, syscall.SIGTERM)
	done := make(chan int, 1)
	go func() { code, _ := g.wait(t); done <- code }()
	select {
	case <-done:
	case <-time.After(eventWait):
		t.Fatalf("gwlock still stopping %s after SIGTERM: the spawner's late children outlived the SIGKILL sweep", eventWait)
	}
	if _, err := os.Lstat(lock); err == nil {
		t.Fatal("lock left after the stop")
	}
}

// killSleepers SIGKILLs every "sleep mark" (Linux: by /proc).
func killSleepers(mark string) {
	names, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, name := range names {
		if b, err := os.ReadFile(name); err == nil && string(b) == "sleep\x00"+mark+"\x00" {
			pid, _ := strconv.Atoi(strings.Split(name, "/")[2])
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestStopWhileWaitingNamesSignal: a stop signal to a run still waiting for
// the lock starts nothing, exits 128+N and names the signal as telemetry
// does (SIGTERM), not as Go prints it ("terminated").
func TestStopWhileWaitingNamesSignal(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "w.lock")
	h := startHelper(t, "holder", nil, "-lock", lock)
	waitStdout(t, h, "held")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT} {
		w := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--timeout", "60s", "--", "true")
		w.waitEvent(t, "acquire-contention")
		w.signal(t, sig)
		code, stderr := w.wait(t)
		want := "stopped by " + signalName(sig) + " before the gateway started"
		if code != signalExit(int(sig)) || !strings.Contains(stderr, want) {
			t.Fatalf("%s while waiting: exit %d, want %d and %q\n%s", signalName(sig), code, signalExit(int(sig)), want, stderr)
		}
	}
}
