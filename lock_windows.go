package main

import (
	"errors"
	"gwlock/internal/telemetry"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/windows"
)

// Windows byte-range locks are mandatory: a lock over the payload would stop
// readers. The lock covers one byte far past any payload instead.
const lockRangeOffset = 1 << 40

// checkedDir is a checked lock directory. Windows has no *at calls that
// Go's x/sys exposes for this, so it carries the path; a directory cannot be
// replaced while a file in it is open, which the held lock file is.
type checkedDir struct{ path string }

func (d *checkedDir) close() error { return nil }

func (d *checkedDir) names() ([]string, error) {
	f, err := os.Open(d.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

type lockFile struct {
	h       windows.Handle
	kernel  bool
	tmpName string
	vol     uint32
	idx     uint64
}

// Every handle shares delete, so the holder can remove the file while
// waiters and status readers have it open.
const shareAll = windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE | windows.FILE_SHARE_DELETE

func createOwnerFile(d *checkedDir, base string) (*lockFile, error) {
	// Another acquisition's sweep may hold a young temp file's lock for an
	// instant while it judges it (young, creator alive: keep). Rather than
	// wait on it, start over with a new file, as the POSIX side does.
	for attempt := 0; ; attempt++ {
		f, err := createOwnerFileOnce(d, base)
		if !errors.Is(err, errSweptMeanwhile) || attempt == 8 {
			return f, err
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Microsecond)
	}
}

// errSweptMeanwhile: another acquisition's sweep held our new temp file's
// lock when we went to take it.
var errSweptMeanwhile = errors.New("a sweep held our new temp file")

func createOwnerFileOnce(d *checkedDir, base string) (*lockFile, error) {
	dir := d.path
	name := filepath.Join(dir, ownTempName(base))
	h, err := createFile(name, windows.CREATE_NEW)
	if err != nil {
		return nil, &fs.PathError{Op: "create lock file in", Path: dir, Err: err}
	}
	f := &lockFile{h: h, tmpName: name}
	if err := f.identify(); err != nil {
		f.discard()
		return nil, err
	}
	if testHookFileOp != nil {
		testHookFileOp("lock new", name)
	}
	ok, err := f.lockRange(false)
	if !ok && err == nil {
		// Not a failure of ours: the range is locked by a sweep. A
		// *PathError must never carry a nil Err, whose Error would panic.
		err = errSweptMeanwhile
	}
	if err != nil {
		f.discard()
		return nil, &fs.PathError{Op: "lock new lock file in", Path: dir, Err: err}
	}
	f.kernel = true
	return f, nil
}

func createFile(path string, disposition uint32) (windows.Handle, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return windows.InvalidHandle, err
	}
	// No DELETE access: ordinary readers (type, os.ReadFile) open without
	// FILE_SHARE_DELETE, which a handle with DELETE access would refuse.
	return windows.CreateFile(p, windows.GENERIC_READ|windows.GENERIC_WRITE, shareAll, nil,
		disposition, windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OPEN_REPARSE_POINT, 0)
}

func (f *lockFile) identify() error {
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(f.h, &info); err != nil {
		return &fs.PathError{Op: "stat lock file", Path: f.tmpName, Err: err}
	}
	f.setID(&info)
	return nil
}

func (f *lockFile) lockRange(wait bool) (bool, error) {
	flags := uint32(windows.LOCKFILE_EXCLUSIVE_LOCK)
	if !wait {
		flags |= windows.LOCKFILE_FAIL_IMMEDIATELY
	}
	ol := &windows.Overlapped{Offset: uint32(lockRangeOffset & 0xffffffff), OffsetHigh: uint32(lockRangeOffset >> 32)}
	err := windows.LockFileEx(f.h, flags, 0, 1, 0, ol)
	if err == windows.ERROR_LOCK_VIOLATION || err == windows.ERROR_IO_PENDING {
		return false, nil
	}
	return err == nil, err
}

func (f *lockFile) writePayload(b []byte) error {
	var ol windows.Overlapped
	var n uint32
	return windows.WriteFile(f.h, b, &n, &ol)
}

func (f *lockFile) publish(d *checkedDir, base string) error {
	path := d.join(base)
	if testHookFileOp != nil {
		testHookFileOp("publish", f.tmpName)
	}
	from, _ := windows.UTF16PtrFromString(f.tmpName)
	to, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return err
	}
	// Without MOVEFILE_REPLACE_EXISTING the rename fails if the path exists,
	// which makes it the atomic create-if-absent the protocol needs.
	err = windows.MoveFileEx(from, to, 0)
	if err == windows.ERROR_ALREADY_EXISTS || err == windows.ERROR_FILE_EXISTS {
		return fs.ErrExist
	}
	if err == windows.ERROR_ACCESS_DENIED {
		// A file being deleted still holds its name until its last handle
		// closes; openExisting tells that apart from a real refusal.
		return fs.ErrExist
	}
	if err == windows.ERROR_SHARING_VIOLATION {
		// A scanner opened our new temp file, as they do with every new
		// file, without FILE_SHARE_DELETE: the rename needs DELETE access.
		err = inUse(err, "another program (an antivirus scanner, an indexer?) has the new lock file open")
	}
	if err != nil {
		return &fs.PathError{Op: "rename lock file", Path: path, Err: err}
	}
	f.tmpName = ""
	return nil
}

func (f *lockFile) discard() {
	f.close()
	if f.tmpName != "" {
		if p, err := windows.UTF16PtrFromString(f.tmpName); err == nil {
			_ = windows.DeleteFile(p)
		}
		f.tmpName = ""
	}
}

// openLockPath opens name in d for openExisting.
func openLockPath(d *checkedDir, name string) (*lockFile, error) {
	path := d.join(name)
	if testHookFileOp != nil {
		testHookFileOp("open", path)
	}
	h, err := createFile(path, windows.OPEN_EXISTING)
	if err != nil {
		return nil, err
	}
	return &lockFile{h: h, kernel: true}, nil
}

func classifyOpenError(d *checkedDir, name string, err error) error {
	path := d.join(name)
	switch err {
	case windows.ERROR_FILE_NOT_FOUND, windows.ERROR_PATH_NOT_FOUND:
		return fs.ErrNotExist
	case windows.ERROR_SHARING_VIOLATION:
		return &fs.PathError{Op: "open lock file", Path: path, Err: inUse(err, "another program (an antivirus scanner, an indexer?) has it open without sharing")}
	case windows.ERROR_ACCESS_DENIED:
		return classifyDenied(path, err)
	}
	return &fs.PathError{Op: "open lock file", Path: path, Err: err}
}

// classifyDenied tells apart by attributes what refuses an open: a
// directory, or a file pending deletion. A file pending deletion refuses
// every open, even the attribute query (STATUS_DELETE_PENDING), until its
// last handle closes and the name is free: that is a wait, not a failure.
func classifyDenied(path string, err error) error {
	p, _ := windows.UTF16PtrFromString(path)
	attrs, aerr := windows.GetFileAttributes(p)
	switch {
	case aerr == windows.ERROR_FILE_NOT_FOUND || aerr == windows.ERROR_PATH_NOT_FOUND:
		return fs.ErrNotExist
	case aerr != nil:
		return &fs.PathError{Op: "open lock file", Path: path, Err: inUse(err, "it was deleted but another program still has it open")}
	case attrs&windows.FILE_ATTRIBUTE_DIRECTORY != 0:
		return notRegularLockPath.of(path, whyDirNotFile)
	}
	return &fs.PathError{Op: "open lock file", Path: path, Err: err}
}

// checkExisting refuses an opened file that is not a regular file of ours,
// and records its identity.
func (f *lockFile) checkExisting(path string) error {
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(f.h, &info); err != nil {
		return &fs.PathError{Op: "stat lock file", Path: path, Err: err}
	}
	switch {
	case info.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0:
		return symlinkLockPath.of(path, whyReparsePoint)
	case info.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0:
		return notRegularLockPath.of(path, whyDirNotFile)
	case !onDisk(f.h):
		return notRegularLockPath.of(path, "is not a regular file")
	}
	if sd, err := windows.GetSecurityInfo(f.h, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION); err == nil {
		if why := foreignOwner(sd); why != "" {
			return foreignLockFile.of(path, why)
		}
	}
	f.setID(&info)
	return nil
}

// The Windows refusals of a reparse point (a symlink or junction). Their
// hints differ from the POSIX ones (unrealLockDir, lock_posix.go's
// symlinkLockPath) in wording only; they are kept as they were.
var (
	symlinkLockPath = refusal{"lock path", "remove it or point --lock at the real file"}
	reparseLockDir  = refusal{"lock dir", "name the real directory with --lock-dir"}
)

const whyReparsePoint = "is a symlink or junction; gwlock never follows one"

func onDisk(h windows.Handle) bool {
	t, _ := windows.GetFileType(h)
	return t == windows.FILE_TYPE_DISK
}

// setID records the file's identity, (volume serial, file index).
func (f *lockFile) setID(info *windows.ByHandleFileInformation) {
	f.vol, f.idx = info.VolumeSerialNumber, uint64(info.FileIndexHigh)<<32|uint64(info.FileIndexLow)
}

func (f *lockFile) tryLock() (bool, error) {
	ok, err := f.lockRange(false)
	if err != nil {
		return false, &fs.PathError{Op: "LockFileEx", Path: "lock file", Err: err}
	}
	return ok, nil
}

// waitLock polls on Windows: a blocking LockFileEx on a synchronous handle
// cannot be given a deadline. The pause grows from 1 ms to 20 ms.
func (f *lockFile) waitLock(deadline time.Time, cancel <-chan struct{}) (bool, error) {
	pause := time.Millisecond
	for time.Now().Before(deadline) {
		if ok, err := f.tryLock(); ok || err != nil {
			return ok, err
		}
		if !sleepUntil(pause, deadline, cancel) {
			break
		}
		if pause < 20*time.Millisecond {
			pause *= 2
		}
	}
	f.close()
	return false, nil
}

func (f *lockFile) stat() (int64, time.Time, error) {
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(f.h, &info); err != nil {
		return 0, time.Time{}, err
	}
	size := int64(info.FileSizeHigh)<<32 | int64(info.FileSizeLow)
	return size, time.Unix(0, info.LastWriteTime.Nanoseconds()), nil
}

func (f *lockFile) readAt(b []byte, off int64) (int, error) {
	ol := windows.Overlapped{Offset: uint32(off)}
	var got uint32
	switch err := windows.ReadFile(f.h, b, &got, &ol); err {
	case nil:
		return int(got), nil
	case windows.ERROR_HANDLE_EOF:
		return 0, nil
	case windows.ERROR_LOCK_VIOLATION:
		// Another program locked the payload's bytes (a backup tool):
		// they are readable again once it unlocks them.
		return 0, inUse(err, "another program has locked the payload")
	default:
		return 0, err
	}
}

func (f *lockFile) namedBy(d *checkedDir, name string) (bool, error) {
	path := d.join(name)
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return false, err
	}
	h, err := windows.CreateFile(p, 0, shareAll, nil, windows.OPEN_EXISTING, windows.FILE_FLAG_OPEN_REPARSE_POINT|windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if err == windows.ERROR_FILE_NOT_FOUND || err == windows.ERROR_PATH_NOT_FOUND || err == windows.ERROR_ACCESS_DENIED {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer windows.CloseHandle(h)
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &info); err != nil {
		return false, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	var named lockFile
	named.setID(&info)
	return named.id() == f.id(), nil
}

func (f *lockFile) touch() error {
	now := windows.NsecToFiletime(time.Now().UnixNano())
	return windows.SetFileTime(f.h, nil, nil, &now)
}

func (f *lockFile) close() error {
	if f.h == windows.InvalidHandle || f.h == 0 {
		return nil
	}
	h := f.h
	f.h = windows.InvalidHandle
	return windows.CloseHandle(h)
}

// removeLockPath removes the file at path. Callers have checked, while
// holding its lock, that path names their file. The file is renamed to a
// private name first, so the lock name is free at once even though Windows
// keeps a deleted file until its last handle closes. A reader that opened it
// without FILE_SHARE_DELETE blocks the rename for as long as it reads: that
// is an errFileInUse, which the caller retries within its own bound.
func removeLockPath(d *checkedDir, name string) error {
	path := d.join(name)
	if testHookFileOp != nil {
		testHookFileOp("remove", path)
	}
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	private := filepath.Join(dir, tempName(base, "gone"))
	q, _ := windows.UTF16PtrFromString(private)
	switch err = windows.MoveFileEx(p, q, 0); err {
	case nil:
	case windows.ERROR_FILE_NOT_FOUND, windows.ERROR_PATH_NOT_FOUND:
		return fs.ErrNotExist
	case windows.ERROR_SHARING_VIOLATION, windows.ERROR_ACCESS_DENIED:
		// ERROR_ACCESS_DENIED: the file is pending deletion and still open.
		return inUse(err, "another program (an antivirus scanner, an indexer?) has it open without FILE_SHARE_DELETE")
	default:
		return err
	}
	// If a reader still has it open, the private name lingers until the next
	// acquisition's sweep; the lock name is already free.
	_ = windows.DeleteFile(q)
	return nil
}

// inUseError is a Windows error that a third party's open handle causes; it
// matches errFileInUse so callers retry it.
type inUseError struct {
	err error // the OS's error; never nil (inUse)
	why string
}

// inUse wraps err, whatever its type: a nil err (no OS error to show)
// becomes errFileInUse itself, so Error never reaches a nil value.
func inUse(err error, why string) error {
	if err == nil {
		err = errFileInUse
	}
	return &inUseError{err: err, why: why}
}

func (e *inUseError) Error() string        { return e.why + ", still after retrying: " + e.err.Error() }
func (e *inUseError) Unwrap() error        { return e.err }
func (e *inUseError) Is(target error) bool { return target == errFileInUse }

// testHookFileOp, if set, runs before each new file's first lock ("lock new",
// temp path), publish ("publish", temp path),
// openExisting ("open") and removeLockPath ("remove"): tests use it to have
// another process open the file at exactly that moment.
var testHookFileOp func(op, path string)

func reclaimWithoutKernelLock(cur *lockFile, d *checkedDir, base string) (bool, error) {
	return false, errors.New("payload-only locks are not supported on Windows")
}

func openLockDir(dir string, explicit, prepare bool, log *telemetry.Logger) (*checkedDir, error) {
	if !explicit && prepare {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, &fs.PathError{Op: "create lock dir", Path: dir, Err: err}
		}
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, &fs.PathError{Op: "stat lock dir", Path: dir, Err: err}
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil, reparseLockDir.of(dir, whyReparsePoint)
	}
	if !fi.IsDir() {
		return nil, notDirLockDir.of(dir, "is not a directory")
	}
	sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return nil, &fs.PathError{Op: "read owner of lock dir", Path: dir, Err: err}
	}
	if why := foreignOwner(sd); why != "" {
		return nil, foreignLockDir.of(dir, why)
	}
	return &checkedDir{path: dir}, nil
}

// foreignOwner says why a security descriptor's owner is not acceptable, or
// "" if it is us, Administrators or SYSTEM: the Windows counterpart of the
// POSIX rule "owned by us or root". Write access for others (the DACL) is
// not judged.
func foreignOwner(sd *windows.SECURITY_DESCRIPTOR) string {
	owner, _, err := sd.Owner()
	if err != nil || owner == nil {
		return "has no readable owner"
	}
	if tu, err := windows.GetCurrentProcessToken().GetTokenUser(); err == nil && windows.EqualSid(owner, tu.User.Sid) {
		return ""
	}
	for _, known := range []windows.WELL_KNOWN_SID_TYPE{windows.WinBuiltinAdministratorsSid, windows.WinLocalSystemSid} {
		if sid, err := windows.CreateWellKnownSid(known); err == nil && windows.EqualSid(owner, sid) {
			return ""
		}
	}
	return "is owned by " + owner.String() + ", not by us, Administrators or SYSTEM"
}

// defaultLockDir is %LOCALAPPDATA%\gwlock, else <temp>\gwlock-<user>.
func defaultLockDir() string {
	if d := os.Getenv("LOCALAPPDATA"); d != "" {
		return filepath.Join(d, "gwlock")
	}
	return filepath.Join(os.TempDir(), "gwlock-"+os.Getenv("USERNAME"))
}

func setSubreaper() error { return errors.New("--subreaper is Linux only") }

// stdUsable says, for stdin, stdout and stderr, whether the handle Windows
// gave this process was valid when it started. A process started with an
// absent or stale standard handle (by a service manager, or a parent that
// had closed it) holds only a number, which Windows may later give to a
// handle we open ourselves, such as the lock file: telemetry would then land
// in the payload, and the gateway would inherit the lock file as its stderr.
// Package initialisation runs before gwlock opens any file.
var stdUsable = [3]bool{validHandle(os.Stdin), validHandle(os.Stdout), validHandle(os.Stderr)}

func validHandle(f *os.File) bool {
	h := windows.Handle(f.Fd())
	if h == 0 || h == windows.InvalidHandle {
		return false
	}
	// Only a definite ERROR_INVALID_HANDLE disqualifies: GetFileType also
	// fails, with no error, for valid handles of unknown type.
	_, err := windows.GetFileType(h)
	return err != windows.ERROR_INVALID_HANDLE
}

// stderrWriter: Windows has no SIGPIPE to avoid; a stderr that was not valid
// at start is never written to (see stdUsable).
var stderrWriter io.Writer = usableStderr()

func usableStderr() io.Writer {
	if !stdUsable[2] {
		return io.Discard
	}
	return os.Stderr
}

// id is the file's identity, (volume serial, file index).
func (f *lockFile) id() fileID { return fileID{uint64(f.vol), f.idx} }

// inheritable: none. A LockFileEx lock belongs to the process that took it and
// ends when that process closes its handle, so an inherited handle would keep
// the file open without keeping the lock; the job object ties the gateway to
// the holder instead.
func (f *lockFile) inheritable() (uintptr, bool) { return 0, false }

// clearSocket: run binds no socket on Windows (no datagram sockets).
func clearSocket(*checkedDir, string) error { return errors.ErrUnsupported }
