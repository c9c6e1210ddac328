//go:build unix

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// lockFile is an open lock file, held as a raw descriptor: the hot path makes
// a handful of syscalls and os.File would add allocations and a poller check.
type lockFile struct {
	fd       int
	kernel   bool   // flock works on this file; for our own file: we hold it
	tmpName  string // our named temp file until published ("" when anonymous)
	dev, ino uint64
}

// openAnonymous creates an unnamed file in dir (Linux O_TMPFILE), so an
// acquisition killed before publishing leaves nothing behind. Nil where the OS
// has no such thing.
var openAnonymous func(dir string) (int, error)

// linkAnonymous gives an anonymous file a name.
var linkAnonymous func(fd int, path string) error

func createOwnerFile(dir, base string) (*lockFile, error) {
	// Another acquisition's sweep may hold a young named temp file's lock for
	// an instant while it judges it (young, creator alive: keep). Rather than
	// wait on it (a stopped sweeper would wedge us), start over with a new file.
	for attempt := 0; ; attempt++ {
		f, err := createOwnerFileOnce(dir, base)
		if err != errSweptMeanwhile || attempt == 8 {
			return f, err
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Microsecond)
	}
}

var errSweptMeanwhile = errors.New("a sweep held our new temp file")

func createOwnerFileOnce(dir, base string) (*lockFile, error) {
	f := &lockFile{fd: -1}
	if openAnonymous != nil {
		if fd, err := openAnonymous(dir); err == nil {
			f.fd = fd
		}
	}
	if f.fd < 0 {
		f.tmpName = filepath.Join(dir, "."+base+"."+strconv.Itoa(os.Getpid())+"."+uniqueSuffix()+tempSuffix)
		fd, err := openRetry(f.tmpName, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, &fs.PathError{Op: "create lock file in", Path: dir, Err: err}
		}
		f.fd = fd
	}
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		f.discard()
		return nil, &fs.PathError{Op: "stat new lock file in", Path: dir, Err: err}
	}
	f.dev, f.ino = uint64(st.Dev), uint64(st.Ino)
	// The umask may have taken bits we need; never more than 0600 either way.
	if st.Mode&0o777 != 0o600 {
		if err := unix.Fchmod(f.fd, 0o600); err != nil {
			f.discard()
			return nil, &fs.PathError{Op: "chmod new lock file in", Path: dir, Err: err}
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
		return nil, &fs.PathError{Op: "flock new lock file in", Path: dir, Err: err}
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

func (f *lockFile) publish(path string) error {
	var err error
	if f.tmpName == "" {
		err = linkAnonymous(f.fd, path)
	} else {
		err = unix.Link(f.tmpName, path)
	}
	if err == unix.EEXIST {
		return fs.ErrExist
	}
	if err == unix.ENOENT && f.tmpName != "" {
		if _, serr := os.Stat(filepath.Dir(path)); serr == nil {
			return errTempGone
		}
	}
	if err != nil {
		return &fs.PathError{Op: "link lock file", Path: path, Err: err}
	}
	if f.tmpName != "" {
		_ = unix.Unlink(f.tmpName)
		f.tmpName = ""
	}
	return nil
}

// discard closes a file that never became the lock, removing its temp name.
func (f *lockFile) discard() {
	if f.tmpName != "" {
		_ = unix.Unlink(f.tmpName)
		f.tmpName = ""
	}
	f.close()
}

func openExisting(path string) (*lockFile, error) {
	// O_NONBLOCK: a FIFO at the path must not hang us. O_NOFOLLOW: a symlink
	// is refused, never followed. O_RDWR: NFSv4 wants it for exclusive locks.
	fd, err := openRetry(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == unix.EROFS || err == unix.EACCES {
		fd, err = openRetry(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, classifyOpenError(path, err)
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

func classifyOpenError(path string, err error) error {
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
		if unix.Lstat(path, &st) == nil && int(st.Uid) != os.Geteuid() {
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

func (f *lockFile) namedBy(path string) (bool, error) {
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "stat", Path: path, Err: err}
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

func removeLockPath(path string) error {
	for {
		err := unix.Unlink(path)
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
func reclaimWithoutKernelLock(cur *lockFile, path string) (bool, error) {
	dir, base := filepath.Split(path)
	private := filepath.Join(dir, "."+base+".reclaim."+uniqueSuffix()+tempSuffix)
	if err := unix.Rename(path, private); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, &fs.PathError{Op: "rename stale lock", Path: path, Err: err}
	}
	if same, _ := cur.namedBy(private); same {
		return true, unix.Unlink(private)
	}
	if err := unix.Link(private, path); err == nil {
		_ = unix.Unlink(private)
	}
	return false, nil
}

func prepareDir(dir string, explicit bool, log *telemetry) error {
	if !explicit {
		if err := unix.Mkdir(dir, 0o700); err != nil && err != unix.EEXIST {
			return &fs.PathError{Op: "create lock dir", Path: dir, Err: err}
		}
	}
	fd, err := openRetry(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch err {
	case nil:
	case unix.ELOOP, unix.EMLINK:
		return &unsafeError{What: "lock dir", Path: dir, Why: "is a symlink; gwlock never follows one", Hint: "name the real directory with --lock-dir"}
	case unix.ENOTDIR:
		return &unsafeError{What: "lock dir", Path: dir, Why: "is not a directory", Hint: "remove it or choose another --lock-dir"}
	case unix.ENOENT:
		return &fs.PathError{Op: "open lock dir", Path: dir, Err: errors.New("no such directory (hint: create it, mode 0700 or 1777)")}
	default:
		return &fs.PathError{Op: "open lock dir", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "stat lock dir", Path: dir, Err: err}
	}
	me := os.Geteuid()
	perm := uint32(st.Mode) & 0o7777
	if explicit {
		if int(st.Uid) != me && st.Uid != 0 {
			return &unsafeError{What: "lock dir", Path: dir, Why: fmt.Sprintf("is owned by uid %d, neither us (uid %d) nor root", st.Uid, me), Hint: "use a directory you own"}
		}
		if perm&0o022 != 0 && perm&unix.S_ISVTX == 0 {
			return &unsafeError{What: "lock dir", Path: dir, Why: fmt.Sprintf("is writable by others (mode %04o) without the sticky bit", perm),
				Hint: "chmod go-w or chmod +t it, or choose another --lock-dir"}
		}
		return nil
	}
	if int(st.Uid) != me {
		return &unsafeError{What: "lock dir", Path: dir, Why: fmt.Sprintf("is owned by uid %d, not by us (uid %d)", st.Uid, me), Hint: "another user created it; set --lock-dir or XDG_RUNTIME_DIR"}
	}
	if perm != 0o700 {
		if err := unix.Fchmod(fd, 0o700); err != nil {
			return &fs.PathError{Op: "chmod lock dir", Path: dir, Err: err}
		}
		if perm&0o077 != 0 {
			log.warn("dir-tightened", "dir", dir, "from_mode", fmt.Sprintf("%04o", perm))
		}
	}
	return nil
}

// defaultLockDir is $XDG_RUNTIME_DIR/gwlock, else <tmp>/gwlock-<uid>.
func defaultLockDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "gwlock")
	}
	return filepath.Join(os.TempDir(), "gwlock-"+strconv.Itoa(os.Geteuid()))
}

// processProbe asks the kernel whether pid exists without signalling it.
// EPERM means it exists and belongs to someone else.
func processProbe(pid int) pidState {
	if pid <= 0 {
		return pidUnknown // kill(0) and kill(-1) address groups, never probe them
	}
	switch err := unix.Kill(pid, 0); err {
	case nil, unix.EPERM:
		return pidPresent
	case unix.ESRCH:
		return pidAbsent
	}
	return pidUnknown
}

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

func openRetry(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// id is the file's identity, (dev, ino).
func (f *lockFile) id() fileID { return fileID{f.dev, f.ino} }
