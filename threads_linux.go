package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// threadCount is this process's number of threads, 0 if unknown.
func threadCount() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	return statusField(b, "Threads:")
}

// processHeadroom checks that this process may have need threads and
// processes of its own under RLIMIT_NPROC, which counts every task of the
// real uid. Root is not held to it. The whole process table is read only
// when the system's own count of tasks (/proc/loadavg) does not already
// show room.
func processHeadroom(need int) error {
	var rl unix.Rlimit
	uid := os.Getuid()
	if uid == 0 || unix.Getrlimit(unix.RLIMIT_NPROC, &rl) != nil || rl.Cur == unix.RLIM_INFINITY {
		return nil
	}
	limit := int(min(rl.Cur, 1<<30))
	if total := systemTasks(); total > 0 && total+need <= limit {
		return nil
	}
	others := userTasks(uid)
	if others+need <= limit {
		return nil
	}
	return &headroomError{uid: uid, limit: limit, others: others, need: need}
}

// systemTasks is the number of tasks on the system, 0 if unknown: the
// fourth field of /proc/loadavg is running/total.
func systemTasks() int {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0
	}
	_, total, ok := strings.Cut(f[3], "/")
	n, err := strconv.Atoi(total)
	if !ok || err != nil {
		return 0
	}
	return n
}

// userTasks counts the threads of the processes other than this one whose
// real uid is uid.
func userTasks(uid int) int {
	names, _ := filepath.Glob("/proc/[0-9]*/status")
	self := "/proc/" + strconv.Itoa(os.Getpid()) + "/status"
	n := 0
	for _, name := range names {
		if name == self {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			continue // gone, or hidden: not ours
		}
		if statusField(b, "Uid:") == uid {
			n += max(statusField(b, "Threads:"), 1)
		}
	}
	return n
}

// statusField is the first number after key in a /proc status file, -1 if
// there is none.
func statusField(status []byte, key string) int {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if n, err := strconv.Atoi(f[0]); err == nil {
					return n
				}
			}
		}
	}
	return -1
}
