package proc

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// startTime is p_starttime from sysctl kern.proc.pid.<pid>.
func startTime(pid int) (string, error) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil {
		return "", fmt.Errorf("sysctl kern.proc.pid.%d: %w", pid, err)
	}
	if int(kp.Proc.P_pid) != pid {
		// An exited pid gives an empty record.
		return "", fmt.Errorf("sysctl kern.proc.pid.%d: no such process", pid)
	}
	tv := kp.Proc.P_starttime
	return formatTimeval(int64(tv.Sec), int64(tv.Usec)), nil
}
