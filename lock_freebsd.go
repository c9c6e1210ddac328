package main

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

func touchFD(fd int) error { return unix.Futimes(fd, nil) }

// setSubreaper makes gwlock the reaper of the gateway's orphans
// (procctl(2) PROC_REAP_ACQUIRE), the FreeBSD twin of Linux's subreaper.
func setSubreaper() error {
	const pPID, procReapAcquire = 0, 2
	if unsafe.Sizeof(uintptr(0)) != 8 {
		// 32-bit procctl splits its 64-bit id_t over two arguments.
		return errors.New("reaper status needs a 64-bit FreeBSD")
	}
	_, _, errno := unix.Syscall6(unix.SYS_PROCCTL, pPID, uintptr(unix.Getpid()), procReapAcquire, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
