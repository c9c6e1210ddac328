package main

import (
	"bytes"
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
}

func openTmpfile(dir string) (int, error) {
	return openRetry(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
}

func linkTmpfile(fd int, path string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
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
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	return parseProcStat(b)
}

// parseProcStat finds field 22 of a /proc/<pid>/stat line. The command name
// (field 2) may hold spaces and parentheses, so counting starts after the last ')'.
func parseProcStat(b []byte) (string, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", false
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return "", false
	}
	v := fields[19]
	if _, err := strconv.ParseUint(string(v), 10, 64); err != nil {
		return "", false
	}
	return string(v), true
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
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
