package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// descendantPIDs lists every descendant of this process, from the parent
// links in /proc/<pid>/stat: the gateway's whole tree, a worker that left its
// process group (setsid) and closed its descriptors included. It reads the
// whole process table (about a millisecond for a hundred processes), so the
// supervisor calls it on a schedule, never in a hot path.
func descendantPIDs() []int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		if b, err := readProc("/proc/" + p.Name() + "/stat"); err == nil {
			if st, ok := parseProcStatus(b); ok && !st.exited() {
				children[st.ppid] = append(children[st.ppid], pid)
			}
		}
	}
	var out []int
	for queue := children[os.Getpid()]; len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, children[queue[0]]...)
	}
	return out
}

// flockHolders lists the processes other than us with a descriptor that
// holds the kernel lock now on file: the lock's own open file description,
// shared by inheritance (fd 3). /proc/<pid>/fdinfo shows a "lock:" line only
// for the descriptor whose open file holds the lock, so a contender or a
// reader that merely has the file open is never listed. Only descriptors
// whose link names base are read, and nothing is stat'ed: a process with a
// file on a hung mount cannot stall the scan.
func flockHolders(file fileID, base string) []int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self, needle := os.Getpid(), flockNeedle(file)
	// A file made with O_TMPFILE keeps its birth name in /proc links after
	// it is linked into place: "/dir/#<inode> (deleted)".
	names := []string{base, "/#" + strconv.FormatUint(file.b, 10) + " "}
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		if holdsFlock("/proc/"+p.Name(), names, needle) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func holdsFlock(proc string, names []string, needle string) bool {
	fds, err := os.ReadDir(proc + "/fd")
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if link, err := os.Readlink(proc + "/fd/" + fd.Name()); err != nil || !containsAny(link+" ", names) {
			continue
		}
		if info, err := os.ReadFile(proc + "/fdinfo/" + fd.Name()); err == nil && strings.Contains(string(info), needle) {
			return true
		}
	}
	return false
}

// flockNeedle is how /proc/locks and fdinfo write a flock on file:
// " FLOCK ... <major>:<minor>:<inode> ", device numbers in hex.
func flockNeedle(file fileID) string {
	return fmt.Sprintf(" %02x:%02x:%d ", unix.Major(file.a), unix.Minor(file.a), file.b)
}

// flockCreator reads /proc/locks for the process that took the flock now
// held on file. The kernel keeps the creator's pid for the lock's whole
// life, also when that process is dead and its descendants hold the lock.
func flockCreator(file fileID) (int, bool) {
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, false
	}
	needle := flockNeedle(file)
	for _, line := range strings.Split(string(b), "\n") {
		// "1: FLOCK  ADVISORY  WRITE 19164 fe:00:9977940 0 EOF"; blocked
		// requests are written "1: -> FLOCK ..." and are not the holder.
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && strings.Contains(line+" ", needle) {
			pid, err := strconv.Atoi(f[4])
			return pid, err == nil
		}
	}
	return 0, true // no flock at all: nobody holds it now
}

// processGroupAlive says a live (not zombie) process of session sid is in
// group pgid. The session is what makes the answer the gateway's: once the
// group emptied, anyone who got the pid number can lead a group of that
// number, but only in a session of their own (setsid), never in the
// launcher's, where the gateway's group was made.
func processGroupAlive(pgid, sid int) bool {
	if pgid <= 0 || sid <= 0 || unix.Kill(-pgid, 0) == unix.ESRCH {
		return false
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, p := range procs {
		b, err := readProc("/proc/" + p.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, ok := parseProcStatus(b); ok && st.group == pgid && st.session == sid && !st.exited() {
			return true
		}
	}
	return false
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// taggedProcess names a live process other than us whose initial
// environment holds GWLOCK_LOCK_TOKEN=token: run sets it for the gateway,
// and every descendant inherits it, whatever the tree did since (setsid,
// double fork, closing fd 3). The token, not the lock's path, is matched:
// the same file has other spellings (a symlinked directory, /var/run), and
// the same path names another file in another mount namespace. Only
// processes of our own uid count: anyone can put the variable in an
// environment, and a judge running as root must not let another user's
// process keep a dead lock forever. A zombie's environ is empty.
//
// The whole table is read, so only a judgement that found nothing recorded
// alive calls it; a contender that waits on such a tree checks the process
// it found last before reading the table again.
func taggedProcess(token string) (int, bool) {
	needle := []byte("\x00GWLOCK_LOCK_TOKEN=" + token + "\x00")
	self, uid := os.Getpid(), os.Geteuid()
	lastTagged.Lock()
	defer lastTagged.Unlock()
	buf := lastTagged.buf
	defer func() { lastTagged.buf = buf[:0] }()
	if lastTagged.token == token && carries(strconv.Itoa(lastTagged.pid), needle, uid, &buf) {
		return lastTagged.pid, true
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self || !carries(p.Name(), needle, uid, &buf) {
			continue
		}
		lastTagged.token, lastTagged.pid = token, pid
		return pid, true
	}
	return 0, false
}

var lastTagged struct {
	sync.Mutex
	token string
	pid   int
	buf   []byte // reused: a scan reads every process's environment
}

// carries says process pid, of user uid, has needle in its environment.
func carries(pid string, needle []byte, uid int, buf *[]byte) bool {
	env, err := readEnviron("/proc/"+pid+"/environ", uid, buf)
	if errors.Is(err, unix.ESRCH) {
		// A main thread that called pthread_exit has no memory to read
		// through; the process's other threads still show it.
		env, err = threadEnviron(pid, uid, buf)
	}
	return err == nil && bytes.Contains(env, needle)
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
		return nil, err
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

// pidNamespace names our PID namespace, as "pid:[4026531836]".
func pidNamespace() string {
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return ns
}
