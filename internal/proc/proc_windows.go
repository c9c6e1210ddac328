package proc

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/windows"
)

const queryAccess = windows.PROCESS_QUERY_LIMITED_INFORMATION | windows.SYNCHRONIZE

func probe(pid int) (State, error) {
	h, err := windows.OpenProcess(queryAccess, false, uint32(pid))
	switch err {
	case nil:
	case windows.ERROR_INVALID_PARAMETER:
		return Absent, nil
	case windows.ERROR_ACCESS_DENIED:
		return Present, nil
	default:
		return Unknown, fmt.Errorf("open process %d: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	return running(h)
}

// running judges a process by its handle's signalled state, which is set
// exactly when it has exited. GetExitCodeProcess cannot tell: a process that
// exited with code 259 reads as STILL_ACTIVE (its docs warn of this), and
// the object of an exited process lives on while anyone has a handle.
func running(h windows.Handle) (State, error) {
	ev, err := windows.WaitForSingleObject(h, 0)
	switch ev {
	case uint32(windows.WAIT_TIMEOUT):
		return Present, nil
	case windows.WAIT_OBJECT_0:
		return Absent, nil
	}
	return Unknown, fmt.Errorf("wait for process: %v", err)
}

// startTime is the process's creation time as a FILETIME count.
func startTime(pid int) (string, error) {
	h, err := windows.OpenProcess(queryAccess, false, uint32(pid))
	if err != nil {
		return "", fmt.Errorf("open process %d: %w", pid, err)
	}
	defer windows.CloseHandle(h)
	// An exited process's object can outlive it while handles remain: only
	// a running process has a start time worth comparing.
	if st, err := running(h); st != Present {
		return "", fmt.Errorf("start time of pid %d: process %s (%v)", pid, st, err)
	}
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return "", fmt.Errorf("process times of pid %d: %w", pid, err)
	}
	return strconv.FormatUint(uint64(created.HighDateTime)<<32|uint64(created.LowDateTime), 10), nil
}

// sessionID: Windows has no POSIX sessions.
func sessionID() (int, error) { return 0, unsupported("session id") }

// groupAlive: Windows process groups are console groups that die with their
// processes; the job object, not the group, outlives nothing.
func groupAlive(int, int) (bool, error) { return false, unsupported("process group members") }
