//go:build openbsd || netbsd || dragonfly || solaris

package proc

// startTime is unsupported here: x/sys/unix has no Go type for these
// systems' kinfo_proc (or, on illumos and Solaris, psinfo), and a start
// time read at a wrong offset could change while the process lives, which
// would make a live process look like a reused pid. (The solaris tag also
// covers GOOS=illumos.)
func startTime(int) (string, error) { return "", unsupported("process start time") }
