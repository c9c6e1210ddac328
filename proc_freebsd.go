package main

import (
	"errors"

	"golang.org/x/sys/unix"
)

func processStartTime(pid int) (string, bool) {
	if pid <= 0 {
		return "", false
	}
	b, err := unix.SysctlRaw("kern.proc.pid", pid)
	if err != nil {
		return "", false
	}
	return parseKinfoProc(b, pid)
}

// bootID is empty off Linux: kern.boottime moves when the clock is set, and a
// false "host-rebooted" would take a live owner's lock.
func bootID() string { return "" }

func touchFD(fd int) error { return unix.Futimes(fd, nil) }

func setSubreaper() error {
	return errors.New("--subreaper is Linux only")
}
