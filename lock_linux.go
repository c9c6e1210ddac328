package main

import (
	"bytes"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() {
	isZombie = zombieState
	// O_TMPFILE needs /proc to be linked into place without privileges
	// (linkat AT_EMPTY_PATH wants CAP_DAC_READ_SEARCH); minimal containers may
	// lack /proc, and then the named temp file is used.
	if _, err := os.Stat("/proc/self/fd"); err == nil {
		openAnonymous = openTmpfile
		linkAnonymous = linkTmpfile
	}
	dirOpenFlags = unix.O_PATH
	openNoSymlinks = openat2NoSymlinks
}

// zombieState reads a process's state (field 3 of /proc/<pid>/stat): Z is
// an exited process awaiting its reaper, X one being reaped.
func zombieState(pid int) bool {
	b, err := readProc("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	st, ok := parseProcStatus(b)
	return ok && st.exited()
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

// processStartTime is field 22 of /proc/<pid>/stat: clock ticks after boot,
// fixed for the life of a process, so a reused PID shows a different value.
func processStartTime(pid int) (string, bool) {
	if pid <= 0 {
		return "", false
	}
	b, err := readProc("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	return parseProcStat(b)
}

// readProc reads a small /proc file with raw syscalls: os.ReadFile would
// first try to add it to the poller (three wasted calls), and the judgement
// reads one per process of the table.
func readProc(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readFD(fd, make([]byte, 0, 512), 1<<16)
}

// readFD appends what fd holds to b, up to max bytes in all.
func readFD(fd int, b []byte, max int) ([]byte, error) {
	for len(b) < max {
		if len(b) == cap(b) {
			b = append(b, make([]byte, len(b)+512)...)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return b, err
		}
		if n == 0 {
			break
		}
		b = b[:len(b)+n]
	}
	return b, nil
}

func bootID() string {
	b, err := readProc("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// setSubreaper makes orphaned descendants ours to reap (PR_SET_CHILD_SUBREAPER),
// as if gwlock were PID 1.
func setSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// socketBindPath names the socket name in d through d's descriptor: bind(2)
// has no *at form, and the path of the directory, walked again, could have
// been swapped for a symlink since d was checked (Invariant 4).
// /proc/self/fd/N is the directory gwlock holds open, whatever its path
// names now.
func socketBindPath(d *checkedDir, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(d.fd) + "/" + name
}
