//go:build solaris || dragonfly

package main

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// x/sys/unix lacks linkat on solaris and illumos and readlinkat on
// dragonfly. There, and only there (compiled, never run here), publishing
// links by the checked directory's path: a directory swapped after its check
// can redirect that one link, which every other OS rules out by linking
// relative to the directory descriptors.
func linkIn(src *checkedDir, old string, dst *checkedDir, new string) error {
	return unix.Link(filepath.Join(src.path, old), filepath.Join(dst.path, new))
}

// Without readlinkat an explicit path through a symlink is refused on
// dragonfly, naming the link: no path is ever followed blindly.
func readlinkat(int, string, []byte) (int, error) { return 0, unix.ENOSYS }
