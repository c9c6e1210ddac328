package proc

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// The token search reads the initial environment (/proc/<pid>/environ) of
// every process of our uid. A zombie's is empty; a process whose main thread
// called pthread_exit is read through one of its other threads.

var lastTagged struct {
	sync.Mutex
	token string
	pid   int
	buf   []byte // reused: a scan reads every process's environment
}

func tagged(token string) (int, error) {
	needle := []byte("\x00" + TokenVar + "=" + token + "\x00")
	self, uid := os.Getpid(), os.Geteuid()
	lastTagged.Lock()
	defer lastTagged.Unlock()
	buf := lastTagged.buf
	defer func() { lastTagged.buf = buf[:0] }()
	if lastTagged.token == token {
		if found, _ := carries(strconv.Itoa(lastTagged.pid), needle, uid, &buf); found {
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
		found, err := carries(name, needle, uid, &buf)
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

// carries says process pid, of user uid, has needle in its environment. A
// process that is gone or another user's is not an error.
func carries(pid string, needle []byte, uid int, buf *[]byte) (bool, error) {
	env, err := readEnviron("/proc/"+pid+"/environ", uid, buf)
	if errors.Is(err, unix.ESRCH) {
		// A main thread that called pthread_exit has no memory to read
		// through; the process's other threads still show it.
		env, err = threadEnviron(pid, uid, buf)
	}
	switch {
	case err == nil:
		return bytes.Contains(env, needle), nil
	case errors.Is(err, errNotOurs), gone(err):
		return false, nil
	}
	return false, &os.PathError{Op: "read", Path: "/proc/" + pid + "/environ", Err: err}
}

// environMax bounds what is read of one environment (Linux allows a few MiB
// for argv and environ together).
const environMax = 8 << 20

var errNotOurs = errors.New("another user's process")

// readEnviron reads an environ file of a process of user uid into *buf,
// with a NUL before and after, so that every variable is delimited on both
// sides. Raw syscalls: os.Open would try to add each /proc file to the
// poller, three wasted calls per process of a scan over the whole table.
func readEnviron(path string, uid int, buf *[]byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, refusedAsOthers(path, uid, err)
	}
	defer unix.Close(fd)
	// /proc/<pid> files belong to the process's effective uid (root if it
	// made itself undumpable, and then we could not read it anyway).
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if int(st.Uid) != uid {
		return nil, errNotOurs
	}
	b, err := readFD(fd, append((*buf)[:0], 0), environMax)
	b = append(b, 0)
	*buf = b // kept for the next process, whatever this read gave
	if err != nil {
		return nil, err
	}
	return b, nil
}

// refusedAsOthers turns a refusal to open another user's environ into
// errNotOurs: only a refusal of one of our own processes is a failure.
func refusedAsOthers(path string, uid int, err error) error {
	if err != unix.EACCES && err != unix.EPERM {
		return err
	}
	var st unix.Stat_t
	if unix.Stat(path, &st) == nil && int(st.Uid) != uid {
		return errNotOurs
	}
	return err
}

// threadEnviron reads pid's environment through one of its other threads.
func threadEnviron(pid string, uid int, buf *[]byte) ([]byte, error) {
	tasks, err := os.ReadDir("/proc/" + pid + "/task")
	if err != nil {
		return nil, err
	}
	for _, t := range tasks {
		if t.Name() == pid {
			continue
		}
		if env, err := readEnviron("/proc/"+pid+"/task/"+t.Name()+"/environ", uid, buf); err == nil {
			return env, nil
		}
	}
	return nil, unix.ESRCH
}
