package proc

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// startTime is ki_start from sysctl kern.proc.pid.<pid>, read by
// ParseKinfoProc: x/sys has no Go type for FreeBSD's kinfo_proc.
func startTime(pid int) (string, error) {
	b, err := unix.SysctlRaw("kern.proc.pid", pid)
	if err != nil {
		return "", fmt.Errorf("sysctl kern.proc.pid.%d: %w", pid, err)
	}
	return ParseKinfoProc(b, pid)
}
