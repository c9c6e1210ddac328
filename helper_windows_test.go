package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

var gatewaySignals = []os.Signal{os.Interrupt}

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func portOf(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// testClosedStderr runs gwlock with no standard error handle, as a service
// manager may start it, and with a stale one (a number that names no handle
// in gwlock, as a parent that closed its stderr passes on). The run must end
// as it would with a stderr: the gateway started, its exit code passed on,
// the lock file a clean payload while held, and removed afterwards. It fails
// if a missing stderr stops the gateway's start (exit 126), as os.StartProcess
// does for a handle it cannot duplicate. Wine 8 gives the child no handle
// (0) for a stale value, so under Wine both cases are the absent one.
func testClosedStderr(t *testing.T, dir string) {
	t.Helper()
	for _, tc := range []struct {
		name   string
		stderr windows.Handle
	}{{"absent", 0}, {"stale", staleHandle}} {
		lock := filepath.Join(dir, "closed-"+tc.name+".lock")
		snapshot := filepath.Join(dir, "snapshot-"+tc.name)
		exe := testBinary(t)
		code := runWithStderr(t, tc.stderr, exe, "helper:gwlock", "run", "--lock", lock, "--",
			exe, "helper:gateway", "-copy-lock", snapshot, "-exit", "5")
		if code != 5 {
			t.Fatalf("with stderr %s: exit %d, want the gateway's exit code 5", tc.name, code)
		}
		b := waitFile(t, snapshot)
		if _, err := parsePayload(b); err != nil {
			t.Fatalf("lock file held with stderr %s is not a clean payload: %q: %v", tc.name, b, err)
		}
		if _, err := os.Stat(lock); !os.IsNotExist(err) {
			t.Fatalf("with stderr %s: lock file left behind: %v", tc.name, err)
		}
	}
}

// staleHandle is a handle value far above any that a fresh process uses.
const staleHandle = windows.Handle(0x7ff0)

// runWithStderr runs argv with stdin and stdout absent and the given value
// as its standard error handle, inheriting nothing, and returns its exit code.
func runWithStderr(t *testing.T, stderr windows.Handle, argv ...string) int {
	t.Helper()
	app, _ := windows.UTF16PtrFromString(argv[0])
	cmdLine, _ := windows.UTF16PtrFromString(windows.ComposeCommandLine(argv))
	env, err := envBlock(cleanEnv())
	if err != nil {
		t.Fatal(err)
	}
	si := &windows.StartupInfo{Flags: windows.STARTF_USESTDHANDLES, StdErr: stderr}
	si.Cb = uint32(unsafe.Sizeof(*si))
	var pi windows.ProcessInformation
	if err := windows.CreateProcess(app, cmdLine, nil, nil, false, windows.CREATE_UNICODE_ENVIRONMENT, env, nil, si, &pi); err != nil {
		t.Fatal(err)
	}
	defer windows.CloseHandle(pi.Process)
	windows.CloseHandle(pi.Thread)
	if ev, _ := windows.WaitForSingleObject(pi.Process, uint32(helperDeadline/time.Millisecond)); ev != windows.WAIT_OBJECT_0 {
		windows.TerminateProcess(pi.Process, 1)
		t.Fatalf("%v did not end within %s", argv, helperDeadline)
	}
	var code uint32
	if err := windows.GetExitCodeProcess(pi.Process, &code); err != nil {
		t.Fatal(err)
	}
	return int(code)
}

func dieOfSignal(sig syscall.Signal) { os.Exit(128 + int(sig)) }

func noKernelLocksHere() {}

func holdExclusive(string) bool { return true }

func defaultLockDirIn(tmp string) string {
	return filepath.Join(tmp, "gwlock-"+os.Getenv("USERNAME"))
}

func startDaemon([]string) error { return errors.New("no daemons on Windows") }

func closeInheritedLock() {}

// Windows-only helpers: gwlock with a seam set, and a third-party reader.
func init() {
	helpers["gwlock-stall"] = helperGwlockStall
	helpers["gwlock-nojob"] = helperGwlockNoJob
	helpers["gwlock-scanned"] = helperGwlockScanned
	helpers["scanner"] = helperScanner
}

// helperGwlockStall is gwlock whose start of the gateway stops for good at
// step STEP ("assigned" or "resumed"), after writing the gateway's PID to
// PIDFILE: "helper:gwlock-stall STEP PIDFILE gwlock-args...". The test then
// kills it there, as an operator or OOM killer might.
func helperGwlockStall(args []string) int {
	step, pidfile := args[0], args[1]
	testHookGatewayStart = func(at string, pid int) {
		if at == step {
			appendLine(pidfile, strconv.Itoa(pid))
			select {}
		}
	}
	return cli(args[2:], os.Stdout, stderrWriter)
}

// helperGwlockNoJob is gwlock whose job assignment fails, after writing the
// gateway's PID to PIDFILE: "helper:gwlock-nojob PIDFILE gwlock-args...".
func helperGwlockNoJob(args []string) int {
	pidfile := args[0]
	assignProcessToJob = func(job, process windows.Handle) error {
		pid, _ := windows.GetProcessId(process)
		appendLine(pidfile, strconv.Itoa(int(pid)))
		return windows.ERROR_ACCESS_DENIED
	}
	return cli(args[1:], os.Stdout, stderrWriter)
}

// helperGwlockScanned is gwlock in whose first file operation OP ("lock new",
// "publish", "open", "remove") a scanner process opens the file with share mode SHARE
// and keeps it open for HOLD, as antivirus scanners and indexers do:
// "helper:gwlock-scanned OP SHARE HOLD RELEASE-LIMIT gwlock-args...".
func helperGwlockScanned(args []string) int {
	op, share, hold := args[0], args[1], args[2]
	limit, err := time.ParseDuration(args[3])
	if err != nil {
		return 2
	}
	releaseInUseLimit = limit
	var once sync.Once
	testHookFileOp = func(at, path string) {
		if at != op {
			return
		}
		once.Do(func() {
			exe, _ := os.Executable()
			cmd := exec.Command(exe, "helper:scanner", path, share, hold)
			out, _ := cmd.StdoutPipe()
			if cmd.Start() != nil {
				os.Exit(90)
			}
			line, _ := bufio.NewReader(out).ReadString('\n')
			if line != "open\n" {
				fmt.Fprintf(os.Stderr, "scanner could not open %s: %s\n", path, line)
				os.Exit(91)
			}
			go func() { _, _ = io.Copy(io.Discard, out); _ = cmd.Wait() }()
		})
	}
	return cli(args[4:], os.Stdout, stderrWriter)
}

// helperScanner opens PATH for reading with share mode SHARE (r, rw, or
// none; or lock: shared like gwlock's own handles, and holding the lock
// range, as another acquisition's sweep of temp files does), says "open" on
// stdout, and closes it after HOLD: "helper:scanner PATH SHARE HOLD".
func helperScanner(args []string) int {
	path, hold := args[0], args[2]
	d, err := time.ParseDuration(hold)
	if err != nil {
		return 2
	}
	if args[1] == "lock" {
		h, err := createFile(path, windows.OPEN_EXISTING)
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		if ok, err := (&lockFile{h: h}).lockRange(false); !ok {
			fmt.Println("error: lock range not taken:", err)
			return 1
		}
		fmt.Println("open")
		time.Sleep(d)
		windows.CloseHandle(h)
		return 0
	}
	share := map[string]uint32{"none": 0, "r": windows.FILE_SHARE_READ, "rw": windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE}[args[1]]
	p, _ := windows.UTF16PtrFromString(path)
	h, err := windows.CreateFile(p, windows.GENERIC_READ, share, nil, windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("open")
	time.Sleep(d)
	windows.CloseHandle(h)
	return 0
}
