package main

import (
	"os"
	"strconv"

	"gwlock/internal/proc"
)

// maxAncestry bounds the walk up the parent links: a chain this deep is no
// real process tree, and pids reused meanwhile could make a loop.
const maxAncestry = 4096

// descendsFromUs says whether gwlock is among pid's ancestors now, by the
// parent links of /proc/<pid>/stat. A link that cannot be read (the process
// is gone, or /proc cannot be read) answers no: a sender that cannot be
// placed in the tree does not speak for the gateway.
func descendsFromUs(pid int) bool {
	self := os.Getpid()
	for i := 0; i < maxAncestry && pid > 1; i++ {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		st, err := proc.ParseStat(b)
		if err != nil || st.Exited() {
			return false
		}
		if st.PPID == self {
			return true
		}
		pid = st.PPID
	}
	return false
}
