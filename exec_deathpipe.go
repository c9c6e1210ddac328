//go:build linux

package main

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"gwlock/internal/exechelper"

	"golang.org/x/sys/unix"
)

// The gateway's stop when its launcher dies, on Linux: a pipe, not the
// parent-death signal.
//
// The parent-death signal fails twice here. Linux sends it each time the
// gateway is handed from one exiting thread of its parent to the next, so a
// SIGKILLed multithreaded launcher (Go's runtime has several threads) sends
// it one to four times, and a gateway that takes a second SIGTERM as "exit
// now" has its drain cut. And any change of the gateway's credentials
// (setuid(), setpriv --reuid, su, runuser, a set-user-ID program) clears it,
// so a gateway that drops root outlives its launcher unsupervised.
//
// The pipe: gwlock holds its write end, the gateway its read end, marked
// O_ASYNC with F_SETSIG naming the death signal and F_SETOWN naming the
// gateway's process group, which its main process leads: the same processes
// a live launcher's stop signals. Its workers are to stop with it: under
// etcd a worker left running would serve beside the gateway another host
// starts once the lease expires, still holding the old fence. When the last
// write end closes, gwlock's death, the kernel signals each process of the
// group once (pipe_release's kill_fasync, si_code POLL_IN), with the
// credentials recorded at F_SETOWN, so it reaches a gateway that changed uid
// since. A process that left the group (setsid) is not reached: the kernel
// signals the owner, not whoever holds a copy of the read end. gwlock keeps
// a copy of the read end too, at a lower descriptor than the write end (at
// exit the kernel releases the highest first, so the read end is still open
// when the write end goes, even if the gateway closed its copy), and
// disarms it with F_SETOWN 0 once the gateway's tree is gone.
//
// F_SETOWN needs the gateway's pid, which exists only after the fork. A
// launcher killed between its fork and its F_SETOWN would leave a gateway
// nobody signals; so the fork runs an exec helper first, with SIGKILL as
// its parent-death signal, and it waits for gwlock's word that F_SETOWN is
// done. The helper is internal/exechelper's program where there is one
// (linux/amd64: an execve and no runtime start), run from a sealed memfd;
// elsewhere, or where the kernel refuses to execute a memfd, it is gwlock
// itself (/proc/self/exe), a second Go runtime start of a few milliseconds. Then it clears the parent-death
// signal and executes the gateway, keeping a write end of its own until the
// exec: a launcher that dies meanwhile leaves that copy as the last writer,
// and its close at the exec signals the new program, once. So a launcher
// death before the gateway runs kills the helper (no gateway ever ran), and
// one after sends exactly one signal.

// execHelperArg, as argv[1], makes gwlock the exec helper (execHelper).
const execHelperArg = ":exec-gateway"

// execHelperExe is gwlock's own program, as the exec helper runs it: the
// running binary even if it was replaced or deleted since.
const execHelperExe = "/proc/self/exe"

// fdSetSig is F_SETSIG: which signal O_ASYNC sends (SIGIO without it).
const fdSetSig = 10

// The exec helper's report, on a descriptor of its own that nothing else
// writes to: execReached once it is about to execute the gateway, then,
// only if that failed, errnoPrefix, the errno and a newline. gwlock writes
// execHelperGo to it once F_SETOWN is done. The helper's fd 2 is not the
// report: its runtime writes there whatever GODEBUG asks (inittrace,
// schedtrace) and its own fatal errors.
const (
	execHelperGo = 'g'
	execReached  = 'x'
	errnoPrefix  = "\x00errno="
)

func init() {
	if len(os.Args) > 3 && os.Args[1] == execHelperArg {
		os.Exit(execHelper(os.Args[2], os.Args[3], os.Args[4:]))
	}
}

// forkGateway starts path as the gateway with its death signal armed, and
// returns its pid and how to disarm that signal once its tree is gone.
//
// Linux sends a parent-death signal when the *thread* that forked exits
// (golang/go#27505). The Go runtime ends a thread only when a goroutine
// exits while locked to it, which none of gwlock's does, so the exec
// helper's SIGKILL, which matters only until the helper hears 'g', needs no
// particular thread. Without /proc, where the gateway's own parent-death
// signal is all there is for its whole life, the calling goroutine (run's
// main goroutine) locks its thread for good, so the signal never depends
// on that reasoning.
func forkGateway(path string, argv, env []string, files []uintptr, deathSig syscall.Signal) (int, func(), error) {
	if _, err := os.Stat(execHelperExe); err != nil {
		// No /proc (a bare chroot): the parent-death signal alone, with its
		// repeats and its blindness to uid changes.
		runtime.LockOSThread()
		pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: env, Files: files,
			Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}})
		return pid, nil, err
	}
	dp, err := newDeathPipe(deathSig)
	if err != nil {
		return 0, nil, err
	}
	pid, err := dp.start(path, argv, env, files)
	if err != nil {
		dp.disarm() // the helper may still be exiting: it is not to be signalled
		return 0, nil, err
	}
	return pid, dp.disarm, nil
}

// deathPipe is one gateway life's death signal: r, the read end, below w,
// the write end, both close-on-exec in gwlock.
type deathPipe struct{ r, w int }

func newDeathPipe(sig syscall.Signal) (*deathPipe, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("pipe2", err)
	}
	dp := &deathPipe{r: p[0], w: p[1]}
	if dp.w < dp.r {
		high, err := unix.FcntlInt(uintptr(dp.w), unix.F_DUPFD_CLOEXEC, dp.r+1)
		if err != nil {
			dp.close()
			return nil, os.NewSyscallError("fcntl", err)
		}
		_ = unix.Close(dp.w)
		dp.w = high
	}
	fl, err := unix.FcntlInt(uintptr(dp.r), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(dp.r), fdSetSig, int(sig))
	}
	if err == nil {
		_, err = unix.FcntlInt(uintptr(dp.r), unix.F_SETFL, fl|unix.O_ASYNC)
	}
	if err != nil {
		dp.close()
		return nil, os.NewSyscallError("fcntl", err)
	}
	return dp, nil
}

// start runs the exec helper and arms the pipe for its pid, then lets it
// execute the gateway. The helper sees files with a pipe of gwlock's as fd
// 2, its runtime's words, then the read end, the write end, its report
// channel and the gateway's stderr; the gateway sees files and the read
// end after them.
func (dp *deathPipe) start(path string, argv, env []string, files []uintptr) (int, error) {
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, os.NewSyscallError("socketpair", err)
	}
	report, helperEnd := sp[0], sp[1]
	defer unix.Close(report)
	var words [2]int
	if err := unix.Pipe2(words[:], unix.O_CLOEXEC); err != nil {
		_ = unix.Close(helperEnd)
		return 0, os.NewSyscallError("pipe2", err)
	}
	defer unix.Close(words[0])
	// Non-blocking for the helper: its runtime drops what does not fit
	// rather than wait for gwlock, which reads it only if the helper died.
	_ = unix.SetNonblock(words[1], true)
	helperFiles := append([]uintptr{files[0], files[1], uintptr(words[1])}, files[3:]...)
	helperFiles = append(helperFiles, uintptr(dp.r), uintptr(dp.w), uintptr(helperEnd), files[2])
	pid, err := forkHelper(path, argv, env, helperFiles, len(files))
	_ = unix.Close(helperEnd)
	_ = unix.Close(words[1])
	if err != nil {
		return 0, err
	}
	// Negative: the process group pid leads (Setpgid), not the process.
	if _, err := unix.FcntlInt(uintptr(dp.r), unix.F_SETOWN, -pid); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		return 0, os.NewSyscallError("fcntl F_SETOWN", err)
	}
	_, _ = unix.Write(report, []byte{execHelperGo})
	return pid, execReport(readAll(report), words[0])
}

// nativeHelper is internal/exechelper's program, loaded once per launcher;
// nil where there is none or the kernel would not execute it.
var nativeHelper = sync.OnceValue(func() *os.File {
	f, err := exechelper.Load()
	if err != nil {
		return nil
	}
	return f
})

// forkHelper starts the exec helper for a gateway of n files, with files
// laid out as the helper expects: the native program where it runs, else
// gwlock itself. A native program the kernel refuses to execute (a policy
// against executable memfds, a seccomp filter) is not tried again.
func forkHelper(path string, argv, env []string, files []uintptr, n int) (int, error) {
	attr := &syscall.ProcAttr{Env: env, Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}}
	if prog := nativeHelper(); prog != nil && !nativeRefused.Load() {
		attr.Files = append(files, prog.Fd())
		exe := "/proc/self/fd/" + strconv.Itoa(n+4)
		pid, err := syscall.ForkExec(exe, append([]string{"gwlock-exec-helper", strconv.Itoa(n), path}, argv...), attr)
		if !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.ENOEXEC) {
			return pid, err
		}
		nativeRefused.Store(true)
	}
	attr.Files = files
	return syscall.ForkExec(execHelperExe, append([]string{"gwlock", execHelperArg, strconv.Itoa(n), path}, argv...), attr)
}

// nativeRefused: the kernel would not execute the native helper.
var nativeRefused atomic.Bool

// execReport is what the exec helper's report says of the start. Without
// execReached the helper died before it could execute anything: its
// runtime's words say why. With it, only a complete errno record is a
// failed exec; anything else may be a gateway that runs, and a gateway that
// may run is supervised, never left running unsupervised.
func execReport(msg []byte, words int) error {
	rest, reached := bytes.CutPrefix(msg, []byte{execReached})
	if !reached {
		return &helperError{reason: helperWords(readAll(words))}
	}
	if num, ok := bytes.CutPrefix(rest, []byte(errnoPrefix)); ok {
		if digits, ok := bytes.CutSuffix(num, []byte("\n")); ok {
			if n, err := strconv.Atoi(string(digits)); err == nil && n > 0 {
				return syscall.Errno(n)
			}
		}
	}
	return nil
}

// readAll reads fd to its end, keeping the first 64 KiB.
func readAll(fd int) []byte {
	var msg []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if n <= 0 {
			return msg
		}
		if len(msg) < 64<<10 {
			msg = append(msg, buf[:n]...)
		}
	}
}

// helperWords is the line of a dead helper's runtime output that says why
// it died: its fatal error, else its first line.
func helperWords(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, line := range lines {
		if strings.HasPrefix(line, "runtime: ") || strings.HasPrefix(line, "fatal error: ") {
			return line
		}
	}
	if lines[0] == "" {
		return "it exited before executing the gateway"
	}
	return lines[0]
}

// helperError: the exec helper died before it could execute the gateway.
// Its reason is the Go runtime's, e.g. "runtime: failed to create new OS
// thread": the process table or memory ran out.
type helperError struct{ reason string }

func (e *helperError) Error() string { return "exec helper died: " + e.reason }

// Is makes the helper's death a resource failure for the exit code.
func (e *helperError) Is(target error) bool { return target == syscall.EAGAIN }

// disarm stops the signal before the pipe closes: the gateway's tree is
// gone, and its read end may live on in processes that left it.
func (dp *deathPipe) disarm() {
	_, _ = unix.FcntlInt(uintptr(dp.r), unix.F_SETOWN, 0)
	dp.close()
}

func (dp *deathPipe) close() {
	_ = unix.Close(dp.w)
	_ = unix.Close(dp.r)
}

// execHelper is gwlock run as the exec helper: it waits for the word that
// its death signal is armed, gives up its parent-death signal, puts the
// gateway's stderr in place and executes the gateway. It reports to gwlock
// on its own descriptor until then. It never returns when the exec
// succeeds.
func execHelper(nfiles, path string, argv []string) int {
	n, err := strconv.Atoi(nfiles)
	if err != nil || n < 3 {
		return exitUsage
	}
	// fd n, the read end, stays open across the exec: the gateway's copy.
	writeEnd, report, stderrFD := n+1, n+2, n+3
	var word [1]byte
	for {
		got, err := unix.Read(report, word[:])
		if err == unix.EINTR {
			continue
		}
		if got != 1 || word[0] != execHelperGo {
			return exitFailure // gwlock died before arming: start nothing
		}
		break
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, 0, 0, 0, 0); err != nil {
		return exitFailure
	}
	if unix.Dup3(stderrFD, 2, 0) != nil {
		return exitFailure
	}
	_ = unix.Close(stderrFD)
	_, _ = unix.FcntlInt(uintptr(writeEnd), unix.F_SETFD, unix.FD_CLOEXEC)
	_, _ = unix.FcntlInt(uintptr(report), unix.F_SETFD, unix.FD_CLOEXEC)
	if _, err := unix.Write(report, []byte{execReached}); err != nil {
		return exitFailure
	}
	err = syscall.Exec(path, argv, os.Environ())
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		errno = syscall.EINVAL
	}
	_, _ = unix.Write(report, []byte(errnoPrefix+strconv.Itoa(int(errno))+"\n"))
	return exitNotExecutable
}
