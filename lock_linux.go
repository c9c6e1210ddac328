package main

import (
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() {
	// O_TMPFILE needs /proc to be linked into place without privileges
	// (linkat AT_EMPTY_PATH wants CAP_DAC_READ_SEARCH); minimal containers may
	// lack /proc, and then the named temp file is used.
	if _, err := os.Stat("/proc/self/fd"); err == nil {
		openAnonymous = openTmpfile
		linkAnonymous = linkTmpfile
	}
	dirOpenFlags = unix.O_PATH
	readRandom = getrandom
	openNoSymlinks = openat2NoSymlinks
}

// getrandom fills b from getrandom(2), blocking only until the kernel's
// pool is first initialised at boot, as crypto/rand does.
func getrandom(b []byte) (int, error) {
	for n := 0; n < len(b); {
		got, err := unix.Getrandom(b[n:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, os.NewSyscallError("getrandom", err)
		}
		n += got
	}
	return len(b), nil
}

func openTmpfile(dirfd int) (int, error) {
	return openatRetry(dirfd, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
}

// linkTmpfile names the file by its descriptor: /proc/self/fd/N is a magic
// link to the file itself, so no directory path is walked.
func linkTmpfile(fd, dirfd int, base string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dirfd, base, unix.AT_SYMLINK_FOLLOW)
}

// openat2NoSymlinks fails with ELOOP on any symlink in path, and with ENOSYS
// before Linux 5.6; the caller then walks the path itself.
func openat2NoSymlinks(path string) (int, error) {
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	for {
		fd, err := unix.Openat2(unix.AT_FDCWD, path, &how)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// touchFD sets the file's times to now through the descriptor alone
// (utimensat with a NULL path), so no path is looked up and no symlink followed.
func touchFD(fd int) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), uintptr(unsafe.Pointer(nil)), 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// setSubreaper makes orphaned descendants ours to reap (PR_SET_CHILD_SUBREAPER),
// as if gwlock were PID 1.
func setSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// socketBindPath names the socket name in d through d's descriptor: bind(2)
// has no *at form, and the path of the directory, walked again, could have
// been swapped for a symlink since d was checked.
// /proc/self/fd/N is the directory gwlock holds open, whatever its path
// names now.
func socketBindPath(d *checkedDir, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(d.fd) + "/" + name
}
