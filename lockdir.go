package main

import (
	"fmt"
	"path/filepath"
)

// The lock dir rules. lock_posix.go describes what it finds as a dirEntry
// and never judges it itself; the rules are pure, and tested on every OS.
// Windows applies none of them: it follows no reparse point at all, keeps
// its default dir in the user's profile rather than a shared /tmp, and
// judges a lock dir's owner by foreignOwner (us, Administrators or SYSTEM).

// dirEntry is what the lock dir rules know about one file: what it is, who
// owns it, its permission bits and, for a symlink, its target.
type dirEntry struct {
	path       string // for messages
	kind       string // as in "is a FIFO": kindDir, kindSymlink, "FIFO", "socket", "device", "special file"
	uid        uint32
	mode       uint32 // permission bits (0o7777)
	target     string // a symlink's target, or "(unreadable)"
	targetRead bool
}

const (
	kindDir     = "directory"
	kindSymlink = "symlink"
	modeSticky  = 0o1000 // S_ISVTX: only a file's owner may remove or rename it
)

// maxSymlinks bounds the links followed in one path, as the kernel does (40).
const maxSymlinks = 40

// explicitDirRefusal: a lock dir the user named must be ours or root's, and
// nobody else may write to it unless it is sticky (/tmp).
func explicitDirRefusal(path string, dir dirEntry, me int) error {
	if int(dir.uid) != me && dir.uid != 0 {
		return foreignLockDir.of(path, fmt.Sprintf("is owned by uid %d, neither us (uid %d) nor root", dir.uid, me))
	}
	if dir.mode&0o022 != 0 && dir.mode&modeSticky == 0 {
		return looseLockDir.of(path, fmt.Sprintf("is writable by others (mode %04o) without the sticky bit", dir.mode))
	}
	return nil
}

// defaultDirRefusal: the default dir must be a real directory of ours. Its
// parent, /tmp, is anybody's to write, so anything else there was put there
// by someone else.
func defaultDirRefusal(path string, found dirEntry, me int) error {
	switch {
	case found.kind == kindSymlink:
		return squattedLockDir.of(path, fmt.Sprintf("is a symlink to %s owned by uid %d; the default lock dir must be a real directory", found.target, found.uid))
	case found.kind != kindDir:
		return squattedLockDir.of(path, fmt.Sprintf("is a %s owned by uid %d, not a directory", found.kind, found.uid))
	case int(found.uid) != me:
		return squattedLockDir.of(path, fmt.Sprintf("is owned by uid %d, not by us (uid %d): another user created it", found.uid, me))
	}
	return nil
}

// linkRefusal says why the walk to the lock dir path may not follow link,
// found in dir (nil: dir could not be checked) after followed other links,
// or nil if it may. A symlink is followed only if nobody but root or us can
// have made or changed it: it is owned by root or us and sits in a directory
// owned by root or us that nobody else can write (/var/run -> /run, macOS
// /tmp -> /private/tmp). The refusal says where it points.
func linkRefusal(path string, link dirEntry, dir *dirEntry, followed, me int) error {
	why := ""
	switch {
	case !link.targetRead:
		why = "its target cannot be read"
	case link.uid != 0 && int(link.uid) != me:
		why = "gwlock follows only symlinks owned by root or us"
	case dir == nil:
		why = "its directory cannot be checked"
	case dir.uid != 0 && int(dir.uid) != me:
		why = fmt.Sprintf("its directory %s is owned by uid %d, who could change it", dir.path, dir.uid)
	case dir.mode&0o022 != 0:
		why = fmt.Sprintf("its directory %s can be written by others (mode %04o), who could replace it", dir.path, dir.mode)
	case followed >= maxSymlinks:
		why = fmt.Sprintf("more than %d symlinks", maxSymlinks)
	default:
		return nil
	}
	return unrealLockDir.of(path, fmt.Sprintf("%s a symlink to %s owned by uid %d; %s", whereIs(path, link.path), link.target, link.uid, why))
}

// whereIs starts a refusal met at here on the way to path: path itself
// "is", or it "goes through here, which is".
func whereIs(path, here string) string {
	if filepath.Clean(here) != filepath.Clean(path) {
		return "goes through " + here + ", which is"
	}
	return "is"
}
