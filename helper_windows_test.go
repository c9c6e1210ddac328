package main

import (
	"bufio"
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

	"golang.org/x/sys/windows"
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

// helperGwlockScanned is gwlock in whose first file operation OP ("publish",
// "open", "remove") a scanner process opens the file with share mode SHARE
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
// none), says "open" on stdout, and closes it after HOLD:
// "helper:scanner PATH SHARE HOLD".
func helperScanner(args []string) int {
	path, hold := args[0], args[2]
	d, err := time.ParseDuration(hold)
	if err != nil {
		return 2
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
