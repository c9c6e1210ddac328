//go:build !linux

package main

// Off Linux gwlock cannot list a process's children or a file's users without
// privileged interfaces: reports say the pids are unknown, and the lock itself
// (the inherited descriptor, the kernel lock) still decides.
func childPIDs() []int { return nil }

func processesHolding(fileID) []int { return nil }
