package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// runSignals are the console events run catches; each stops the gateway.
var runSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

func isStopSignal(os.Signal) bool { return true }

// supervise on Windows: the gateway runs in a new process group inside a job
// object that kills it when the launcher's handle closes, so it dies with the
// launcher (Invariant 2). Stop is CTRL_BREAK_EVENT, then TerminateProcess.
func supervise(c *config, lock *heldLock, lockPath string, log *telemetry, sigs <-chan os.Signal, registered <-chan struct{}) (int, error) {
	if c.subreaper {
		return exitFailure, setSubreaper()
	}
	<-registered
	job, err := killOnCloseJob()
	if err != nil {
		return exitFailure, err
	}
	defer windows.CloseHandle(job)

	var heartbeat <-chan time.Time
	if lock != nil {
		t := time.NewTicker(c.stale / 3)
		defer t.Stop()
		heartbeat = t.C
	}
	restarts := 0
	for {
		if err := checkPort(c, log); err != nil {
			return exitCode(err), err
		}
		p, err := startGatewayWindows(c.command, lockPath, lock != nil, job)
		if err != nil {
			return exitCode(err), err
		}
		if testHookGatewayStart != nil {
			testHookGatewayStart("resumed", p.Pid)
		}
		started := time.Now()
		log.info("child-start", "pid", p.Pid, "command", c.command[0])
		if lock != nil {
			_ = lock.setChild(p.Pid)
		}
		exited := make(chan *os.ProcessState, 1)
		gone := make(chan struct{})
		go func() { st, _ := p.Wait(); close(gone); exited <- st }()
		ready := make(chan time.Duration, 1)
		if c.port > 0 {
			go func() {
				if waited, ok := waitForPort(c.host, c.port, 24*time.Hour, c.poll, gone); ok {
					ready <- waited
				}
			}()
		}
		var (
			stopTimer <-chan time.Time
			stopping  bool
			lost      bool
			state     *os.ProcessState
		)
		stop := func() {
			_ = windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(p.Pid))
			if stopTimer == nil {
				stopTimer = time.After(c.stopTimeout)
			}
		}
	wait:
		for {
			select {
			case <-sigs:
				stopping = true
				stop()
			case <-stopTimer:
				_ = p.Kill()
			case <-heartbeat:
				if ok, _ := lock.check(); !ok && !lost {
					lost, stopping = true, true
					lock.markLost()
					log.error("lock-lost", "lock", lockPath, "reason", "path no longer names our lock file")
					stop()
				}
			case waited := <-ready:
				log.info("gateway-ready", "port", c.port, "waited_ms", ms(waited))
			case state = <-exited:
				break wait
			}
		}
		code := 1
		if state != nil {
			code = state.ExitCode()
		}
		uptime := time.Since(started)
		log.info("child-exit", "pid", p.Pid, "code", code, "signal", 0, "uptime_ms", ms(uptime))
		if lost {
			return exitFailure, errLockLost
		}
		if stopping || !shouldRestart(c.restart, code) {
			return code, nil
		}
		var delay time.Duration
		delay, restarts = restartDelay(restarts, uptime)
		log.warn("restart", "attempt", restarts, "backoff_ms", ms(delay), "reason", "exit code "+strconv.Itoa(code))
		select {
		case <-time.After(delay):
		case <-sigs:
			return code, nil // stopped during the backoff: no gateway runs
		}
	}
}

// startGatewayWindows runs argv directly (no shell) in a new process group,
// with the environment plus GWLOCK_LOCK_PATH, inside job (issue 9, item 8):
// the process is created suspended, assigned to the job, and only then is its
// primary thread resumed, so it runs no instruction outside the job and a
// launcher killed at any later moment takes it along. A failed assignment is
// fatal: the suspended process is terminated unrun.
//
// CreateProcess is called directly because resuming needs the primary
// thread's handle, which only its PROCESS_INFORMATION gives (os.StartProcess
// closes it). The alternatives were rejected: a Toolhelp32 thread snapshot
// finds threads by PID, and a debugger or security product may have injected
// a thread of its own into the new process by then; NtResumeProcess is
// undocumented.
//
// The lock handle is not inherited: a LockFileEx lock belongs to the process
// that took it and is dropped when that process closes its last handle to the
// file (LockFileEx docs: "If a process terminates with a portion of a file
// locked or closes a file that has outstanding locks, the locks are unlocked
// by the operating system"), so an inherited handle would keep the file open
// without keeping the lock. On Windows the job object, not a descriptor,
// ties the gateway's life to the holder's.
func startGatewayWindows(argv []string, lockPath string, locked bool, job windows.Handle) (*os.Process, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		code := exitNotExecutable
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = exitNotFound
		}
		return nil, &commandError{code: code, err: &fs.PathError{Op: "start gateway", Path: argv[0], Err: errors.Unwrap(err)}}
	}
	startErr := func(err error) error {
		return &commandError{code: exitNotExecutable, err: &fs.PathError{Op: "start gateway", Path: path, Err: err}}
	}
	app, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, startErr(err)
	}
	cmdLine, err := windows.UTF16PtrFromString(windows.ComposeCommandLine(argv))
	if err != nil {
		return nil, startErr(err)
	}
	env := os.Environ()
	if locked {
		env = gatewayEnv(env, map[string]string{"GWLOCK_LOCK_PATH": lockPath})
	}
	block, err := envBlock(env)
	if err != nil {
		return nil, startErr(err)
	}
	pi, err := createSuspended(app, cmdLine, block)
	if err != nil {
		return nil, startErr(err)
	}
	defer windows.CloseHandle(pi.Thread)
	defer windows.CloseHandle(pi.Process)
	// A launcher killed between CreateProcess and the assignment leaves a
	// suspended process that never runs and holds no lock, only duplicates
	// of our standard handles. PROC_THREAD_ATTRIBUTE_JOB_LIST (Windows 10)
	// would create it inside the job; not used, as it is untried here.
	if err := assignProcessToJob(job, pi.Process); err != nil {
		abandon(pi.Process)
		return nil, &fs.PathError{Op: "put gateway in job object", Path: path, Err: fmt.Errorf("%w (terminated before it ran)", err)}
	}
	// Our handle keeps the PID from being reused, so this opens the same
	// process; os.Process then waits and kills as on every other path.
	p, err := os.FindProcess(int(pi.ProcessId))
	if err != nil {
		abandon(pi.Process)
		return nil, startErr(err)
	}
	if testHookGatewayStart != nil {
		testHookGatewayStart("assigned", p.Pid)
	}
	if _, err := windows.ResumeThread(pi.Thread); err != nil {
		abandon(pi.Process)
		p.Release()
		return nil, startErr(err)
	}
	return p, nil
}

// createSuspended is CreateProcess with only the three standard handles
// inherited (PROC_THREAD_ATTRIBUTE_HANDLE_LIST, as os.StartProcess does), so
// the gateway gets no stray inheritable handle of ours. A standard handle
// that was not valid when gwlock started (stdUsable) or cannot be
// duplicated is left out rather than failing the start: a closed stderr
// never changes a decision (Invariant 6).
func createSuspended(app, cmdLine, env *uint16) (*windows.ProcessInformation, error) {
	// Another goroutine's os/exec must not see our inheritable duplicates.
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	self := windows.CurrentProcess()
	var std [3]windows.Handle
	var inherit []windows.Handle
	for i, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if !stdUsable[i] {
			continue
		}
		if windows.DuplicateHandle(self, windows.Handle(f.Fd()), self, &std[i], 0, true, windows.DUPLICATE_SAME_ACCESS) != nil {
			std[i] = 0
			continue
		}
		defer windows.CloseHandle(std[i])
		inherit = append(inherit, std[i])
	}
	attrs, err := windows.NewProcThreadAttributeList(1)
	if err != nil {
		return nil, err
	}
	defer attrs.Delete()
	if len(inherit) > 0 {
		if err := attrs.Update(windows.PROC_THREAD_ATTRIBUTE_HANDLE_LIST, unsafe.Pointer(&inherit[0]), uintptr(len(inherit))*unsafe.Sizeof(inherit[0])); err != nil {
			return nil, err
		}
	}
	si := &windows.StartupInfoEx{ProcThreadAttributeList: attrs.List()}
	si.Cb = uint32(unsafe.Sizeof(*si))
	si.Flags = windows.STARTF_USESTDHANDLES
	si.StdInput, si.StdOutput, si.StdErr = std[0], std[1], std[2]
	flags := uint32(windows.CREATE_SUSPENDED | windows.CREATE_NEW_PROCESS_GROUP |
		windows.CREATE_UNICODE_ENVIRONMENT | windows.EXTENDED_STARTUPINFO_PRESENT)
	pi := new(windows.ProcessInformation)
	if err := windows.CreateProcess(app, cmdLine, nil, nil, len(inherit) > 0, flags, env, nil, &si.StartupInfo, pi); err != nil {
		return nil, err
	}
	return pi, nil
}

// abandon terminates a gateway that was never resumed and waits until it is
// gone, so that the lock is released only after it.
func abandon(process windows.Handle) {
	_ = windows.TerminateProcess(process, uint32(exitFailure))
	_, _ = windows.WaitForSingleObject(process, abandonWait)
}

// abandonWait bounds the wait for a terminated, never-resumed process: it has
// no thread running that could delay its end.
const abandonWait = 5000 // milliseconds

// envBlock is a CREATE_UNICODE_ENVIRONMENT block: NUL-terminated strings,
// then one more NUL.
func envBlock(env []string) (*uint16, error) {
	var block []uint16
	for _, kv := range env {
		s, err := windows.UTF16FromString(kv)
		if err != nil {
			return nil, err
		}
		block = append(block, s...)
	}
	if len(block) == 0 {
		block = append(block, 0)
	}
	block = append(block, 0)
	return &block[0], nil
}

// Seams for tests: assignProcessToJob is replaced to force an assignment
// failure; testHookGatewayStart, if set, runs at each step of a start
// ("assigned": in the job, not yet resumed; "resumed") with the gateway's PID.
var (
	assignProcessToJob   = windows.AssignProcessToJobObject
	testHookGatewayStart func(step string, pid int)
)

func killOnCloseJob() (windows.Handle, error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return 0, &fs.PathError{Op: "create job object", Path: "gateway", Err: err}
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{}
	info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		return 0, &fs.PathError{Op: "configure job object", Path: "gateway", Err: err}
	}
	return job, nil
}
