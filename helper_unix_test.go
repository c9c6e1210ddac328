//go:build unix

package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

var gatewaySignals = []os.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGINT, syscall.SIGQUIT}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func portOf(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// testClosedStderr runs gwlock with file descriptor 2 closed. The lock file
// must not receive telemetry (a closed fd 2 reused by the lock file would),
// and the run must end as it would with a stderr.
func testClosedStderr(t *testing.T, dir string) {
	t.Helper()
	lock := filepath.Join(dir, "closed.lock")
	snapshot := filepath.Join(dir, "snapshot")
	// The gateway copies the lock file while it is held.
	cmd := helperCmd(t, "gwlock")
	script := `exec 2>&-; exec "$0" helper:gwlock run --lock "$1" -- "$0" helper:gateway -copy-lock "$2" -exit 5`
	cmd.Path = "/bin/sh"
	cmd.Args = []string{"sh", "-c", script, testBinary(t), lock, snapshot}
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Fatalf("with stderr closed: %v, want the gateway's exit code 5", err)
	}
	b := waitFile(t, snapshot)
	if _, err := parsePayload(b); err != nil {
		t.Fatalf("lock file held with stderr closed is not a clean payload: %q: %v", b, err)
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Fatalf("lock file left behind: %v", err)
	}
}

// dieOfSignal ends the process by sig's default action, so the parent sees
// "killed by sig", not an exit code.
func dieOfSignal(sig syscall.Signal) {
	signal.Reset(sig)
	_ = syscall.Kill(os.Getpid(), sig)
	select {}
}

// holdExclusive takes a non-blocking POSIX record lock on marker and keeps
// it for the process's life. A record lock is dropped synchronously when its
// holder dies, before any flock is, so a failure means two gateways overlap.
func holdExclusive(marker string) bool {
	f, err := os.OpenFile(marker, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return false
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		appendLine(marker+".violations", "VIOLATION gateway "+strconv.Itoa(os.Getpid()))
		return false
	}
	exclusiveMarker = f // keep it open, and locked, until we exit
	return true
}

var exclusiveMarker *os.File

// defaultLockDirIn is the default lock dir when the environment names tmp as
// the temp dir. POSIX ignores it: root's is /run/gwlock, others' /tmp/gwlock-<uid>.
func defaultLockDirIn(tmp string) string {
	if os.Geteuid() != 0 {
		return filepath.Join("/tmp", "gwlock-"+strconv.Itoa(os.Geteuid()))
	}
	if fi, err := os.Stat("/run"); err == nil && fi.IsDir() {
		return "/run/gwlock"
	}
	return "/var/run/gwlock"
}

// startDaemon is the classic daemon start: a copy of the gateway in a session
// of its own (out of gwlock's process group), inheriting the lock descriptor,
// while the caller exits at once.
func startDaemon(args []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, append([]string{"helper:gateway"}, args...)...)
	cmd.ExtraFiles = []*os.File{os.NewFile(3, "lock")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd.Start()
}

func closeInheritedLock() { _ = syscall.Close(3) }

// skipIfNot skips on platforms where a claim cannot be exercised, saying why.
func requireLinux(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("needs Linux (%s)", runtime.GOOS)
	}
}

// testSeed seeds a randomised test: GWLOCK_TEST_SEED replays a failure, and
// the seed in use is always logged so that any run can be replayed.
func testSeed(t testing.TB) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if v, err := strconv.ParseInt(os.Getenv("GWLOCK_TEST_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("random seed %d (GWLOCK_TEST_SEED=%d replays this run)", seed, seed)
	return seed
}

// existingConfig is a config file for tests about something else: run
// refuses a config that names no file (exit 66).
func existingConfig(t *testing.T) string {
	t.Helper()
	cfg := filepath.Join(tempDir(t), "gw.json")
	writeLockFile(t, cfg, []byte("{}"), 0)
	return cfg
}
