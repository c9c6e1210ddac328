package exechelper

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Load puts Program in an anonymous memory file (memfd), sealed so it
// cannot change, close-on-exec, for the life of the caller: the helper is
// executed from it through /proc/self/fd, so nothing is written to disk.
// An error where there is no program, or where the kernel refuses an
// executable memfd (vm.memfd_noexec = 2).
func Load() (*os.File, error) {
	prog := Program()
	if prog == nil {
		return nil, errors.ErrUnsupported
	}
	const flags = unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate("gwlock-exec-helper", flags|unix.MFD_EXEC)
	if err == unix.EINVAL { // before Linux 6.3 memfds are executable and MFD_EXEC is unknown
		fd, err = unix.MemfdCreate("gwlock-exec-helper", flags)
	}
	if err != nil {
		return nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "gwlock-exec-helper")
	if _, err := f.Write(prog); err != nil {
		f.Close()
		return nil, err
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, os.NewSyscallError("fcntl F_ADD_SEALS", err)
	}
	return f, nil
}
