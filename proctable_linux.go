package main

import (
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"strconv"
	"strings"
)

// childPIDs lists this process's children from /proc/self/task/*/children.
// With gwlock a subreaper, they are every process of the gateway's tree whose
// own parent is gone: a daemon that forked and let its parent exit is here.
func childPIDs() []int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil
	}
	var pids []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return uniquePIDs(pids)
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

// processGroupAlive says a live (not zombie) process is in group pgid.
func processGroupAlive(pgid int) bool {
	if pgid <= 0 || unix.Kill(-pgid, 0) == unix.ESRCH {
		return false
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return true // the group exists; its members cannot be told from zombies
	}
	for _, p := range procs {
		b, err := os.ReadFile("/proc/" + p.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, group, ok := parseProcStateGroup(b); ok && group == pgid && st != 'Z' && st != 'X' {
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
