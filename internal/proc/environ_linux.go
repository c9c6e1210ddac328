package proc

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// The token search reads the initial environment (/proc/<pid>/environ) of
// every process that runs as one of the given uids. A zombie's is empty; a
// process whose main thread called pthread_exit is read through one of its
// other threads.
var lastTagged struct {
	sync.Mutex
	token string
	pid   int
	buf   []byte // reused: a scan reads every process's environment
}

func tagged(token string, uids []int, bornAfter string) (int, error) {
	needle := []byte("\x00" + TokenVar + "=" + token + "\x00")
	self := os.Getpid()
	lastTagged.Lock()
	defer lastTagged.Unlock()
	buf := lastTagged.buf
	defer func() { lastTagged.buf = buf[:0] }()
	if lastTagged.token == token {
		if found, _ := carries(strconv.Itoa(lastTagged.pid), needle, uids, bornAfter, &buf); found {
			return lastTagged.pid, nil
		}
	}
	nums, names, err := pids()
	if err != nil {
		return 0, err
	}
	var failed error
	for i, name := range names {
		if nums[i] == self {
			continue
		}
		found, err := carries(name, needle, uids, bornAfter, &buf)
		if found {
			lastTagged.token, lastTagged.pid = token, nums[i]
			return nums[i], nil
		}
		if err != nil && failed == nil {
			failed = err
		}
	}
	return 0, failed
}

// carries says process pid runs as one of uids and has needle in its
// environment. A process that is gone, or that runs as another uid, is not
// an error. Its /proc directory belongs to its effective uid, or to root
// when it is non-dumpable: a directory of none of uids is not read at all
// (a non-root judge could not read it anyway); otherwise the real uid,
// from status, decides before the environment is read.
func carries(pid string, needle []byte, uids []int, bornAfter string, buf *[]byte) (bool, error) {
	dir := "/proc/" + pid
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		if gone(err) {
			return false, nil
		}
		return false, &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	if !slices.Contains(uids, int(st.Uid)) {
		return false, nil
	}
	real, err := readUID(pid)
	if err != nil || !slices.Contains(uids, real) {
		return false, unlessGone(err)
	}
	env, err := readEnviron(dir+"/environ", buf)
	if errors.Is(err, unix.ESRCH) {
		// A main thread that called pthread_exit has no memory to read
		// through; the process's other threads still show it.
		env, err = threadEnviron(pid, buf)
	}
	if err != nil && !gone(err) && startedBefore(pid, bornAfter) {
		// Unreadable (PID 1 of a container, a process with capabilities
		// we lack), but older than the tree: it cannot carry the token.
		return false, nil
	}
	if err != nil {
		return false, environErr(dir, err)
	}
	return bytes.Contains(env, needle), nil
}

// environErr is what a failed read of dir's environment tells the judge:
// nothing when it failed because the process is gone (reaped between the
// listing and the read, its task directory emptied under readdir), which is
// no failure to read a process that exists. Judged before it is wrapped:
// os.IsNotExist does not look through a PathError inside a PathError.
func environErr(dir string, err error) error {
	if gone(err) {
		return nil
	}
	return &os.PathError{Op: "read", Path: dir + "/environ", Err: err}
}

// startedBefore says process pid is known to have started before the
// start time bound (clock ticks after boot, as StartTime gives them).
func startedBefore(pid, bound string) bool {
	limit, err := strconv.ParseUint(bound, 10, 64)
	if err != nil {
		return false
	}
	st, err := readStat(pid)
	if err != nil {
		return false
	}
	started, err := strconv.ParseUint(st.StartTime, 10, 64)
	return err == nil && started < limit
}

// unlessGone is err, or nil when it says only that the process went away.
func unlessGone(err error) error {
	if err == nil || gone(err) {
		return nil
	}
	return err
}

// environMax bounds what is read of one environment (Linux allows a few MiB
// for argv and environ together).
const environMax = 8 << 20

// readEnviron reads an environ file into *buf, with a NUL before and after,
// so that every variable is delimited on both sides. Raw syscalls: os.Open
// would try to add each /proc file to the poller, three wasted calls per
// process of a scan over the whole table.
func readEnviron(path string, buf *[]byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	b, err := readFD(fd, append((*buf)[:0], 0), environMax)
	b = append(b, 0)
	*buf = b // kept for the next process, whatever this read gave
	if err != nil {
		return nil, err
	}
	return b, nil
}

// threadEnviron reads pid's environment through one of its other threads.
func threadEnviron(pid string, buf *[]byte) ([]byte, error) {
	tasks, err := os.ReadDir("/proc/" + pid + "/task")
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		if t.Name() == pid {
			continue
		}
		if env, err := readEnviron("/proc/"+pid+"/task/"+t.Name()+"/environ", buf); err == nil {
			return env, nil
		}
	}
	return nil, unix.ESRCH
}

func uid(pid int) (int, error) { return readUID(strconv.Itoa(pid)) }

// readUID reads the real uid, the first number of status's "Uid:" line.
func readUID(pid string) (int, error) {
	path := "/proc/" + pid + "/status"
	b, err := readProc(path)
	if err != nil {
		return 0, &os.PathError{Op: "read", Path: path, Err: err}
	}
	uid, err := ParseStatusUID(b)
	if err != nil {
		return 0, &os.PathError{Op: "parse", Path: path, Err: err}
	}
	return uid, nil
}

func stopped(pid int) (bool, error) {
	st, err := readStat(strconv.Itoa(pid))
	if err != nil {
		return false, err
	}
	return st.Stopped(), nil
}
