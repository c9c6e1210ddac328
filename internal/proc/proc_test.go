package proc

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// helperEnv makes the test binary stand in for a process under test: it
// waits until its stdin closes, so the test decides when it ends.
const helperEnv = "PROC_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "wait" {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper is a running stand-in process; stop ends it and reaps it.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func mustStart(t *testing.T, setup func(*exec.Cmd)) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=wait")
	if setup != nil {
		setup(cmd)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin}
	t.Cleanup(h.stop)
	return h
}

func (h *helper) stop() {
	if h.stdin != nil {
		h.stdin.Close()
		h.cmd.Wait()
		h.stdin = nil
	}
}

func (h *helper) pid() int { return h.cmd.Process.Pid }

// deadPID is the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	h := mustStart(t, nil)
	h.stop()
	return h.pid()
}

func TestProbe(t *testing.T) {
	if st, err := Probe(os.Getpid()); st != Present || err != nil {
		t.Errorf("Probe(self) = %v, %v; want present", st, err)
	}
	if st, err := Probe(deadPID(t)); st != Absent || err != nil {
		t.Errorf("Probe(dead) = %v, %v; want absent", st, err)
	}
	for _, pid := range []int{0, -1} {
		if st, err := Probe(pid); st != Unknown || err == nil {
			t.Errorf("Probe(%d) = %v, %v; want unknown with a reason", pid, st, err)
		}
	}
}

// TestProbeZombie: an exited child nobody has reaped yet holds nothing.
func TestProbeZombie(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux tells a zombie apart")
	}
	h := mustStart(t, nil)
	h.stdin.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := Probe(h.pid())
		if st == Absent && err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Probe(zombie) = %v, %v; want absent", st, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.cmd.Wait()
	h.stdin = nil
}

// TestStartTime: the OS reports a start time for us, stable across calls,
// and none for a pid that does not exist.
func TestStartTime(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" && runtime.GOOS != "freebsd" && runtime.GOOS != "windows" {
		t.Skip("no start times on " + runtime.GOOS)
	}
	a, err := StartTime(os.Getpid())
	b, _ := StartTime(os.Getpid())
	if err != nil || a == "" || a != b {
		t.Fatalf("StartTime(self) = %q then %q (%v)", a, b, err)
	}
	if st, err := StartTime(deadPID(t)); err == nil {
		t.Errorf("StartTime(dead) = %q, want an error", st)
	}
	if st, err := StartTime(0); err == nil {
		t.Errorf("StartTime(0) = %q, want an error", st)
	}
}

// TestUnsupported: a fact the OS does not offer says so, never a false answer.
func TestUnsupported(t *testing.T) {
	if runtime.GOOS == "linux" {
		t.Skip("Linux offers every fact")
	}
	if _, err := Tagged("t", []int{0}, ""); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Tagged = %v, want unsupported", err)
	}
	if _, err := BootID(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("BootID = %v, want unsupported", err)
	}
	if _, err := Descendants(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Descendants = %v, want unsupported", err)
	}
}

func TestTaggedEmptyToken(t *testing.T) {
	if pid, err := Tagged("", []int{0}, ""); err == nil {
		t.Errorf("Tagged(\"\") = %d, nil; want an error", pid)
	}
}
