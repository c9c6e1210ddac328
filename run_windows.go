package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// runSignals are the console events run catches; each stops the gateway.
var runSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

func signalRole(os.Signal) sigRole { return roleStop }

// stopSignal: Windows stops a gateway with CTRL_BREAK_EVENT whatever asked,
// so a Ctrl-C to gwlock does not pass through as it is.
var stopSignal os.Signal = consoleBreak{}

// killSignal: the job object kills; the value only stands for it.
var killSignal os.Signal = os.Kill

const interruptPassesThrough = false

// consoleBreak is CTRL_BREAK_EVENT, the one stop a console process can
// handle that gwlock can send to the gateway's process group alone.
type consoleBreak struct{}

func (consoleBreak) String() string { return "CTRL_BREAK_EVENT" }
func (consoleBreak) Signal()        {}

// parseStopSignal accepts only the default: a console process can be sent
// CTRL_BREAK_EVENT and nothing else that it could handle.
func parseStopSignal(name string) (os.Signal, error) {
	if name == signalName(stopSignal) {
		return stopSignal, nil
	}
	return nil, errors.New("on Windows the gateway is stopped with CTRL_BREAK_EVENT only (hint: leave --stop-signal out)")
}

// signalName names the console events gwlock receives as their POSIX
// counterparts, and the one it sends as itself.
func signalName(s os.Signal) string {
	switch s {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// gatewayTree is the gateway's process tree as Windows lets gwlock hold it:
// a job object that every process of the tree is in from its first
// instruction, and that kills them all when gwlock's handle closes, so the
// gateway dies with its launcher: no gateway outlives its supervisor. The job also tells when the
// last of them is gone.
type gatewayTree struct {
	job   windows.Handle
	pid   int // the gateway's main process, the leader of its console group
	exits chan childExit
}

func openGatewayTree(mustReap bool) (*gatewayTree, error) {
	if mustReap {
		return nil, setSubreaper()
	}
	job, err := killOnCloseJob()
	if err != nil {
		return nil, err
	}
	return &gatewayTree{job: job, exits: make(chan childExit, 4)}, nil
}

// start runs argv in the job. Windows passes no lock to the gateway: a
// LockFileEx lock is the process's own (see startGatewayWindows).
func (t *gatewayTree) start(argv, env []string, _ uintptr, _ bool, _ os.Signal) (int, error) {
	p, err := startGatewayWindows(argv, env, t.job)
	if err != nil {
		return 0, err
	}
	if testHookGatewayStart != nil {
		testHookGatewayStart("resumed", p.Pid)
	}
	t.pid = p.Pid
	go t.wait(p)
	return p.Pid, nil
}

// wait reports the main process's exit, and whether the job holds others
// (a daemon it started); if so, it reports again when the job is empty.
func (t *gatewayTree) wait(p *os.Process) {
	code := exitFailure
	if st, err := p.Wait(); err == nil {
		code = st.ExitCode()
	}
	empty := t.active() == 0
	t.exits <- childExit{pid: p.Pid, code: code, treeKnown: true, treeEmpty: empty}
	for !empty {
		time.Sleep(jobPoll)
		if empty = t.active() == 0; empty {
			t.exits <- childExit{treeKnown: true, treeEmpty: true}
		}
	}
}

// jobPoll is how often a job with no main process left is asked whether it
// is empty: Windows has no exit event for a process that is not our child.
const jobPoll = 50 * time.Millisecond

// jobAccounting is JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, which x/sys lacks.
type jobAccounting struct {
	totalUser, totalKernel, periodUser, periodKernel int64
	pageFaults, totalProcesses, ActiveProcesses      uint32
	terminatedProcesses                              uint32
}

// active counts the job's live processes (0 if the job cannot say).
func (t *gatewayTree) active() uint32 {
	var info jobAccounting
	if err := windows.QueryInformationJobObject(t.job, windows.JobObjectBasicAccountingInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info)), nil); err != nil {
		return 0
	}
	return info.ActiveProcesses
}

// signal: CTRL_BREAK_EVENT to the gateway's console process group.
func (t *gatewayTree) signal(os.Signal, []int) {
	if t.pid > 0 {
		_ = windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(t.pid))
	}
}

// kill ends every process in the job.
func (t *gatewayTree) kill([]int) { _ = windows.TerminateJobObject(t.job, uint32(killedExit)) }

func (t *gatewayTree) forward(int, os.Signal) {}

// startBeside runs argv as gwlock's own child beside the gateway: outside
// the gateway's job, and its exit delivered once on exited.
func (t *gatewayTree) startBeside(argv, env []string) (int, <-chan childExit, error) {
	p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{Env: env, Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}})
	if err != nil {
		return 0, nil, err
	}
	exited := make(chan childExit, 1)
	go func() {
		code := exitFailure
		if st, err := p.Wait(); err == nil {
			code = st.ExitCode()
		}
		exited <- childExit{pid: p.Pid, code: code}
	}()
	return p.Pid, exited, nil
}

func (t *gatewayTree) children() []int { return nil }

func (t *gatewayTree) mainExited() {}

func (t *gatewayTree) ended() { t.pid = 0 }

func (t *gatewayTree) muteDeathSignal() {}

func (t *gatewayTree) close() { windows.CloseHandle(t.job) }

// startGatewayWindows runs argv directly (no shell) in a new process group,
// with the environment plus GWLOCK_LOCK_PATH, inside job:
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
func startGatewayWindows(argv, env []string, job windows.Handle) (*os.Process, error) {
	path, err := lookGateway(argv[0])
	if err != nil {
		return nil, err
	}
	startErr := func(err error) error {
		return &commandError{code: exitNotExecutable, err: &fs.PathError{Op: "start gateway", Path: path, Err: err}}
	}
	pi, err := createGateway(path, argv, env)
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

// createGateway creates the gateway's process, suspended.
func createGateway(path string, argv, env []string) (*windows.ProcessInformation, error) {
	app, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	cmdLine, err := windows.UTF16PtrFromString(windows.ComposeCommandLine(argv))
	if err != nil {
		return nil, err
	}
	block, err := envBlock(env)
	if err != nil {
		return nil, err
	}
	return createSuspended(app, cmdLine, block)
}

// createSuspended is CreateProcess with only the three standard handles
// inherited (PROC_THREAD_ATTRIBUTE_HANDLE_LIST, as os.StartProcess does), so
// the gateway gets no stray inheritable handle of ours. A standard handle
// that was not valid when gwlock started (stdUsable) or cannot be
// duplicated is left out rather than failing the start: a closed stderr
// never changes a decision.
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
