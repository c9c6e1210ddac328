//go:build unix

package proc

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// probe asks kill(pid, 0); EPERM means the process exists and is another
// user's. Whether it has exited is then exited's to say.
func probe(pid int) (State, error) {
	switch err := unix.Kill(pid, 0); err {
	case nil, unix.EPERM:
	case unix.ESRCH:
		return Absent, nil
	default:
		return Unknown, fmt.Errorf("probe pid %d: %w", pid, err)
	}
	gone, err := exited(pid)
	if err != nil {
		return Present, err
	}
	if gone {
		return Absent, nil
	}
	return Present, nil
}

func sessionID() (int, error) {
	sid, err := unix.Getsid(0)
	if err != nil {
		return 0, fmt.Errorf("getsid: %w", err)
	}
	return sid, nil
}
