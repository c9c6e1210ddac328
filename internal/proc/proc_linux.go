package proc

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// exited reads the process's state: Z is an exited process awaiting its
// reaper, X one being reaped.
func exited(pid int) (bool, error) {
	st, err := readStat(pid)
	if err != nil {
		return false, err
	}
	return st.Exited(), nil
}

func startTime(pid int) (string, error) {
	st, err := readStat(pid)
	if err != nil {
		return "", err
	}
	if st.StartTime == "" {
		return "", fmt.Errorf("/proc/%d/stat: %w", pid, errStatLine)
	}
	return st.StartTime, nil
}

// readStat reads and parses /proc/<pid>/stat, through the scan's buffers.
func readStat(pid int) (Stat, error) {
	scanLock.Lock()
	defer scanLock.Unlock()
	st, start, f := scan.stat(pid)
	if start != nil {
		st.StartTime = string(start)
	}
	return st, f.of("/proc/" + strconv.Itoa(pid))
}

func bootID() (string, error) {
	const path = "/proc/sys/kernel/random/boot_id"
	b, err := readProc(path)
	if err != nil {
		return "", &os.PathError{Op: "read", Path: path, Err: err}
	}
	return string(bytes.TrimSpace(b)), nil
}

func pidNamespace() (string, error) {
	return os.Readlink("/proc/self/ns/pid")
}

func timeNamespace() (string, error) {
	return os.Readlink("/proc/self/ns/time")
}

// gone says a /proc read failed because the process went away meanwhile:
// not a failure to learn anything.
func gone(err error) bool {
	return os.IsNotExist(err) || errors.Is(err, unix.ESRCH)
}

// descendants collects every live process's parent link in a reused table,
// sorted by parent, and walks it down from this process.
func descendants() ([]int, error) {
	scanLock.Lock()
	defer scanLock.Unlock()
	s := &scan
	defer s.trim()
	links := s.links[:0]
	var failed error
	err := eachNumber(s.procPath(0, "", -1), &s.procDir, func(pid int) bool {
		st, _, f := s.stat(pid)
		switch {
		case f.err == nil && !st.Exited():
			links = append(links, procLink{pid: pid, ppid: st.PPID})
		case f.err != nil && !gone(f.err) && failed == nil:
			failed = f.at("/proc/" + strconv.Itoa(pid))
		}
		return true
	})
	s.links = links
	if err != nil {
		return nil, err
	}
	slices.SortFunc(links, func(a, b procLink) int { return cmp.Or(cmp.Compare(a.ppid, b.ppid), cmp.Compare(a.pid, b.pid)) })
	var out []int
	out = appendChildren(out, links, os.Getpid())
	for i := 0; i < len(out); i++ {
		out = appendChildren(out, links, out[i])
	}
	return out, failed
}

// appendChildren appends the children of parent, from links sorted by parent.
func appendChildren(out []int, links []procLink, parent int) []int {
	i, _ := slices.BinarySearchFunc(links, parent, func(l procLink, p int) int { return cmp.Compare(l.ppid, p) })
	for ; i < len(links) && links[i].ppid == parent; i++ {
		out = append(out, links[i].pid)
	}
	return out
}

// groupAlive is survivor asked of the group alone: kill(-pgid, 0) first
// spares the scan when no process of the group is left at all.
func groupAlive(pgid, sid int) (bool, error) {
	found, err := survivor(TreeQuery{Groups: []int{pgid}, Session: sid})
	return found != 0, err
}

// readProc reads a small /proc file with raw syscalls: os.ReadFile would
// first try to add it to the poller (three wasted calls), and a judgement
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
