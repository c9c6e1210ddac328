package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
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

// processesHolding lists the processes other than us with a descriptor open
// on the file: for a held lock, those that share it. It walks
// /proc/*/fd, so it costs milliseconds; it serves reports, never the hot path.
// Processes of other users are invisible without privilege.
func processesHolding(file fileID) []int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		fdDir := "/proc/" + p.Name() + "/fd/"
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			var st syscall.Stat_t
			if syscall.Stat(fdDir+fd.Name(), &st) == nil && (fileID{uint64(st.Dev), uint64(st.Ino)}) == file {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
