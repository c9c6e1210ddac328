//go:build unix && !linux

package main

import "golang.org/x/sys/unix"

// processGroupAlive says process group pgid has a member. Zombies cannot be
// told apart here, so a group whose last member awaits its reaper still
// counts: the cautious answer, which only delays a recovery.
//
// Nor can the session be checked: a group whose number was taken by another
// user's process counts as the gateway's here (Linux checks the session).
func processGroupAlive(pgid, sid int) bool {
	if pgid <= 0 || sid <= 0 {
		return false
	}
	err := unix.Kill(-pgid, 0)
	return err == nil || err == unix.EPERM
}

// descendantPIDs: only Linux lists a process's descendants without
// privilege; the tree is then known by its process group and the lock's
// holders.
func descendantPIDs() []int { return nil }
