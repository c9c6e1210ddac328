//go:build unix && !solaris && !dragonfly

package main

import "golang.org/x/sys/unix"

// linkIn links old in src to new in dst, both relative to the checked
// directories' descriptors: a directory swapped
// for a symlink after its check redirects nothing.
func linkIn(src *checkedDir, old string, dst *checkedDir, new string) error {
	return unix.Linkat(src.fd, old, dst.fd, new, 0)
}

var readlinkat = unix.Readlinkat
