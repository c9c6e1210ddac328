//go:build unix && !linux

package main

import "golang.org/x/sys/unix"

// processGroupAlive says process group pgid has a member. Zombies cannot be
// told apart here, so a group whose last member awaits its reaper still
// counts: the cautious answer, which only delays a recovery.
func processGroupAlive(pgid int) bool {
	if pgid <= 0 {
		return false
	}
	err := unix.Kill(-pgid, 0)
	return err == nil || err == unix.EPERM
}

// childPIDs: only Linux lists a process's children without privilege; the
// tree is then known by its process group and the lock's holders.
func childPIDs() []int { return nil }
