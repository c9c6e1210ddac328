package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// exited reads the process's state: Z is an exited process awaiting its
// reaper, X one being reaped.
func exited(pid int) (bool, error) {
	st, err := readStat(strconv.Itoa(pid))
	if err != nil {
		return false, err
	}
	return st.Exited(), nil
}

func startTime(pid int) (string, error) {
	st, err := readStat(strconv.Itoa(pid))
	if err != nil {
		return "", err
	}
	if st.StartTime == "" {
		return "", fmt.Errorf("/proc/%d/stat: %w", pid, errStatLine)
	}
	return st.StartTime, nil
}

// readStat reads and parses /proc/<pid>/stat.
func readStat(pid string) (Stat, error) {
	path := "/proc/" + pid + "/stat"
	b, err := readProc(path)
	if err != nil {
		return Stat{}, &os.PathError{Op: "read", Path: path, Err: err}
	}
	st, err := ParseStat(b)
	if err != nil {
		return Stat{}, &os.PathError{Op: "parse", Path: path, Err: err}
	}
	return st, nil
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

// pids lists the process directories of /proc, by number and name.
func pids() ([]int, []string, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, nil, err
	}
	nums, names := make([]int, 0, len(ents)), make([]string, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			nums, names = append(nums, pid), append(names, e.Name())
		}
	}
	return nums, names, nil
}

// gone says a /proc read failed because the process went away meanwhile:
// not a failure to learn anything.
func gone(err error) bool {
	return os.IsNotExist(err) || errors.Is(err, unix.ESRCH)
}

func descendants() ([]int, error) {
	nums, names, err := pids()
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	var failed error
	for i, name := range names {
		st, err := readStat(name)
		switch {
		case err == nil && !st.Exited():
			children[st.PPID] = append(children[st.PPID], nums[i])
		case err != nil && !gone(err) && failed == nil:
			failed = err
		}
	}
	var out []int
	for queue := children[os.Getpid()]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children[queue[0]]...)
	}
	return out, failed
}

// groupAlive reads the whole table; kill(-pgid, 0) first spares that when
// no process of the group is left at all.
func groupAlive(pgid, sid int) (bool, error) {
	if unix.Kill(-pgid, 0) == unix.ESRCH {
		return false, nil
	}
	_, names, err := pids()
	if err != nil {
		return false, err
	}
	var failed error
	for _, name := range names {
		st, err := readStat(name)
		if err == nil && st.Group == pgid && st.Session == sid && !st.Exited() {
			return true, nil
		}
		if err != nil && !gone(err) && failed == nil {
			failed = err
		}
	}
	return false, failed
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
