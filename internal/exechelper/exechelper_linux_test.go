package exechelper

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// gatewayVar makes the test binary the gateway: it lists the descriptors
// it was given on stderr, each as "fd target", and exits 0. It probes the
// numbers rather than read /proc/self/fd, whose own descriptor would be
// listed.
const gatewayVar = "EXECHELPER_TEST_GATEWAY"

func TestMain(m *testing.M) {
	if os.Getenv(gatewayVar) == "1" {
		for fd := range 32 {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
				target, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
				fmt.Fprintf(os.Stderr, "%d %s\n", fd, target)
			}
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestProgramMatchesSource: the bytes are what testdata/helper_amd64.S
// assembles to, so the source a reviewer reads is the code that runs.
func TestProgramMatchesSource(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the program exists for amd64 only")
	}
	as, err1 := exec.LookPath("as")
	objcopy, err2 := exec.LookPath("objcopy")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("GNU as and objcopy (binutils) are needed to check the program against its source")
		}
		t.Skip("no binutils to assemble testdata/helper_amd64.S")
	}
	dir := t.TempDir()
	obj, bin := filepath.Join(dir, "h.o"), filepath.Join(dir, "h.bin")
	for _, argv := range [][]string{{as, "--64", "-o", obj, "testdata/helper_amd64.S"}, {objcopy, "-O", "binary", "-j", ".text", obj, bin}} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
	}
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(code, want) {
		t.Fatalf("code differs from testdata/helper_amd64.S assembled (%d bytes vs %d): regenerate program_linux_amd64.go", len(code), len(want))
	}
}

// helperRun is one start of the helper with the descriptors it expects.
type helperRun struct {
	pid          int
	report       int      // gwlock's end of the report socket
	stderr       *os.File // what the gateway writes to fd 2
	readEnd, wrt *os.File
}

// startHelper starts the helper from Load's memfd to execute path with
// argv, given stdin, stdout and one more descriptor (n = 4).
func startHelper(t *testing.T, path string, argv []string) *helperRun {
	t.Helper()
	prog, err := Load()
	if err != nil {
		t.Skip("no helper here: ", err)
	}
	t.Cleanup(func() { prog.Close() })
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	extra, _ := os.Open(os.DevNull)
	const n = 4
	files := []uintptr{0, 1, 2, extra.Fd(), rd.Fd(), wr.Fd(), uintptr(sp[1]), errW.Fd(), prog.Fd()}
	pid, err := syscall.ForkExec("/proc/self/fd/"+strconv.Itoa(n+4), append([]string{"helper", strconv.Itoa(n), path}, argv...),
		&syscall.ProcAttr{Env: append(os.Environ(), gatewayVar+"=1"), Files: files, Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}})
	unix.Close(sp[1])
	errW.Close()
	extra.Close()
	if err != nil {
		t.Fatal(err)
	}
	h := &helperRun{pid: pid, report: sp[0], stderr: errR, readEnd: rd, wrt: wr}
	t.Cleanup(func() { unix.Close(h.report); rd.Close(); wr.Close(); errR.Close() })
	return h
}

// finish reads the report to its end and reaps the helper (or the gateway
// it became).
func (h *helperRun) finish(t *testing.T) (report string, exit int) {
	t.Helper()
	var buf bytes.Buffer
	b := make([]byte, 64)
	for {
		n, err := unix.Read(h.report, b)
		if n <= 0 || err != nil {
			break
		}
		buf.Write(b[:n])
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(h.pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	return buf.String(), ws.ExitStatus()
}

// TestExecutesOnWord: after 'g' the gateway runs with stdin, stdout, its
// stderr, the extra descriptor and the read end, and nothing of the
// helper's own: no write end, no report socket, no program.
func TestExecutesOnWord(t *testing.T) {
	self, _ := os.Executable()
	h := startHelper(t, self, []string{"gateway"})
	if _, err := unix.Write(h.report, []byte{'g'}); err != nil {
		t.Fatal(err)
	}
	report, exit := h.finish(t)
	if report != "x" || exit != 0 {
		t.Fatalf("report %q, exit %d; want \"x\", 0", report, exit)
	}
	fds := map[string]string{}
	out, _ := readAll(h.stderr)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		fd, target, _ := strings.Cut(line, " ")
		fds[fd] = target
	}
	for _, fd := range []string{"0", "1", "2", "3", "4"} {
		if fds[fd] == "" {
			t.Errorf("fd %s missing in the gateway: %v", fd, fds)
		}
	}
	if !strings.HasPrefix(fds["4"], "pipe:") {
		t.Errorf("fd 4 = %q, want the death pipe's read end", fds["4"])
	}
	for _, fd := range []string{"5", "6", "8"} {
		if target, ok := fds[fd]; ok {
			t.Errorf("the helper's fd %s (%s) reached the gateway", fd, target)
		}
	}
}

// TestNothingRunsWithoutWord: a report socket that ends before 'g' (gwlock
// died before arming), or brings another byte, ends the helper with 1 and
// no gateway.
func TestNothingRunsWithoutWord(t *testing.T) {
	self, _ := os.Executable()
	for _, word := range []string{"", "q"} {
		h := startHelper(t, self, []string{"gateway"})
		if word != "" {
			_, _ = unix.Write(h.report, []byte(word))
		}
		_ = unix.Shutdown(h.report, unix.SHUT_WR)
		report, exit := h.finish(t)
		if out, _ := readAll(h.stderr); report != "" || exit != 1 || out != "" {
			t.Errorf("word %q: report %q, exit %d, gateway said %q; want nothing, 1, nothing", word, report, exit, out)
		}
	}
}

// TestExecFailureReported: a gateway that cannot be executed is reported
// with its errno after the 'x', and the helper exits 126.
func TestExecFailureReported(t *testing.T) {
	for path, errno := range map[string]syscall.Errno{"/nonexistent/gateway": syscall.ENOENT, t.TempDir(): syscall.EACCES} {
		h := startHelper(t, path, []string{"gateway"})
		_, _ = unix.Write(h.report, []byte{'g'})
		report, exit := h.finish(t)
		if want := "x\x00errno=" + strconv.Itoa(int(errno)) + "\n"; report != want || exit != 126 {
			t.Errorf("%s: report %q, exit %d; want %q, 126", path, report, exit, want)
		}
	}
}

// TestBadArguments: a count that is not a number of at least 3, or no path,
// executes nothing.
func TestBadArguments(t *testing.T) {
	prog, err := Load()
	if err != nil {
		t.Skip("no helper here: ", err)
	}
	defer prog.Close()
	for _, argv := range [][]string{{"helper", "2", "/bin/true", "true"}, {"helper", "4x", "/bin/true", "true"}, {"helper", "4", "/bin/true"}, {"helper"}} {
		files := []uintptr{0, 1, 2, prog.Fd()}
		pid, err := syscall.ForkExec("/proc/self/fd/3", argv, &syscall.ProcAttr{Files: files})
		if err != nil {
			t.Fatal(err)
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, 0, nil)
		if ws.ExitStatus() != 1 {
			t.Errorf("%q: exit %d, want 1", argv, ws.ExitStatus())
		}
	}
}

// TestSealed: the loaded program cannot be changed by whoever gets its
// descriptor.
func TestSealed(t *testing.T) {
	prog, err := Load()
	if err != nil {
		t.Skip("no helper here: ", err)
	}
	defer prog.Close()
	if _, err := prog.WriteAt([]byte{0xcc}, 200); err == nil {
		t.Fatal("wrote into the sealed program")
	}
}

func readAll(f *os.File) (string, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(f)
	return buf.String(), err
}
