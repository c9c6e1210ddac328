package main

import (
	"bufio"
	"bytes"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// threadCount is this process's number of threads, 0 if unknown.
func threadCount() int {
	b := rawReadFile("/proc/self/status", make([]byte, 8<<10))
	if b == nil {
		return 0
	}
	return statusField(b, "Threads:")
}

// threadsLimited says whether a limit may refuse this process a thread:
// RLIMIT_NPROC for a uid other than root (root is not held to it), or a
// pids.max on the cgroup path of this process, or a fact that cannot be
// read (then it may).
func threadsLimited() bool {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &rl); err != nil || (rl.Cur != unix.RLIM_INFINITY && os.Getuid() != 0) {
		return true
	}
	dirs, ok := pidsCgroups()
	return !ok || anyLimited(dirs)
}

// anyLimited says whether one of the cgroup directories sets a pids.max
// or has one that cannot be read.
func anyLimited(dirs []string) bool {
	buf := make([]byte, 64)
	for _, dir := range dirs {
		if limited(dir+"/pids.max", buf) {
			return true
		}
	}
	return false
}

// pidsCgroups lists the cgroup directories whose pids.max binds this
// process (its own and every one above it, in each hierarchy with the pids
// controller); false when that cannot be told. Read once: threadsLimited
// and cgroupRoom both ask at start.
var pidsCgroups = sync.OnceValues(readPidsCgroups)

func readPidsCgroups() ([]string, bool) {
	b := rawReadFile("/proc/self/cgroup", make([]byte, 4<<10))
	if b == nil {
		return nil, false
	}
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			return nil, false
		}
		var mounts []string
		switch {
		case f[1] == "": // the unified hierarchy (cgroup v2)
			mounts = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}
		case slices.Contains(strings.Split(f[1], ","), "pids"): // cgroup v1's pids controller
			mounts = []string{"/sys/fs/cgroup/pids"}
		default:
			continue
		}
		levels, ok := pidsLevels(mounts, f[2])
		if !ok {
			return nil, false
		}
		dirs = append(dirs, levels...)
	}
	return dirs, true
}

// pidsLimited says whether the cgroup at path, or one above it, has a
// pids.max other than "max", under the first of mounts that holds the
// hierarchy, or whether that cannot be told.
func pidsLimited(mounts []string, path string) bool {
	levels, ok := pidsLevels(mounts, path)
	return !ok || anyLimited(levels)
}

// pidsLevels are the directories of the cgroup at path and of every one
// above it, under the first of mounts that holds the hierarchy. The root
// cgroup has no pids.max. Where the path is not found under any mount (a
// container that sees the host's path but has only its own cgroup
// mounted), the mount's top is the cgroup to check, and only when that has
// a pids.max to read: anything else cannot be told (false).
func pidsLevels(mounts []string, path string) ([]string, bool) {
	path = "/" + strings.Trim(path, "/")
	for _, mnt := range mounts {
		fd, ok := rawOpen(strings.TrimSuffix(mnt+path, "/")+"/", unix.O_RDONLY|unix.O_DIRECTORY)
		if !ok {
			continue
		}
		rawClose(fd)
		var levels []string
		for dir := path; ; dir = parentDir(dir) {
			levels = append(levels, strings.TrimSuffix(mnt+dir, "/"))
			if dir == "/" {
				return levels, true
			}
		}
	}
	buf := make([]byte, 64)
	for _, mnt := range mounts {
		if rawReadFile(mnt+"/pids.max", buf) != nil {
			return []string{mnt}, true
		}
	}
	return nil, path == "/"
}

// limited says whether the pids.max file at path sets a limit: absent (the
// root cgroup, or one without the controller) it does not; unreadable, it
// may.
func limited(path string, buf []byte) bool {
	if b := rawReadFile(path, buf); b != nil {
		return strings.TrimSpace(string(b)) != "max"
	}
	var st unix.Stat_t
	return unix.Stat(path, &st) != unix.ENOENT
}

// cgroupRoom is how many more tasks this process's cgroups let it make:
// the least, over the cgroups with a pids.max, of pids.max less
// pids.current; false when no cgroup sets a limit that can be read.
func cgroupRoom() (int, bool) {
	dirs, ok := pidsCgroups()
	if !ok {
		return 0, false
	}
	buf := make([]byte, 64)
	room, found := 0, false
	for _, dir := range dirs {
		max, err1 := strconv.Atoi(strings.TrimSpace(string(rawReadFile(dir+"/pids.max", buf))))
		cur, err2 := strconv.Atoi(strings.TrimSpace(string(rawReadFile(dir+"/pids.current", buf))))
		if err1 != nil || err2 != nil {
			continue
		}
		if !found || max-cur < room {
			room, found = max-cur, true
		}
	}
	return room, found
}

func parentDir(dir string) string {
	if i := strings.LastIndexByte(dir, '/'); i > 0 {
		return dir[:i]
	}
	return "/"
}

// processHeadroom checks that this process may have need threads and
// processes of its own under its cgroups' pids.max and under RLIMIT_NPROC,
// which counts every task of the real uid. Root is not held to it. The whole process table is read only
// when the system's own count of tasks (/proc/loadavg) does not already
// show room.
func processHeadroom(need int) error {
	// A cgroup's pids.max counts this process's own threads among its
	// current tasks, and binds root too.
	if room, ok := cgroupRoom(); ok {
		if more := need - threadCount(); room < more {
			return &cgroupHeadroomError{room: room, need: more}
		}
	}
	var rl unix.Rlimit
	uid := os.Getuid()
	if uid == 0 || unix.Getrlimit(unix.RLIMIT_NPROC, &rl) != nil || rl.Cur == unix.RLIM_INFINITY {
		return nil
	}
	limit := int(min(rl.Cur, 1<<30))
	if total := systemTasks(); total > 0 && total+need <= limit {
		return nil
	}
	others := userTasks(uid)
	if others+need <= limit {
		return nil
	}
	return &headroomError{uid: uid, limit: limit, others: others, need: need}
}

// systemTasks is the number of tasks on the system, 0 if unknown: the
// fourth field of /proc/loadavg is running/total.
func systemTasks() int {
	b := rawReadFile("/proc/loadavg", make([]byte, 512))
	if b == nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0
	}
	_, total, ok := strings.Cut(f[3], "/")
	n, err := strconv.Atoi(total)
	if !ok || err != nil {
		return 0
	}
	return n
}

// userTasks counts the threads of the processes other than this one whose
// real uid is uid.
func userTasks(uid int) int {
	self := strconv.Itoa(os.Getpid())
	buf := make([]byte, 8<<10)
	n := 0
	for _, name := range rawReadDir("/proc") {
		if name == self || name[0] < '0' || name[0] > '9' {
			continue
		}
		b := rawReadFile("/proc/"+name+"/status", buf)
		if b == nil {
			continue // gone, or hidden: not ours
		}
		if statusField(b, "Uid:") == uid {
			n += max(statusField(b, "Threads:"), 1)
		}
	}
	return n
}

// The headroom check reads /proc with raw system calls: they keep the
// calling thread and its P, where the runtime's system calls may hand the P
// to a new thread, and a thread is what the check is about to find short
// (a clone refused there is the runtime's fatal error, not exit 71). /proc
// answers at once, so holding the P costs nothing.

// rawReadFile is path's contents, as much as fits in buf, nil if it cannot
// be read. One buffer serves a whole scan: garbage would start a GC, whose
// workers want threads.
func rawReadFile(path string, buf []byte) []byte {
	fd, ok := rawOpen(path, unix.O_RDONLY)
	if !ok {
		return nil
	}
	defer rawClose(fd)
	n := 0
	for n < len(buf) {
		got, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[n])), uintptr(len(buf)-n))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return nil
		}
		if got == 0 {
			break
		}
		n += int(got)
	}
	return buf[:n]
}

// rawReadDir is the names in dir, as many as could be read.
func rawReadDir(dir string) []string {
	fd, ok := rawOpen(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if !ok {
		return nil
	}
	defer rawClose(fd)
	var names []string
	buf := make([]byte, 32<<10)
	for {
		got, _, errno := unix.RawSyscall(unix.SYS_GETDENTS64, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 || got == 0 {
			return names
		}
		_, _, names = unix.ParseDirent(buf[:got], -1, names)
	}
}

// atFDCWD is AT_FDCWD as a system call's argument.
var atFDCWD = unix.AT_FDCWD

func rawOpen(path string, flags int) (uintptr, bool) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return 0, false
	}
	for {
		fd, _, errno := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(p)),
			uintptr(flags|unix.O_CLOEXEC), 0, 0, 0)
		if errno != unix.EINTR {
			return fd, errno == 0
		}
	}
}

func rawClose(fd uintptr) { _, _, _ = unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0) }

// statusField is the first number after key in a /proc status file, -1 if
// there is none.
func statusField(status []byte, key string) int {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if n, err := strconv.Atoi(f[0]); err == nil {
					return n
				}
			}
		}
	}
	return -1
}
