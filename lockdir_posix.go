//go:build unix

package main

import (
	"fmt"
	"gwlock/internal/telemetry"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// noDirError is a lock dir that does not exist: status and unlock find no
// lock in it, run cannot create one there.
type noDirError struct{}

func (noDirError) Error() string        { return "no such directory (hint: create it, mode 0700 or 1777)" }
func (noDirError) Is(target error) bool { return target == fs.ErrNotExist }

func openLockDir(path string, explicit, prepare bool, log *telemetry.Logger) (*checkedDir, error) {
	if !explicit {
		return openDefaultDir(path, prepare, log)
	}
	fd, err := resolveDir(path)
	if err != nil {
		return nil, err
	}
	d := &checkedDir{path: path, fd: fd}
	found, err := d.stat()
	if err == nil {
		err = explicitDirRefusal(path, found, os.Geteuid())
	}
	if err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// openDefaultDir creates (prepare) and checks the default dir by the rule in
// defaultDirRefusal, before it opens it and again on what it opened.
func openDefaultDir(path string, prepare bool, log *telemetry.Logger) (*checkedDir, error) {
	pfd, err := resolveDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	name, me := filepath.Base(path), os.Geteuid()
	if prepare {
		if err := unix.Mkdirat(pfd, name, 0o700); err != nil && err != unix.EEXIST {
			return nil, &fs.PathError{Op: "create lock dir", Path: path, Err: err}
		}
	}
	found, err := statEntry(pfd, filepath.Dir(path), name)
	if err == unix.ENOENT {
		return nil, &fs.PathError{Op: "open lock dir", Path: path, Err: noDirError{}}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "stat lock dir", Path: path, Err: err}
	}
	if err := defaultDirRefusal(path, found, me); err != nil {
		return nil, err
	}
	fd, err := openatRetry(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		// Replaced since the fstatat: by its owner, us, or (in /tmp) anyone.
		return nil, squattedLockDir.of(path, fmt.Sprintf("changed while being checked (%v)", err))
	}
	d := &checkedDir{path: path, fd: fd}
	if err := d.checkDefault(prepare, me, log); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// checkDefault judges the default dir we opened, and when preparing
// tightens it to 0700.
func (d *checkedDir) checkDefault(prepare bool, me int, log *telemetry.Logger) error {
	opened, err := d.stat()
	if err != nil {
		return err
	}
	if err := defaultDirRefusal(d.path, opened, me); err != nil {
		return err
	}
	if !prepare || opened.mode == 0o700 {
		return nil
	}
	if err := unix.Fchmod(d.fd, 0o700); err != nil {
		return &fs.PathError{Op: "chmod lock dir", Path: d.path, Err: err}
	}
	if opened.mode&0o077 != 0 {
		log.Warn("dir-tightened", "dir", d.path, "from_mode", fmt.Sprintf("%04o", opened.mode))
	}
	return nil
}

// stat describes the open directory itself.
func (d *checkedDir) stat() (dirEntry, error) {
	found, err := fstatEntry(d.fd, d.path)
	if err != nil {
		return dirEntry{}, &fs.PathError{Op: "stat lock dir", Path: d.path, Err: err}
	}
	return found, nil
}

// fstatEntry describes the open file fd, named path.
func fstatEntry(fd int, path string) (dirEntry, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return dirEntry{}, err
	}
	return entryOf(path, &st), nil
}

// statEntry describes name in the directory dirfd (at) without following
// it; a symlink's target is read, for the rules and their messages.
func statEntry(dirfd int, at, name string) (dirEntry, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return dirEntry{}, err
	}
	e := entryOf(filepath.Join(at, name), &st)
	if e.kind == kindSymlink {
		e.target, e.targetRead = readLink(dirfd, name)
	}
	return e, nil
}

func entryOf(path string, st *unix.Stat_t) dirEntry {
	return dirEntry{path: path, kind: fileKind(uint32(st.Mode)), uid: st.Uid, mode: uint32(st.Mode) & 0o7777}
}

// openNoSymlinks opens a directory in one step, refusing any symlink on the
// way (Linux openat2 RESOLVE_NO_SYMLINKS); nil where the OS has no such call.
var openNoSymlinks func(path string) (int, error)

// resolveDir opens the directory at path, following only the symlinks
// linkRefusal trusts. The walk goes component by component, each step
// relative to the directory opened before it, so nothing it checked can be
// swapped behind it.
func resolveDir(path string) (int, error) {
	if openNoSymlinks != nil {
		if fd, err := openNoSymlinks(path); err == nil {
			return fd, nil
		}
		// A symlink on the way, an old kernel (ENOSYS) or a missing
		// component: the walk tells which, and follows trusted links.
	}
	w := &dirWalk{path: path, fd: -1, todo: strings.Split(path, "/")}
	err := w.fromRoot()
	for err == nil && len(w.todo) > 0 {
		err = w.step()
	}
	if err != nil {
		w.close()
		return -1, err
	}
	return w.hold()
}

// dirWalk is resolveDir's state: the directory open so far (fd, named at),
// the components still to walk, and how many symlinks it followed.
type dirWalk struct {
	path     string
	fd       int
	at       string
	todo     []string
	followed int
}

// fromRoot starts (again) at /, for the path or an absolute symlink target.
func (w *dirWalk) fromRoot() error {
	w.close()
	fd, err := openatRetry(unix.AT_FDCWD, "/", dirOpenFlags|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open lock dir", Path: w.path, Err: err}
	}
	w.fd, w.at = fd, "/"
	return nil
}

// step walks one component: a directory is entered, a trusted symlink
// followed, anything else refused.
func (w *dirWalk) step() error {
	name := w.todo[0]
	w.todo = w.todo[1:]
	if name == "" || name == "." {
		return nil
	}
	here := filepath.Join(w.at, name)
	found, err := statEntry(w.fd, w.at, name)
	switch {
	case err != nil:
		return walkError(w.path, here, err)
	case found.kind == kindSymlink:
		return w.follow(found)
	case found.kind != kindDir:
		return notDirLockDir.of(w.path, whereIs(w.path, here)+" a "+found.kind+", not a directory")
	}
	return w.enter(name, here)
}

// enter opens the directory name (here) and moves the walk into it.
func (w *dirWalk) enter(name, here string) error {
	next, err := openatRetry(w.fd, name, dirOpenFlags|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return walkError(w.path, here, err)
	}
	w.close()
	w.fd, w.at = next, here
	if name == ".." {
		w.at = filepath.Dir(w.at)
	}
	return nil
}

// follow continues the walk at a symlink's target, if linkRefusal trusts it.
func (w *dirWalk) follow(link dirEntry) error {
	var dir *dirEntry
	if found, err := fstatEntry(w.fd, w.at); err == nil {
		dir = &found
	}
	if err := linkRefusal(w.path, link, dir, w.followed, os.Geteuid()); err != nil {
		return err
	}
	w.followed++
	w.todo = append(strings.Split(link.target, "/"), w.todo...)
	if filepath.IsAbs(link.target) {
		return w.fromRoot()
	}
	return nil
}

// hold reopens where the walk ended for reading, whatever the walk used
// (Linux O_PATH): the same access on every OS, and what the temp-file sweep
// needs.
func (w *dirWalk) hold() (int, error) {
	dirfd, err := openatRetry(w.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	w.close()
	if err != nil {
		return -1, &fs.PathError{Op: "open lock dir", Path: w.path, Err: err}
	}
	return dirfd, nil
}

func (w *dirWalk) close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}

// walkError says why the walk of path could not stat or open here.
func walkError(path, here string, err error) error {
	switch err {
	case unix.ENOENT:
		return &fs.PathError{Op: "open lock dir", Path: path, Err: noDirError{}}
	case unix.ELOOP, unix.EMLINK, unix.ENOTDIR:
		// It was a directory at the fstatat: someone swapped it since.
		return unrealLockDir.of(path, here+" was replaced while being checked")
	}
	return &fs.PathError{Op: "open lock dir", Path: here, Err: err}
}

func readLink(dirfd int, name string) (string, bool) {
	buf := make([]byte, unix.PathMax)
	n, err := readlinkat(dirfd, name, buf)
	if err != nil {
		return "(unreadable)", false
	}
	return string(buf[:n]), true
}

// defaultDirBases are the parents of the default lock dirs; tests point them
// at a scratch tree.
var defaultDirBases = struct{ root, rootFallback, user string }{"/run", "/var/run", "/tmp"}

// defaultLockDir depends on the uid alone, never on XDG_RUNTIME_DIR or TMPDIR:
// a login shell, cron, a systemd unit and sudo must find the same lock for the
// same config. Root's lives where only root can write (/run), so no other
// user can squat or redirect it; everyone else's in /tmp, literally, where a
// squatter is refused (exit 77), never followed.
func defaultLockDir() string {
	if uid := os.Geteuid(); uid != 0 {
		return filepath.Join(defaultDirBases.user, "gwlock-"+strconv.Itoa(uid))
	}
	if fi, err := os.Stat(defaultDirBases.root); err == nil && fi.IsDir() {
		return filepath.Join(defaultDirBases.root, "gwlock")
	}
	return filepath.Join(defaultDirBases.rootFallback, "gwlock")
}
