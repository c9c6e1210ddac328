package main

import (
	"errors"
	"strconv"

	"golang.org/x/sys/unix"
)

// processStartTime is p_starttime from sysctl kern.proc.pid.<pid>, as
// "seconds.microseconds"; it does not change for the life of a process.
func processStartTime(pid int) (string, bool) {
	if pid <= 0 {
		return "", false
	}
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || int(kp.Proc.P_pid) != pid {
		return "", false
	}
	tv := kp.Proc.P_starttime
	return formatTimeval(int64(tv.Sec), int64(tv.Usec)), true
}

func formatTimeval(sec, usec int64) string {
	return strconv.FormatInt(sec, 10) + "." + strconv.FormatInt(usec, 10)
}

// bootID is empty off Linux: kern.boottime moves when the clock is set, and a
// false "host-rebooted" would take a live owner's lock.
func bootID() string { return "" }

func touchFD(fd int) error { return unix.Futimes(fd, nil) }

func setSubreaper() error {
	return errors.New("--subreaper is Linux only")
}
