//go:build unix && !solaris && !dragonfly

package main

import "golang.org/x/sys/unix"

// linkIn links old in src to new in dst, both relative to the checked
// directories' descriptors (Invariant 4).
func linkIn(src *checkedDir, old string, dst *checkedDir, new string) error {
	return unix.Linkat(src.fd, old, dst.fd, new, 0)
}

var readlinkat = unix.Readlinkat
