package proc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// flockHolders reads /proc/<pid>/fdinfo, which shows a "lock:" line only for
// the descriptor whose open file holds the lock. Only descriptors whose link
// names base are read.
func flockHolders(dev, ino uint64, base string) ([]int, error) {
	scanLock.Lock()
	defer scanLock.Unlock()
	s := &scan
	self, needle := os.Getpid(), []byte(flockNeedle(dev, ino))
	// A file made with O_TMPFILE keeps its birth name in /proc links after
	// it is linked into place: "/dir/#<inode> (deleted)".
	links := [][]byte{[]byte(base), []byte("/#" + strconv.FormatUint(ino, 10) + " ")}
	var holders []int
	var failed error
	err := eachNumber(s.procPath(0, "", -1), &s.procDir, func(pid int) bool {
		if pid == self {
			return true
		}
		held, err := s.holdsFlock(pid, links, needle)
		if held {
			holders = append(holders, pid)
		}
		// Another user's descriptors are not ours to read (unless we are
		// root): such a process is passed over, not a failure.
		if err != nil && !gone(err) && !os.IsPermission(err) && failed == nil {
			failed = err
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	return holders, failed
}

// holdsFlock says a descriptor of process pid, linked to one of links,
// holds the flock needle names.
func (s *scanner) holdsFlock(pid int, links [][]byte, needle []byte) (bool, error) {
	held := false
	err := eachNumber(s.procPath(pid, "fd", -1), &s.subDir, func(fd int) bool {
		link, err := readlinkPath(s.procPath(pid, "fd", fd), s.link[:cap(s.link)])
		// The space ends a link, as the O_TMPFILE name is matched.
		if err != nil || len(link) == cap(link) || !containsAny(append(link, ' '), links) {
			return true
		}
		info, err := s.readPath(s.procPath(pid, "fdinfo", fd))
		held = err == nil && bytes.Contains(info, needle)
		return !held
	})
	return held, err
}

func containsAny(s []byte, subs [][]byte) bool {
	for _, sub := range subs {
		if bytes.Contains(s, sub) {
			return true
		}
	}
	return false
}

// flockNeedle is how /proc/locks and fdinfo write a flock on the file:
// " FLOCK ... <major>:<minor>:<inode> ", device numbers in hex.
func flockNeedle(dev, ino uint64) string {
	return fmt.Sprintf(" %02x:%02x:%d ", unix.Major(dev), unix.Minor(dev), ino)
}

func flockCreator(dev, ino uint64) (int, error) {
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0, err
	}
	needle := flockNeedle(dev, ino)
	for _, line := range strings.Split(string(b), "\n") {
		// "1: FLOCK  ADVISORY  WRITE 19164 fe:00:9977940 0 EOF"; blocked
		// requests are written "1: -> FLOCK ..." and are not the holder.
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && strings.Contains(line+" ", needle) {
			pid, err := strconv.Atoi(f[4])
			if err != nil {
				return 0, fmt.Errorf("/proc/locks: pid %q: %w", f[4], err)
			}
			return pid, nil
		}
	}
	return 0, nil
}
