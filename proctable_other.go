//go:build !linux

package main

// Off Linux gwlock cannot list a process's children or a lock's holders
// without privileged interfaces: reports say the pids are unknown, and the
// lock itself (the inherited descriptor, the kernel lock) still decides.
func flockHolders(fileID, string) []int { return nil }

func flockCreator(fileID) (int, bool) { return 0, false }

// taggedProcess: off Linux another process's environment is not readable
// without privileged interfaces; the recorded tree and the inherited lock
// decide alone.
func taggedProcess(string) (int, bool) { return 0, false }

// socketBindPath: off Linux there is no /proc/self/fd to bind through, so
// the socket is bound by the directory's path, walked again; a directory
// swapped in that instant would receive the socket (README, Security).
func socketBindPath(d *checkedDir, name string) string { return d.join(name) }

// pidNamespace: PID namespaces are Linux's.
func pidNamespace() string { return "" }
