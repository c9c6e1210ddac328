package main

import (
	"encoding/binary"
	"errors"
	"strconv"

	"golang.org/x/sys/unix"
)

// Offsets into FreeBSD's struct kinfo_proc (sys/user.h) on 64-bit platforms:
// x/sys has no Go type for it. The size and pid fields are checked before the
// start time is trusted, so a layout change yields "unknown", never a wrong value.
const (
	kinfoProcSize64   = 1088
	kinfoOffPID       = 72
	kinfoOffStartSec  = 336
	kinfoOffStartUsec = 344
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

func parseKinfoProc(b []byte, pid int) (string, bool) {
	if len(b) < kinfoProcSize64 || binary.LittleEndian.Uint32(b[0:]) != kinfoProcSize64 ||
		int(int32(binary.LittleEndian.Uint32(b[kinfoOffPID:]))) != pid {
		return "", false
	}
	sec := int64(binary.LittleEndian.Uint64(b[kinfoOffStartSec:]))
	usec := int64(binary.LittleEndian.Uint64(b[kinfoOffStartUsec:]))
	return strconv.FormatInt(sec, 10) + "." + strconv.FormatInt(usec, 10), true
}

// bootID is empty off Linux: kern.boottime moves when the clock is set, and a
// false "host-rebooted" would take a live owner's lock.
func bootID() string { return "" }

func touchFD(fd int) error { return unix.Futimes(fd, nil) }

func setSubreaper() error {
	return errors.New("--subreaper is Linux only")
}
