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
}

// survivor is one pass over the table for both questions: each process's
// stat is read once, for its group and session and for its age, and only
// a process younger than bornAfter has its environment read.
func survivor(q TreeQuery) (int, error) {
	groups := make([]int, 0, len(q.Groups))
	for _, g := range q.Groups {
		if g > 0 && unix.Kill(-g, 0) != unix.ESRCH { // no process of the group at all: no scan for it
			groups = append(groups, g)
		}
	}
	if q.Token == "" {
		if len(groups) == 0 {
			return 0, nil
		}
	}
	needle := []byte("\x00" + TokenVar + "=" + q.Token + "\x00")
	self := os.Getpid()
	lastTagged.Lock()
	defer lastTagged.Unlock()
	scanLock.Lock()
	defer scanLock.Unlock()
	s := &scan
	defer s.trim()
	born, bornKnown := parseStart(q.BornAfter)
	if q.Token != "" && lastTagged.token == q.Token {
		if found, _ := s.carries(lastTagged.pid, needle, q.UIDs, born, bornKnown); found {
			return lastTagged.pid, nil
		}
	}
	var found int
	var failed error
	err := eachNumber(s.procPath(0, "", -1), &s.procDir, func(pid int) bool {
		if pid == self {
			return true
		}
		alive, f := s.survives(pid, groups, q, needle, born, bornKnown)
		if alive != 0 {
			found = alive
			return false
		}
		if f.err != nil && !gone(f.err) && failed == nil {
			failed = f.at("/proc/" + strconv.Itoa(pid))
		}
		return true
	})
	switch {
	case found != 0:
		return found, nil
	case err != nil:
		return 0, err
	}
	return 0, failed
}

// survives is what survivor learns of one process: the group it keeps
// alive, or its own pid if it carries the token, or 0; or why it could not
// tell.
func (s *scanner) survives(pid int, groups []int, q TreeQuery, needle []byte, born uint64, bornKnown bool) (int, readFailure) {
	if len(groups) > 0 {
		st, start, f := s.stat(pid)
		if f.err != nil {
			return 0, f
		}
		if !st.Exited() && st.Session == q.Session && slices.Contains(groups, st.Group) {
			return st.Group, readFailure{}
		}
		if started, ok := parseStart(string(start)); bornKnown && ok && started < born {
			return 0, readFailure{} // older than the tree: carries is spared a second read
		}
		bornKnown = false
	}
	if q.Token == "" {
		return 0, readFailure{}
	}
	found, f := s.carries(pid, needle, q.UIDs, born, bornKnown)
	if found {
		lastTagged.token, lastTagged.pid = q.Token, pid
		return pid, readFailure{}
	}
	return 0, f
}

func tagged(token string, uids []int, bornAfter string) (int, error) {
	return survivor(TreeQuery{Token: token, UIDs: uids, BornAfter: bornAfter})
}

// parseStart reads a StartTime as clock ticks after boot.
func parseStart(st string) (uint64, bool) {
	ticks, err := strconv.ParseUint(st, 10, 64)
	return ticks, err == nil
}

// readFailure is why one file of a process could not be read, as the
// kernel said it: a search names the path of its first failure only, so a
// host of unreadable processes costs no allocation each.
type readFailure struct {
	op, leaf string // leaf "" is the process's directory
	err      error  // nil: no failure
}

// at is the failure as an error about the process directory dir, or nil
// when there was none or the process is gone: a process reaped between the
// listing and the read (its task directory emptied under readdir) is no
// failure to read a process that exists.
func (f readFailure) at(dir string) error {
	if f.err == nil || gone(f.err) {
		return nil
	}
	return f.of(dir)
}

// of is the failure as an error about the process directory dir, also
// when the process is gone; nil when there was none.
func (f readFailure) of(dir string) error {
	if f.err == nil {
		return nil
	}
	if f.leaf != "" {
		dir += "/" + f.leaf
	}
	return &os.PathError{Op: f.op, Path: dir, Err: f.err}
}

// carries says process pid runs as one of uids and has needle in its
// environment, or why it could not tell. A process that is gone, or that
// runs as another uid, is not a failure. Its /proc directory belongs to its
// effective uid, or to root when it is non-dumpable: a directory of none of
// uids is not read at all (a non-root judge could not read it anyway);
// otherwise the real uid, from status, decides before the environment is
// read. born, if bornKnown, is when the tree's launcher started: an older
// process is passed over unread (PID 1 of a container, whose environment a
// judge may not read, included).
func (s *scanner) carries(pid int, needle []byte, uids []int, born uint64, bornKnown bool) (bool, readFailure) {
	if bornKnown && s.startedBefore(pid, born) {
		// Older than the tree's launcher, which forked the whole tree
		// after it started: no process of the tree. Most of a host's
		// processes end here, on one read of their stat, which anyone
		// may read.
		return false, readFailure{}
	}
	owner, err := s.owner(pid)
	if err != nil {
		return false, readFailure{"stat", "", err}
	}
	if !slices.Contains(uids, owner) {
		return false, readFailure{}
	}
	real, f := s.realUID(pid)
	if f.err != nil || !slices.Contains(uids, real) {
		return false, f
	}
	env, err := s.environ(s.procPath(pid, "environ", -1))
	if errors.Is(err, unix.ESRCH) {
		// A main thread that called pthread_exit has no memory to read
		// through; the process's other threads still show it.
		env, err = s.threadEnviron(pid)
	}
	if err != nil {
		return false, readFailure{"read", "environ", err}
	}
	return bytes.Contains(env, needle), readFailure{}
}

// owner is the uid that owns /proc/<pid>, by fstat of the directory opened
// as a path only: nothing of the process is read.
func (s *scanner) owner(pid int) (int, error) {
	fd, err := openPath(s.procPath(pid, "", -1), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return int(st.Uid), nil
}

// realUID reads the real uid from /proc/<pid>/status.
func (s *scanner) realUID(pid int) (int, readFailure) {
	b, err := s.readPath(s.procPath(pid, "status", -1))
	if err != nil {
		return 0, readFailure{"read", "status", err}
	}
	uid, err := ParseStatusUID(b)
	if err != nil {
		return 0, readFailure{"parse", "status", err}
	}
	return uid, readFailure{}
}

// startedBefore says process pid is known to have started before the
// start time bound (clock ticks after boot, as StartTime gives them).
func (s *scanner) startedBefore(pid int, bound uint64) bool {
	_, start, f := s.stat(pid)
	if f.err != nil {
		return false
	}
	started, ok := parseStart(string(start))
	return ok && started < bound
}

// environMax bounds what is read of one environment (Linux allows a few MiB
// for argv and environ together).
const environMax = 8 << 20

// environ reads the environ file at path into s.env, with a NUL before and
// after, so that every variable is delimited on both sides.
func (s *scanner) environ(path []byte) ([]byte, error) {
	fd, err := openPath(path, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	b, err := readFD(fd, append(s.env[:0], 0), environMax)
	b = append(b, 0)
	s.env = b[:0] // kept for the next process, whatever this read gave
	if err != nil {
		return nil, err
	}
	return b, nil
}

// threadEnviron reads pid's environment through one of its other threads.
func (s *scanner) threadEnviron(pid int) ([]byte, error) {
	var env []byte
	err := eachNumber(s.procPath(pid, "task", -1), &s.subDir, func(tid int) bool {
		if tid == pid {
			return true
		}
		path := s.procPath(pid, "task", tid)
		path = append(path[:len(path)-1], "/environ\x00"...)
		var err error
		env, err = s.environ(path)
		return err != nil
	})
	if err != nil {
		return nil, err
	}
	if env == nil {
		return nil, unix.ESRCH
	}
	return env, nil
}

func uid(pid int) (int, error) {
	scanLock.Lock()
	defer scanLock.Unlock()
	uid, f := scan.realUID(pid)
	if f.err != nil {
		return 0, f.of("/proc/" + strconv.Itoa(pid))
	}
	return uid, nil
}

func stopped(pid int) (bool, error) {
	st, err := readStat(pid)
	if err != nil {
		return false, err
	}
	return st.Stopped(), nil
}
