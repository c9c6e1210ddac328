package proc

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A scan of the process table reads a file or two of every process on the
// host, and a launcher scans on a schedule for as long as its gateway runs.
// So a scan allocates nothing per process: the directory listings, the
// paths and the files it reads go through buffers kept from one scan to the
// next, and what it leaves for the collector does not grow with the number
// of processes on the host or with the launcher's uptime. Scans take turns
// on the buffers (the supervisor and the reaper both scan).

// scanner holds a scan's reused buffers. Only scanLock's holder uses them.
type scanner struct {
	procDir []byte     // getdents64 records of /proc
	subDir  []byte     // getdents64 records of a process's own directory (fd, task)
	path    []byte     // a NUL-terminated path
	file    []byte     // a small /proc file
	link    []byte     // a readlink result
	links   []procLink // Descendants' parent links
	env     []byte     // an environment (Tagged)
}

// procLink is one live process and its parent.
type procLink struct{ pid, ppid int }

var (
	scanLock sync.Mutex
	scan     = scanner{
		procDir: make([]byte, 0, 8192),
		subDir:  make([]byte, 0, 4096),
		path:    make([]byte, 0, 64),
		file:    make([]byte, 0, 1024),
		link:    make([]byte, 0, unix.PathMax+1),
	}
)

// keepMax bounds what a buffer may keep between scans. A scan of a host of
// thousands of processes, or an environment of megabytes, then leaves
// nothing behind: its table is made again the next time instead.
const keepMax = 64 << 10

// trim lets go of the buffers that a large table or file made large.
func (s *scanner) trim() {
	if cap(s.links)*int(unsafe.Sizeof(procLink{})) > keepMax {
		s.links = nil
	}
	if cap(s.env) > keepMax {
		s.env = nil
	}
	if cap(s.file) > keepMax {
		s.file = make([]byte, 0, 1024)
	}
}

// procPath is "/proc/<pid>/<leaf>" (or "/proc/<pid>/<leaf>/<n>" for n >=
// 0; "/proc" for pid 0) in s.path, NUL-terminated for the kernel.
func (s *scanner) procPath(pid int, leaf string, n int) []byte {
	b := append(s.path[:0], "/proc"...)
	if pid > 0 {
		b = strconv.AppendInt(append(b, '/'), int64(pid), 10)
	}
	if leaf != "" {
		b = append(append(b, '/'), leaf...)
	}
	if n >= 0 {
		b = strconv.AppendInt(append(b, '/'), int64(n), 10)
	}
	s.path = append(b, 0)
	return s.path
}

// pathError names path (NUL-terminated) in an error: the only allocation of
// a read, made when it fails.
func pathError(op string, path []byte, err error) error {
	return &os.PathError{Op: op, Path: string(bytes.TrimSuffix(path, []byte{0})), Err: err}
}

// atFDCWD is a variable: the constant is negative, and a negative constant
// cannot be converted to the uintptr of a system call argument.
var atFDCWD = unix.AT_FDCWD

// openPath opens a NUL-terminated path as unix.Open would, without the copy
// unix.Open makes of a string path to terminate it.
func openPath(path []byte, flags int) (int, error) {
	cwd := uintptr(atFDCWD)
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, cwd, uintptr(unsafe.Pointer(&path[0])),
		uintptr(flags|unix.O_CLOEXEC), 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// readlinkPath is readlink(2) of a NUL-terminated path into buf.
func readlinkPath(path, buf []byte) ([]byte, error) {
	cwd := uintptr(atFDCWD)
	n, _, errno := unix.Syscall6(unix.SYS_READLINKAT, cwd, uintptr(unsafe.Pointer(&path[0])),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(cap(buf)), 0, 0)
	if errno != 0 {
		return buf[:0], errno
	}
	return buf[:n], nil
}

// readPath reads the small file at path into s.file.
func (s *scanner) readPath(path []byte) ([]byte, error) {
	fd, err := openPath(path, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	b, err := readFD(fd, s.file[:0], 1<<16)
	s.file = b[:0]
	return b, err
}

// stat reads and parses /proc/<pid>/stat. The start time, if the line has
// one, is returned as a slice of s.file: valid until the next read. A
// failure is kept raw: a scan makes an error of its first one only, so
// processes that exit under it cost nothing.
func (s *scanner) stat(pid int) (Stat, []byte, readFailure) {
	b, err := s.readPath(s.procPath(pid, "stat", -1))
	if err != nil {
		return Stat{}, nil, readFailure{"read", "stat", err}
	}
	st, start, err := scanStat(b)
	if err != nil {
		return Stat{}, nil, readFailure{"parse", "stat", err}
	}
	return st, start, readFailure{}
}

// eachNumber calls fn with every entry of the directory at path whose name
// is a decimal number (the pids of /proc, the descriptors of an fd
// directory), in the order the kernel lists them, until fn returns false.
// buf holds the listing, a block at a time.
func eachNumber(path []byte, buf *[]byte, fn func(n int) bool) error {
	fd, err := openPath(path, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return pathError("open", path, err)
	}
	defer unix.Close(fd)
	b := (*buf)[:cap(*buf)]
	for {
		n, err := unix.Getdents(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return pathError("readdirent", path, err)
		}
		if n <= 0 {
			return nil
		}
		if !eachDirent(b[:n], fn) {
			return nil
		}
	}
}

// eachDirent calls fn with each numeric name among getdents64 records
// (struct linux_dirent64: ino, off, 16-bit record length, type, name);
// false once fn returned false.
func eachDirent(b []byte, fn func(n int) bool) bool {
	const nameOff = 19
	for len(b) > nameOff {
		reclen := int(*(*uint16)(unsafe.Pointer(&b[16])))
		if reclen <= nameOff || reclen > len(b) {
			return true
		}
		name := b[nameOff:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if n, ok := decimal(name); ok && !fn(n) {
			return false
		}
		b = b[reclen:]
	}
	return true
}

// decimal reads a name of digits alone, as a pid or descriptor is written
// (both below 2^31).
func decimal(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return int(n), n <= 1<<31-1
}
