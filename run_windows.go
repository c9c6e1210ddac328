package main

import (
	"errors"
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
		p, err := startGatewayWindows(c.command, lockPath, lock != nil)
		if err != nil {
			return exitCode(err), err
		}
		if h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(p.Pid)); err == nil {
			_ = windows.AssignProcessToJobObject(job, h)
			windows.CloseHandle(h)
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

func startGatewayWindows(argv []string, lockPath string, locked bool) (*os.Process, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		code := exitNotExecutable
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = exitNotFound
		}
		return nil, &commandError{code: code, err: &fs.PathError{Op: "start gateway", Path: argv[0], Err: errors.Unwrap(err)}}
	}
	env := os.Environ()
	if locked {
		env = gatewayEnv(env, map[string]string{"GWLOCK_LOCK_PATH": lockPath})
	}
	p, err := os.StartProcess(path, argv, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP},
	})
	if err != nil {
		return nil, &commandError{code: exitNotExecutable, err: &fs.PathError{Op: "start gateway", Path: path, Err: err}}
	}
	return p, nil
}

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
