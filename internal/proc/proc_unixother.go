//go:build unix && !linux

package proc

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// exited: these systems show no zombie to an unprivileged reader without
// their kinfo_proc, so a process awaiting its reaper counts as present:
// the cautious answer, which only delays a recovery.
func exited(int) (bool, error) { return false, nil }

// groupAlive cannot check the session or tell a zombie here: any member
// counts, also one of a group whose number another user's process took.
func groupAlive(pgid, _ int) (bool, error) {
	switch err := unix.Kill(-pgid, 0); err {
	case nil, unix.EPERM:
		return true, nil
	case unix.ESRCH:
		return false, nil
	default:
		return false, fmt.Errorf("probe process group %d: %w", pgid, err)
	}
}
