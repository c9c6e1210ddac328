//go:build openbsd || netbsd || dragonfly || solaris

package main

import (
	"errors"

	"golang.org/x/sys/unix"
)

// processStartTime is unknown on these systems: x/sys/unix has no Go type for
// their kinfo_proc (or, on illumos and Solaris, psinfo), and a start time read
// at a wrong offset could change while the process lives, which would judge a
// live owner "pid-reused". Without it a payload is judged by flock, kill(pid, 0)
// and --stale alone. (The solaris tag also covers GOOS=illumos.)
func processStartTime(pid int) (string, bool) { return "", false }

// bootID is empty off Linux: no boot id the clock cannot move.
func bootID() string { return "" }

func touchFD(fd int) error { return unix.Futimes(fd, nil) }

func setSubreaper() error {
	return errors.New("--subreaper is Linux only")
}
