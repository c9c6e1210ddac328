//go:build unix

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
// symlink after the check cannot redirect one of them.
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
	f, err := openNewFile(d, base)
	if err != nil {
		return nil, err
	}
	if err = f.identifyNew(d); err == nil {
		err = f.lockNew(d)
	}
	if err != nil {
		f.discard()
		return nil, err
	}
	return f, nil
}

// openNewFile creates our file in d: anonymous where the OS can, else under
// a temp name.
func openNewFile(d *checkedDir, base string) (*lockFile, error) {
	if openAnonymous != nil {
		if fd, err := openAnonymous(d.fd); err == nil {
			return &lockFile{fd: fd}, nil
		}
	}
	name := ownTempName(base)
	fd, err := openatRetry(d.fd, name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &fs.PathError{Op: "create lock file in", Path: d.path, Err: err}
	}
	return &lockFile{fd: fd, tmpName: name, dir: d}, nil
}

// identifyNew records the new file's identity and makes its mode 0600: the
// umask may have taken bits we need; never more than 0600 either way.
func (f *lockFile) identifyNew(d *checkedDir) error {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return &fs.PathError{Op: "stat new lock file in", Path: d.path, Err: err}
	}
	f.dev, f.ino = uint64(st.Dev), uint64(st.Ino)
	if st.Mode&0o777 == 0o600 {
		return nil
	}
	if err := unix.Fchmod(f.fd, 0o600); err != nil {
		return &fs.PathError{Op: "chmod new lock file in", Path: d.path, Err: err}
	}
	return nil
}

// lockNew takes the new file's kernel lock, where the filesystem has one.
func (f *lockFile) lockNew(d *checkedDir) error {
	switch err := flockRetry(f.fd, unix.LOCK_EX|unix.LOCK_NB); {
	case err == nil:
		f.kernel = true
	case err == unix.EWOULDBLOCK:
		return errSweptMeanwhile
	case noKernelLocks(err):
		f.kernel = false
	default:
		return &fs.PathError{Op: "flock new lock file in", Path: d.path, Err: err}
	}
	return nil
}

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

// openLockPath opens name in d for openExisting. O_NONBLOCK: a FIFO at the
// path must not hang us. O_NOFOLLOW: a symlink is refused, never followed.
// O_RDWR: NFSv4 wants it for exclusive locks.
func openLockPath(d *checkedDir, name string) (*lockFile, error) {
	fd, err := openatRetry(d.fd, name, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == unix.EROFS || err == unix.EACCES {
		fd, err = openatRetry(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, err
	}
	return &lockFile{fd: fd, kernel: true}, nil
}

// checkExisting refuses an opened file that is not a regular file of ours,
// and records its identity.
func (f *lockFile) checkExisting(path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return &fs.PathError{Op: "stat lock file", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return notRegularLockPath.of(path, "is a "+fileKind(uint32(st.Mode))+", not a regular file")
	}
	if int(st.Uid) != os.Geteuid() {
		return foreignLockFile.of(path, foreignUID(st.Uid))
	}
	f.dev, f.ino = uint64(st.Dev), uint64(st.Ino)
	return nil
}

func classifyOpenError(d *checkedDir, name string, err error) error {
	path := d.join(name)
	switch err {
	case unix.ENOENT:
		return fs.ErrNotExist
	case unix.ELOOP, unix.EMLINK: // EMLINK: FreeBSD's answer to O_NOFOLLOW on a symlink
		return symlinkLockPath.of(path, "is a symlink; gwlock never follows one")
	case unix.EISDIR:
		return notRegularLockPath.of(path, whyDirNotFile)
	case unix.ENXIO, unix.EOPNOTSUPP:
		return notRegularLockPath.of(path, "is a socket or device, not a regular file")
	case unix.EACCES, unix.EPERM:
		var st unix.Stat_t
		if unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && int(st.Uid) != os.Geteuid() {
			return foreignLockFile.of(path, foreignUID(st.Uid))
		}
	}
	return &fs.PathError{Op: "open lock file", Path: path, Err: err}
}

// symlinkLockPath refuses a symlink at the lock path. Its hint is the
// POSIX one; lock_windows.go has its own (see there).
var symlinkLockPath = refusal{"lock path", "remove the symlink or point --lock at the real file"}

// foreignUID says why a lock file owned by uid is not ours.
func foreignUID(uid uint32) string {
	return fmt.Sprintf("is owned by uid %d, not by us (uid %d)", uid, os.Geteuid())
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return kindDir
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFLNK:
		return kindSymlink
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
	w := startFlock(f.fd)
	timer := time.NewTimer(left)
	defer timer.Stop()
	select {
	case err := <-w.done:
		if err != nil {
			return false, &fs.PathError{Op: "flock (wait)", Path: "lock file", Err: err}
		}
		return true, nil
	case <-cancel:
	case <-timer.C:
	}
	got, abandoned := w.giveUp()
	if abandoned {
		f.fd = -1 // the goroutine owns the descriptor from now on
	}
	return got, nil
}

// blockingFlock is a flock(LOCK_EX) running in its own goroutine.
type blockingFlock struct {
	done      chan error
	mu        sync.Mutex
	abandoned bool
}

func startFlock(fd int) *blockingFlock {
	w := &blockingFlock{done: make(chan error, 1)}
	go func() {
		err := flockRetry(fd, unix.LOCK_EX)
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.abandoned {
			unix.Close(fd)
			return
		}
		w.done <- err
	}()
	return w
}

// giveUp stops waiting: got if the flock succeeded meanwhile, abandoned if
// it still blocks, when the goroutine closes the descriptor once it returns.
func (w *blockingFlock) giveUp() (got, abandoned bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case err := <-w.done:
		return err == nil, false
	default:
		w.abandoned = true
		return false, true
	}
}

func (f *lockFile) stat() (int64, time.Time, error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return 0, time.Time{}, err
	}
	return st.Size, time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)), nil
}

func (f *lockFile) readAt(b []byte, off int64) (int, error) {
	for {
		n, err := unix.Pread(f.fd, b, off)
		if err != unix.EINTR {
			return n, err
		}
	}
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
	private := tempName(base, "reclaim")
	if testHookBeforeRename != nil {
		testHookBeforeRename()
	}
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

// testHookBeforeRename lets tests publish a successor between the check
// that the path names the judged file and the rename that takes it away.
var testHookBeforeRename func()

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

// clearSocket removes our leftover socket name in d, if there is one;
// anything else by that name (another user's socket, a file, a symlink) is
// a squatter: refused (exit 77) and left alone, even by root.
func clearSocket(d *checkedDir, name string) error {
	var st unix.Stat_t
	switch err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
		return nil
	case err != nil:
		return err
	case int(st.Uid) != os.Geteuid():
		return squattedNotify.of(d.join(name), foreignUID(st.Uid))
	case st.Mode&unix.S_IFMT == unix.S_IFREG:
		return squattedNotify.of(d.join(name), "is a regular file, not a socket")
	case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return squattedNotify.of(d.join(name), "is a "+fileKind(uint32(st.Mode))+", not a socket")
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil && err != unix.ENOENT {
		return err
	}
	return nil
}
