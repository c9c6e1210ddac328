//go:build unix

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// lockFile is an open lock file, held as a raw descriptor: the hot path makes
// a handful of syscalls and os.File would add allocations and a poller check.
type lockFile struct {
	fd       int
	kernel   bool        // flock works on this file; for our own file: we hold it
	tmpName  string      // our named temp file in dir until published ("" when anonymous)
	dir      *checkedDir // where tmpName lives
	dev, ino uint64
}

// checkedDir is a checked lock directory, kept open for the lock's whole life:
// every later operation is relative to fd, so a directory swapped for a
// symlink after the check cannot redirect one of them (Invariant 4).
type checkedDir struct {
	path string // for messages only: never walked again
	fd   int
}

func (d *checkedDir) close() error {
	if d == nil || d.fd < 0 {
		return nil
	}
	fd := d.fd
	d.fd = -1
	return unix.Close(fd)
}

// names lists the directory through a fresh descriptor for "." (the held one
// may be O_PATH, and sharing its offset would make a second listing empty).
func (d *checkedDir) names() ([]string, error) {
	fd, err := openatRetry(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "list lock dir", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.Readdirnames(-1)
}

// openAnonymous creates an unnamed file in the directory dirfd (Linux
// O_TMPFILE), so an acquisition killed before publishing leaves nothing
// behind. Nil where the OS has no such thing.
var openAnonymous func(dirfd int) (int, error)

// linkAnonymous gives an anonymous file the name base in the directory dirfd.
var linkAnonymous func(fd, dirfd int, base string) error

// dirOpenFlags open a directory only to resolve names in it: Linux sets
// O_PATH, which needs no read permission; elsewhere it must be readable.
var dirOpenFlags = unix.O_RDONLY

func createOwnerFile(d *checkedDir, base string) (*lockFile, error) {
	// Another acquisition's sweep may hold a young named temp file's lock for
	// an instant while it judges it (young, creator alive: keep). Rather than
	// wait on it (a stopped sweeper would wedge us), start over with a new file.
	for attempt := 0; ; attempt++ {
		f, err := createOwnerFileOnce(d, base)
		if err != errSweptMeanwhile || attempt == 8 {
			return f, err
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Microsecond)
	}
}

var errSweptMeanwhile = errors.New("a sweep held our new temp file")

func createOwnerFileOnce(d *checkedDir, base string) (*lockFile, error) {
	f := &lockFile{fd: -1}
	if openAnonymous != nil {
		if fd, err := openAnonymous(d.fd); err == nil {
			f.fd = fd
		}
	}
	if f.fd < 0 {
		f.tmpName, f.dir = "."+base+"."+strconv.Itoa(os.Getpid())+"."+uniqueSuffix()+tempSuffix, d
		fd, err := openatRetry(d.fd, f.tmpName, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			f.tmpName = ""
			return nil, &fs.PathError{Op: "create lock file in", Path: d.path, Err: err}
		}
		f.fd = fd
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		f.discard()
		return nil, &fs.PathError{Op: "stat new lock file in", Path: d.path, Err: err}
	}
	f.dev, f.ino = uint64(st.Dev), uint64(st.Ino)
	// The umask may have taken bits we need; never more than 0600 either way.
	if st.Mode&0o777 != 0o600 {
		if err := unix.Fchmod(f.fd, 0o600); err != nil {
			f.discard()
			return nil, &fs.PathError{Op: "chmod new lock file in", Path: d.path, Err: err}
		}
	}
	switch err := flockRetry(f.fd, unix.LOCK_EX|unix.LOCK_NB); {
	case err == nil:
		f.kernel = true
	case err == unix.EWOULDBLOCK:
		f.discard()
		return nil, errSweptMeanwhile
	case noKernelLocks(err):
		f.kernel = false
	default:
		f.discard()
		return nil, &fs.PathError{Op: "flock new lock file in", Path: d.path, Err: err}
	}
	return f, nil
}

const tempSuffix = ".tmp"

// writePayload replaces the file's contents. The payload is complete before
// the file is published, and later updates keep its length (see encode).
func (f *lockFile) writePayload(b []byte) error {
	for off := 0; off < len(b); {
		n, err := unix.Pwrite(f.fd, b[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		off += n
	}
	return nil
}

func (f *lockFile) publish(d *checkedDir, base string) error {
	var err error
	if f.tmpName == "" {
		err = linkAnonymous(f.fd, d.fd, base)
	} else {
		err = linkIn(f.dir, f.tmpName, d, base)
	}
	if err == unix.EEXIST {
		return fs.ErrExist
	}
	if err == unix.ENOENT && f.tmpName != "" {
		return errTempGone
	}
	if err != nil {
		return &fs.PathError{Op: "link lock file", Path: d.join(base), Err: err}
	}
	if f.tmpName != "" {
		_ = unix.Unlinkat(f.dir.fd, f.tmpName, 0)
		f.tmpName = ""
	}
	return nil
}

// discard closes a file that never became the lock, removing its temp name.
func (f *lockFile) discard() {
	if f.tmpName != "" {
		_ = unix.Unlinkat(f.dir.fd, f.tmpName, 0)
		f.tmpName = ""
	}
	f.close()
}

func openExisting(d *checkedDir, name string) (*lockFile, error) {
	// O_NONBLOCK: a FIFO at the path must not hang us. O_NOFOLLOW: a symlink
	// is refused, never followed. O_RDWR: NFSv4 wants it for exclusive locks.
	fd, err := openatRetry(d.fd, name, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == unix.EROFS || err == unix.EACCES {
		fd, err = openatRetry(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	}
	path := d.join(name)
	if err != nil {
		return nil, classifyOpenError(d, name, err)
	}
	f := &lockFile{fd: fd, kernel: true}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.close()
		return nil, &fs.PathError{Op: "stat lock file", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.close()
		return nil, &unsafeError{What: "lock path", Path: path, Why: "is a " + fileKind(uint32(st.Mode)) + ", not a regular file",
			Hint: "remove it or choose another --lock"}
	}
	if int(st.Uid) != os.Geteuid() {
		f.close()
		return nil, foreignLockFile(path, st.Uid)
	}
	f.dev, f.ino = uint64(st.Dev), uint64(st.Ino)
	return f, nil
}

func classifyOpenError(d *checkedDir, name string, err error) error {
	path := d.join(name)
	switch err {
	case unix.ENOENT:
		return fs.ErrNotExist
	case unix.ELOOP, unix.EMLINK: // EMLINK: FreeBSD's answer to O_NOFOLLOW on a symlink
		return &unsafeError{What: "lock path", Path: path, Why: "is a symlink; gwlock never follows one", Hint: "remove the symlink or point --lock at the real file"}
	case unix.EISDIR:
		return &unsafeError{What: "lock path", Path: path, Why: "is a directory, not a regular file", Hint: "remove it or choose another --lock"}
	case unix.ENXIO, unix.EOPNOTSUPP:
		return &unsafeError{What: "lock path", Path: path, Why: "is a socket or device, not a regular file", Hint: "remove it or choose another --lock"}
	case unix.EACCES, unix.EPERM:
		var st unix.Stat_t
		if unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && int(st.Uid) != os.Geteuid() {
			return foreignLockFile(path, st.Uid)
		}
	}
	return &fs.PathError{Op: "open lock file", Path: path, Err: err}
}

// foreignLockFile is the refusal of a lock file another user owns.
func foreignLockFile(path string, uid uint32) error {
	return &unsafeError{What: "lock file", Path: path, Why: fmt.Sprintf("is owned by uid %d, not by us (uid %d)", uid, os.Geteuid()),
		Hint: "another user holds this path; use a lock dir of your own"}
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "device"
	}
	return "special file"
}

func (f *lockFile) tryLock() (bool, error) {
	if !f.kernel {
		return false, nil
	}
	switch err := flockRetry(f.fd, unix.LOCK_EX|unix.LOCK_NB); {
	case err == nil:
		return true, nil
	case err == unix.EWOULDBLOCK:
		return false, nil
	case noKernelLocks(err):
		f.kernel = false
		return false, nil
	default:
		return false, &fs.PathError{Op: "flock", Path: "lock file", Err: err}
	}
}

// waitLock sleeps in a blocking flock until the holder releases or dies, so a
// waiter gets the lock within microseconds of the event instead of a poll
// interval later. A blocking flock cannot be cancelled, so on timeout the
// goroutine keeps the descriptor and closes it as soon as its flock returns;
// the caller must not touch f again.
func (f *lockFile) waitLock(deadline time.Time, cancel <-chan struct{}) (bool, error) {
	left := time.Until(deadline)
	if left <= 0 {
		f.close()
		return false, nil
	}
	type result struct{ err error }
	var (
		mu        sync.Mutex
		abandoned bool
		done      = make(chan result, 1)
		fd        = f.fd
	)
	go func() {
		err := flockRetry(fd, unix.LOCK_EX)
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			unix.Close(fd)
			return
		}
		done <- result{err}
	}()
	timer := time.NewTimer(left)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return false, &fs.PathError{Op: "flock (wait)", Path: "lock file", Err: r.err}
		}
		return true, nil
	case <-cancel:
	case <-timer.C:
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case r := <-done:
		if r.err == nil {
			return true, nil
		}
	default:
		// The goroutine owns the descriptor from now on.
		abandoned = true
		f.fd = -1
	}
	return false, nil
}

func (f *lockFile) readPayload() ([]byte, time.Time, error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return nil, time.Time{}, &fs.PathError{Op: "stat lock file", Path: "lock file", Err: err}
	}
	size := st.Size
	if size > maxPayloadRead {
		size = maxPayloadRead
	}
	buf := make([]byte, size)
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(f.fd, buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, time.Time{}, &fs.PathError{Op: "read lock file", Path: "lock file", Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)), nil
}

func (f *lockFile) namedBy(d *checkedDir, name string) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "stat", Path: d.join(name), Err: err}
	}
	return uint64(st.Dev) == f.dev && uint64(st.Ino) == f.ino, nil
}

func (f *lockFile) touch() error {
	return touchFD(f.fd)
}

func (f *lockFile) close() error {
	if f.fd < 0 {
		return nil
	}
	fd := f.fd
	f.fd = -1
	return unix.Close(fd)
}

func removeLockPath(d *checkedDir, name string) error {
	for {
		err := unix.Unlinkat(d.fd, name, 0)
		if err != unix.EINTR {
			if err == unix.ENOENT {
				return fs.ErrNotExist
			}
			return err
		}
	}
}

// reclaimWithoutKernelLock removes a dead owner's file on a filesystem without
// flock. Renaming first takes the file out of every other recoverer's reach;
// if what we renamed is not the file we judged (a successor replaced it in the
// meantime), it is put back with link, which refuses to overwrite. Residual
// risk: if yet another starter published between our rename and our link, the
// successor we displaced keeps running until its heartbeat reports lock-lost.
func reclaimWithoutKernelLock(cur *lockFile, d *checkedDir, base string) (bool, error) {
	private := "." + base + ".reclaim." + uniqueSuffix() + tempSuffix
	if err := unix.Renameat(d.fd, base, d.fd, private); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, &fs.PathError{Op: "rename stale lock", Path: d.join(base), Err: err}
	}
	if same, _ := cur.namedBy(d, private); same {
		return true, unix.Unlinkat(d.fd, private, 0)
	}
	if err := linkIn(d, private, d, base); err == nil {
		_ = unix.Unlinkat(d.fd, private, 0)
	}
	return false, nil
}

// noDirError is a lock dir that does not exist: status and unlock find no
// lock in it, run cannot create one there.
type noDirError struct{}

func (noDirError) Error() string        { return "no such directory (hint: create it, mode 0700 or 1777)" }
func (noDirError) Is(target error) bool { return target == fs.ErrNotExist }

func openLockDir(path string, explicit, prepare bool, log *telemetry) (*checkedDir, error) {
	if !explicit {
		return openDefaultDir(path, prepare, log)
	}
	fd, err := resolveDir(path)
	if err != nil {
		return nil, err
	}
	d := &checkedDir{path: path, fd: fd}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		d.close()
		return nil, &fs.PathError{Op: "stat lock dir", Path: path, Err: err}
	}
	me := os.Geteuid()
	perm := uint32(st.Mode) & 0o7777
	if int(st.Uid) != me && st.Uid != 0 {
		d.close()
		return nil, &unsafeError{What: "lock dir", Path: path, Why: fmt.Sprintf("is owned by uid %d, neither us (uid %d) nor root", st.Uid, me), Hint: "use a directory you own"}
	}
	if perm&0o022 != 0 && perm&unix.S_ISVTX == 0 {
		d.close()
		return nil, &unsafeError{What: "lock dir", Path: path, Why: fmt.Sprintf("is writable by others (mode %04o) without the sticky bit", perm),
			Hint: "chmod go-w or chmod +t it, or choose another --lock-dir"}
	}
	return d, nil
}

// openDefaultDir creates (prepare) and checks the default dir, which must be a
// real directory of ours: its parent, /tmp, is anybody's to write, so anything
// else there was put there by someone else.
func openDefaultDir(path string, prepare bool, log *telemetry) (*checkedDir, error) {
	parent, name := filepath.Dir(path), filepath.Base(path)
	pfd, err := resolveDir(parent)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	if prepare {
		if err := unix.Mkdirat(pfd, name, 0o700); err != nil && err != unix.EEXIST {
			return nil, &fs.PathError{Op: "create lock dir", Path: path, Err: err}
		}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil, &fs.PathError{Op: "open lock dir", Path: path, Err: noDirError{}}
		}
		return nil, &fs.PathError{Op: "stat lock dir", Path: path, Err: err}
	}
	me := os.Geteuid()
	squatted := func(why string) error {
		return &unsafeError{What: "lock dir", Path: path, Why: why,
			Hint: "remove it, or pass --lock-dir naming a directory of your own"}
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		target, _ := readLink(pfd, name)
		return nil, squatted(fmt.Sprintf("is a symlink to %s owned by uid %d; the default lock dir must be a real directory", target, st.Uid))
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return nil, squatted(fmt.Sprintf("is a %s owned by uid %d, not a directory", fileKind(uint32(st.Mode)), st.Uid))
	case int(st.Uid) != me:
		return nil, squatted(fmt.Sprintf("is owned by uid %d, not by us (uid %d): another user created it", st.Uid, me))
	}
	fd, err := openatRetry(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		// Replaced since the fstatat: by its owner, us, or (in /tmp) anyone.
		return nil, squatted(fmt.Sprintf("changed while being checked (%v)", err))
	}
	d := &checkedDir{path: path, fd: fd}
	if err := unix.Fstat(fd, &st); err != nil {
		d.close()
		return nil, &fs.PathError{Op: "stat lock dir", Path: path, Err: err}
	}
	if int(st.Uid) != me {
		d.close()
		return nil, squatted(fmt.Sprintf("is owned by uid %d, not by us (uid %d): another user created it", st.Uid, me))
	}
	if perm := uint32(st.Mode) & 0o7777; prepare && perm != 0o700 {
		if err := unix.Fchmod(fd, 0o700); err != nil {
			d.close()
			return nil, &fs.PathError{Op: "chmod lock dir", Path: path, Err: err}
		}
		if perm&0o077 != 0 {
			log.warn("dir-tightened", "dir", path, "from_mode", fmt.Sprintf("%04o", perm))
		}
	}
	return d, nil
}

// openNoSymlinks opens a directory in one step, refusing any symlink on the
// way (Linux openat2 RESOLVE_NO_SYMLINKS); nil where the OS has no such call.
var openNoSymlinks func(path string) (int, error)

// maxSymlinks bounds the links followed in one path, as the kernel does (40).
const maxSymlinks = 40

// resolveDir opens the directory at path. A symlink on the way is followed
// only if nobody but root or us can have made or changed it: it is owned by
// root or us and sits in a directory owned by root or us that nobody else can
// write (/var/run -> /run, macOS /tmp -> /private/tmp). Any other symlink is
// refused with where it points. The walk goes component by component, each
// step relative to the directory opened before it, so nothing it checked can
// be swapped behind it.
func resolveDir(path string) (int, error) {
	if openNoSymlinks != nil {
		if fd, err := openNoSymlinks(path); err == nil {
			return fd, nil
		}
		// A symlink on the way, an old kernel (ENOSYS) or a missing
		// component: the walk tells which, and follows trusted links.
	}
	fd, err := openatRetry(unix.AT_FDCWD, "/", dirOpenFlags|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open lock dir", Path: path, Err: err}
	}
	at, todo, links := "/", strings.Split(path, "/"), 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if name == "" || name == "." {
			continue
		}
		here := filepath.Join(at, name)
		var st unix.Stat_t
		err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			target, why := trustedLink(fd, name, at, &st)
			if why == "" && links >= maxSymlinks {
				why = fmt.Sprintf("more than %d symlinks", maxSymlinks)
			}
			if why != "" {
				unix.Close(fd)
				what := "is"
				if filepath.Clean(here) != filepath.Clean(path) {
					what = "goes through " + here + ", which is"
				}
				return -1, &unsafeError{What: "lock dir", Path: path,
					Why:  fmt.Sprintf("%s a symlink to %s owned by uid %d; %s", what, target, st.Uid, why),
					Hint: "name the real directory with --lock-dir or --lock"}
			}
			links++
			if filepath.IsAbs(target) {
				unix.Close(fd)
				if fd, err = openatRetry(unix.AT_FDCWD, "/", dirOpenFlags|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
					return -1, &fs.PathError{Op: "open lock dir", Path: path, Err: err}
				}
				at = "/"
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Close(fd)
			what := "is a " + fileKind(uint32(st.Mode))
			if filepath.Clean(here) != filepath.Clean(path) {
				what = "goes through " + here + ", which is a " + fileKind(uint32(st.Mode))
			}
			return -1, &unsafeError{What: "lock dir", Path: path, Why: what + ", not a directory", Hint: "remove it or choose another --lock-dir"}
		}
		var next int
		if err == nil {
			next, err = openatRetry(fd, name, dirOpenFlags|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
		unix.Close(fd)
		switch {
		case err == unix.ENOENT:
			return -1, &fs.PathError{Op: "open lock dir", Path: path, Err: noDirError{}}
		case err == unix.ELOOP || err == unix.EMLINK || err == unix.ENOTDIR:
			// It was a directory at the fstatat: someone swapped it since.
			return -1, &unsafeError{What: "lock dir", Path: path, Why: here + " was replaced while being checked", Hint: "name the real directory with --lock-dir or --lock"}
		case err != nil:
			return -1, &fs.PathError{Op: "open lock dir", Path: here, Err: err}
		}
		fd = next
		if name == ".." {
			at = filepath.Dir(at)
		} else {
			at = here
		}
	}
	// Held for reading, whatever the walk used (Linux O_PATH): the same
	// access on every OS, and what the temp-file sweep needs.
	dirfd, err := openatRetry(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	unix.Close(fd)
	if err != nil {
		return -1, &fs.PathError{Op: "open lock dir", Path: path, Err: err}
	}
	return dirfd, nil
}

// trustedLink reads the symlink name in the directory dirfd (at) and says
// why it may not be followed, or "" if it may.
func trustedLink(dirfd int, name, at string, link *unix.Stat_t) (target, why string) {
	target, readable := readLink(dirfd, name)
	me := uint32(os.Geteuid())
	var dir unix.Stat_t
	switch {
	case !readable:
		return target, "its target cannot be read"
	case link.Uid != 0 && link.Uid != me:
		return target, "gwlock follows only symlinks owned by root or us"
	case unix.Fstat(dirfd, &dir) != nil:
		return target, "its directory cannot be checked"
	case dir.Uid != 0 && dir.Uid != me:
		return target, fmt.Sprintf("its directory %s is owned by uid %d, who could change it", at, dir.Uid)
	case dir.Mode&0o022 != 0:
		return target, fmt.Sprintf("its directory %s can be written by others (mode %04o), who could replace it", at, dir.Mode&0o7777)
	}
	return target, ""
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

// processProbe asks the kernel whether pid exists without signalling it.
// EPERM means it exists and belongs to someone else.
func processProbe(pid int) pidState {
	if pid <= 0 {
		return pidUnknown // kill(0) and kill(-1) address groups, never probe them
	}
	switch err := unix.Kill(pid, 0); err {
	case nil, unix.EPERM:
		if isZombie != nil && isZombie(pid) {
			// Exited, waiting for a parent (often init, reaping at leisure)
			// to collect it: it holds nothing and must not pass for alive.
			return pidAbsent
		}
		return pidPresent
	case unix.ESRCH:
		return pidAbsent
	}
	return pidUnknown
}

// isZombie reports an exited, unreaped process, where the OS can tell.
var isZombie func(pid int) bool

func noKernelLocks(err error) bool {
	return err == unix.ENOTSUP || err == unix.EOPNOTSUPP || err == unix.ENOLCK || err == unix.EINVAL
}

// flockSyscall is flock(2); tests replace it to act out a filesystem
// without kernel locks (ENOLCK), which no local filesystem here is.
var flockSyscall = unix.Flock

func flockRetry(fd, how int) error {
	for {
		if err := flockSyscall(fd, how); err != unix.EINTR {
			return err
		}
	}
}

func openatRetry(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// id is the file's identity, (dev, ino).
func (f *lockFile) id() fileID { return fileID{f.dev, f.ino} }

// inheritable is the descriptor a gateway inherits to share the lock: a flock
// belongs to the open file, so every process that has it holds the lock.
func (f *lockFile) inheritable() (uintptr, bool) { return uintptr(f.fd), true }

// clearSocket removes the socket name in d, if there is one; anything else
// by that name (a file, a symlink) is refused and left alone.
func clearSocket(d *checkedDir, name string) error {
	var st unix.Stat_t
	switch err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
		return nil
	case err != nil:
		return err
	case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return errors.New("not a socket: left in place")
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil && err != unix.ENOENT {
		return err
	}
	return nil
}
