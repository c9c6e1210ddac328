package proc

import (
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
	nums, names, err := pids()
	if err != nil {
		return nil, err
	}
	self, needle := os.Getpid(), flockNeedle(dev, ino)
	// A file made with O_TMPFILE keeps its birth name in /proc links after
	// it is linked into place: "/dir/#<inode> (deleted)".
	links := []string{base, "/#" + strconv.FormatUint(ino, 10) + " "}
	var holders []int
	var failed error
	for i, name := range names {
		if nums[i] == self {
			continue
		}
		held, err := holdsFlock("/proc/"+name, links, needle)
		if held {
			holders = append(holders, nums[i])
		}
		// Another user's descriptors are not ours to read (unless we are
		// root): such a process is passed over, not a failure.
		if err != nil && !gone(err) && !os.IsPermission(err) && failed == nil {
			failed = err
		}
	}
	return holders, failed
}

// holdsFlock says a descriptor of the process at proc, linked to one of
// links, holds the flock needle names.
func holdsFlock(proc string, links []string, needle string) (bool, error) {
	fds, err := os.ReadDir(proc + "/fd")
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		if link, err := os.Readlink(proc + "/fd/" + fd.Name()); err != nil || !containsAny(link+" ", links) {
			continue
		}
		if info, err := os.ReadFile(proc + "/fdinfo/" + fd.Name()); err == nil && strings.Contains(string(info), needle) {
			return true, nil
		}
	}
	return false, nil
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
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
