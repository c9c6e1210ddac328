//go:build !linux

package main

// socketBindPath: off Linux there is no /proc/self/fd to bind through, so
// the socket is bound by the directory's path, walked again; a directory
// swapped in that instant would receive the socket (README, Security).
func socketBindPath(d *checkedDir, name string) string { return d.join(name) }
