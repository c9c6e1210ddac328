//go:build unix

package main

import (
	"bytes"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	helpers["gwlock-named"] = func(args []string) int {
		forceNamedTemp()
		return cli(args, os.Stdout, stderrWriter)
	}
	helpers["chaos"] = helperChaos
	helpers["gwlock-noflock"] = func(args []string) int {
		noKernelLocksHere()
		return cli(args, os.Stdout, stderrWriter)
	}
}

// noKernelLocksHere makes flock fail with ENOLCK in this process, as on NFS
// without lockd: gwlock must fall back to payload judgement and a heartbeat.
func noKernelLocksHere() {
	flockSyscall = func(int, int) error { return unix.ENOLCK }
}

// forceNamedTemp makes this process use named temp files, as gwlock does
// where O_TMPFILE or /proc is missing, so litter handling can be tested on Linux.
func forceNamedTemp() { openAnonymous, linkAnonymous = nil, nil }

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create files owned by another user")
	}
}

const nobody = 65534

// TestUnsafeLockPath: whatever sits at the lock path that is not a regular
// file of ours is refused with exit 77, one line naming it, untouched, at once.
func TestUnsafeLockPath(t *testing.T) {
	cases := map[string]unsafeSetup{
		"fifo":                     placeFIFO,
		"directory":                placeDirectory,
		"socket":                   placeSocket,
		"dangling-symlink":         placeLink("/nonexistent/gwlock-target"),
		"symlink-to-precious-file": placeLinkToPrecious,
	}
	if os.Geteuid() == 0 {
		cases["other-users-file"] = placeOtherUsersFile
	}
	for name, place := range cases {
		t.Run(name, func(t *testing.T) { checkUnsafeRefused(t, place) })
	}
}

// unsafeSetup puts something unsafe at path and returns the check that it
// is unchanged.
type unsafeSetup func(t *testing.T, path string) (check func(t *testing.T))

func placeFIFO(t *testing.T, path string) func(*testing.T) {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return func(t *testing.T) {
		if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
			t.Fatal("FIFO changed")
		}
	}
}

func placeDirectory(t *testing.T, path string) func(*testing.T) {
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	writeLockFile(t, filepath.Join(path, "keep"), []byte("x"), 0)
	return func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(path, "keep")); err != nil {
			t.Fatal("directory contents changed")
		}
	}
}

func placeSocket(t *testing.T, path string) func(*testing.T) {
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return func(t *testing.T) {
		if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
			t.Fatal("socket changed")
		}
	}
}

func placeLink(target string) unsafeSetup {
	return func(t *testing.T, path string) func(*testing.T) {
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		return func(t *testing.T) {
			if got, err := os.Readlink(path); err != nil || got != target {
				t.Fatalf("symlink changed: %q %v", got, err)
			}
		}
	}
}

func placeLinkToPrecious(t *testing.T, path string) func(*testing.T) {
	precious := filepath.Join(filepath.Dir(path), "precious")
	writeLockFile(t, precious, []byte("do not touch"), 0)
	check := placeLink(precious)(t, path)
	return func(t *testing.T) {
		check(t)
		if b, _ := os.ReadFile(precious); string(b) != "do not touch" {
			t.Fatalf("symlink target written: %q", b)
		}
	}
}

func placeOtherUsersFile(t *testing.T, path string) func(*testing.T) {
	writeLockFile(t, path, []byte(`{"pid":1}`), time.Hour)
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	return func(t *testing.T) {
		if b, _ := os.ReadFile(path); string(b) != `{"pid":1}` {
			t.Fatal("another user's file changed")
		}
	}
}

// checkUnsafeRefused runs, asks status and unlocks against what place put
// at the lock path: each refuses it at once and leaves it as it was.
func checkUnsafeRefused(t *testing.T, place unsafeSetup) {
	dir := lockDir(t)
	lock, pidfile := filepath.Join(dir, "u.lock"), filepath.Join(dir, "pid")
	check := place(t, lock)
	begin := time.Now()
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "3s", "--stale", "1ms", "--", testBinary(t), "helper:gateway", "-pidfile", pidfile)
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("answered after %s; it must not wait for an unsafe path", took)
	}
	if r.code != exitUnsafe {
		t.Fatalf("exit = %d, want %d; stderr:\n%s", r.code, exitUnsafe, r.stderr)
	}
	errLines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := errLines[len(errLines)-1]
	if !strings.HasPrefix(last, "gwlock: ") || !strings.Contains(last, lock) || !strings.Contains(last, "hint:") {
		t.Fatalf("error line %q does not name the path and a fix", last)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Fatal("gateway started")
	}
	check(t)
	if r := runGwlock(t, nil, "status", "--lock", lock); r.code != statusUnknown {
		t.Errorf("status: %d, want %d", r.code, statusUnknown)
	}
	if r := runGwlock(t, nil, "unlock", "--lock", lock); r.code != exitUnsafe {
		t.Errorf("unlock: %d, want %d", r.code, exitUnsafe)
	}
	check(t)
}

// TestHugeAndDeepPayloads: a 1 GiB file and deeply nested JSON are judged
// unknown after reading at most 64 KiB, without hanging or crashing.
func TestHugeAndDeepPayloads(t *testing.T) {
	for name, write := range map[string]func(path string) error{
		"1GiB": func(path string) error {
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := f.Write(bytes.Repeat([]byte("{"), 4096)); err != nil {
				return err
			}
			return f.Truncate(1 << 30)
		},
		"deep": func(path string) error { return os.WriteFile(path, bytes.Repeat([]byte("["), 1<<20), 0o600) },
		"long-string": func(path string) error {
			return os.WriteFile(path, []byte(`{"pid":1,"configPath":"`+strings.Repeat("x", 70<<10)+`"}`), 0o600)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := lockDir(t)
			lock := filepath.Join(dir, "h.lock")
			if err := write(lock); err != nil {
				t.Fatal(err)
			}
			r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "200ms", "--", "true")
			if r.code != exitBusy {
				t.Fatalf("young file: exit %d, want %d (unknown owner waits)\n%s", r.code, exitBusy, r.stderr)
			}
			if ev := mustEvent(t, r.events(), "acquire-contention", "owner_status"); ev["owner_status"] != "unknown" {
				t.Fatalf("owner_status = %s, want unknown", ev["owner_status"])
			}
			old := time.Now().Add(-time.Hour)
			_ = os.Chtimes(lock, old, old)
			mustRecover(t, runGwlock(t, nil, "run", "--lock", lock, "--stale", "3s", "--", "true"), reasonStaleUnknown)
		})
	}
}

// TestReadPayloadBounded: readPayload never returns more than 64 KiB.
func TestReadPayloadBounded(t *testing.T) {
	dir := lockDir(t)
	path := filepath.Join(dir, "big")
	writeLockFile(t, path, bytes.Repeat([]byte("x"), 3*maxPayloadRead), 0)
	f, err := openExisting(mustOpenDir(t, dir), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	b, _, err := f.readPayload()
	if err != nil || len(b) != maxPayloadRead {
		t.Fatalf("readPayload = %d bytes, %v; want %d", len(b), err, maxPayloadRead)
	}
}

func umaskRun(t *testing.T, umask string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{"-c", `umask ` + umask + `; exec "$0" "$@"`, testBinary(t)}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	return runCmd(t, cmd)
}

// TestLockDirSafety: a lock dir gwlock did not make safe (another user's,
// writable by others, a symlink) is refused, never used.
func TestLockDirSafety(t *testing.T) {
	t.Run("default-created-0700-file-0600-whatever-umask", lockDirDefaultModes)
	t.Run("default-tightened", lockDirDefaultTightened)
	t.Run("default-is-symlink", lockDirDefaultIsSymlink)
	t.Run("default-owned-by-another-user", lockDirDefaultOwnedByAnotherUser)
	t.Run("explicit-writable-without-sticky", lockDirExplicitWritableWithoutSticky)
	t.Run("explicit-owned-by-another-user", lockDirExplicitOwnedByAnotherUser)
	t.Run("explicit-missing", lockDirExplicitMissing)
}

// modeGateway is the command line of a gateway that writes the lock file's
// mode to modeFile.
func modeGateway(t *testing.T, modeFile string) []string {
	return []string{"--", testBinary(t), "helper:gateway", "-lock-mode", modeFile}
}

func lockDirDefaultModes(t *testing.T) {
	for _, umask := range []string{"000", "777", "022"} {
		root := fakeRoot(t)
		modeFile := filepath.Join(root, "mode")
		r := umaskRun(t, umask, nil, append([]string{"helper:gwlock-in", root, "run", "--config", existingConfig(t)}, modeGateway(t, modeFile)...)...)
		if r.code != 0 {
			t.Fatalf("umask %s: exit %d\n%s", umask, r.code, r.stderr)
		}
		fi, err := os.Stat(defaultLockDirUnder(root, os.Geteuid()))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("umask %s: default dir mode %v, want 0700", umask, fi.Mode())
		}
		if got := strings.TrimSpace(string(waitFile(t, modeFile))); got != "0600" {
			t.Fatalf("umask %s: lock file mode %s, want 0600", umask, got)
		}
	}
}

func lockDirDefaultTightened(t *testing.T) {
	root := fakeRoot(t)
	def := defaultLockDirUnder(root, os.Geteuid())
	if err := os.Mkdir(def, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(def, 0o755)
	r := runGwlockHelper(t, "gwlock-in", root, "run", "--config", existingConfig(t), "--", "true")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if ev := mustEvent(t, r.events(), "dir-tightened", "dir", "from_mode"); ev["from_mode"] != "0755" {
		t.Fatalf("from_mode = %s", ev["from_mode"])
	}
	if fi, _ := os.Stat(def); fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode after = %v", fi.Mode())
	}
}

func lockDirDefaultIsSymlink(t *testing.T) {
	root := fakeRoot(t)
	def := defaultLockDirUnder(root, os.Geteuid())
	elsewhere := lockDir(t)
	if err := os.Symlink(elsewhere, def); err != nil {
		t.Fatal(err)
	}
	r := runGwlockHelper(t, "gwlock-in", root, "run", "--config", existingConfig(t), "--", "true")
	if r.code != exitUnsafe || !strings.Contains(r.stderr, def) {
		t.Fatalf("exit %d, want %d naming the dir: %s", r.code, exitUnsafe, r.stderr)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Fatal("wrote through the symlinked dir")
	}
}

func lockDirDefaultOwnedByAnotherUser(t *testing.T) {
	requireRoot(t)
	root := fakeRoot(t)
	d := defaultLockDirUnder(root, os.Geteuid())
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.Chown(d, nobody, nobody)
	r := runGwlockHelper(t, "gwlock-in", root, "run", "--config", existingConfig(t), "--", "true")
	if r.code != exitUnsafe {
		t.Fatalf("exit %d, want %d: %s", r.code, exitUnsafe, r.stderr)
	}
}

func lockDirExplicitWritableWithoutSticky(t *testing.T) {
	d := lockDir(t)
	_ = os.Chmod(d, 0o777)
	r := runGwlock(t, nil, "run", "--lock-dir", d, "--config", existingConfig(t), "--", "true")
	if r.code != exitUnsafe || !strings.Contains(r.stderr, "sticky") {
		t.Fatalf("exit %d, want %d mentioning the sticky bit: %s", r.code, exitUnsafe, r.stderr)
	}
	if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o777 {
		t.Fatalf("explicit dir chmodded to %v", fi.Mode())
	}
	_ = os.Chmod(d, 0o777|os.ModeSticky)
	if r := runGwlock(t, nil, "run", "--lock-dir", d, "--config", existingConfig(t), "--", "true"); r.code != 0 {
		t.Fatalf("sticky 1777 dir refused: %s", r.stderr)
	}
	if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Fatalf("explicit dir chmodded to %v", fi.Mode())
	}
}

func lockDirExplicitOwnedByAnotherUser(t *testing.T) {
	requireRoot(t)
	d := lockDir(t)
	_ = os.Chown(d, nobody, nobody)
	r := runGwlock(t, nil, "run", "--lock", filepath.Join(d, "x.lock"), "--", "true")
	if r.code != exitUnsafe {
		t.Fatalf("exit %d, want %d: %s", r.code, exitUnsafe, r.stderr)
	}
}

func lockDirExplicitMissing(t *testing.T) {
	d := filepath.Join(lockDir(t), "missing")
	r := runGwlock(t, nil, "run", "--lock", filepath.Join(d, "x.lock"), "--", "true")
	if r.code != exitFailure || !strings.Contains(r.stderr, d) {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(d); !os.IsNotExist(err) {
		t.Fatal("an explicit dir was created")
	}
}

// mountTmpfs runs script in a private mount namespace with a tmpfs at $1.
func mountTmpfs(t *testing.T, opts, script string, args ...string) result {
	t.Helper()
	requireLinux(t)
	requireRoot(t)
	mnt := lockDir(t)
	full := fmt.Sprintf(`mount -t tmpfs -o %s tmpfs "$1" && chmod 700 "$1" && %s`, opts, script)
	if err := exec.Command("unshare", "--mount", "true").Run(); err != nil {
		t.Skipf("unshare --mount unavailable here (%v); needs root on Linux", err)
	}
	cmd := exec.Command("unshare", append([]string{"--mount", "sh", "-c", full, "sh", mnt, testBinary(t)}, args...)...)
	cmd.Env = cleanEnv()
	return runCmd(t, cmd)
}

func TestReadOnlyFilesystem(t *testing.T) {
	r := mountTmpfs(t, "size=64k", `mount -o remount,ro "$1" && "$2" helper:gwlock run --lock "$1/x.lock" -- true`)
	if r.code != exitFailure || !strings.Contains(r.stderr, "read-only file system") {
		t.Fatalf("exit %d, want 1 and a line about the read-only filesystem: %s", r.code, r.stderr)
	}
}

// TestDiskFull: ENOSPC while writing the payload leaves nothing behind.
func TestDiskFull(t *testing.T) {
	for _, helper := range []string{"gwlock", "gwlock-named"} {
		r := mountTmpfs(t, "size=8k", `head -c 8192 /dev/zero > "$1/filler"; "$2" helper:`+helper+` run --lock "$1/x.lock" -- true; echo "exit=$?"; ls -A "$1"`)
		if !strings.Contains(r.stdout, "exit=1") || !strings.Contains(r.stderr, "no space left") {
			t.Fatalf("%s: want exit 1 and ENOSPC named; stdout %q stderr %q", helper, r.stdout, r.stderr)
		}
		if ls := strings.Fields(strings.SplitN(r.stdout, "\n", 2)[1]); len(ls) != 1 || ls[0] != "filler" {
			t.Fatalf("%s: lock dir after ENOSPC holds %v, want only the filler", helper, ls)
		}
	}
}

// TestWaiterSurvivesSignals: a waiter blocked in flock and bombarded with
// signals (EINTR) still takes the lock as soon as it is released.
func TestWaiterSurvivesSignals(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "w.lock")
	h := startHelper(t, "holder", nil, "-lock", lock)
	waitStdout(t, h, "held")
	w := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--timeout", "20s", "--", "true")
	w.waitEvent(t, "acquire-contention")
	for i := 0; i < 200; i++ {
		_ = w.cmd.Process.Signal(syscall.SIGURG)
		_ = w.cmd.Process.Signal(syscall.SIGWINCH)
		_ = w.cmd.Process.Signal(syscall.SIGCHLD)
	}
	_ = h.cmd.Process.Kill()
	ev := w.waitEvent(t, "acquire-success")
	if ev["stale_recoveries"] != "1" {
		t.Fatalf("acquire-success = %v, want one recovery of the killed holder's file", ev)
	}
	if code, stderr := w.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
}

// TestNoKernelLocks: on a filesystem without flock, gwlock writes
// flock:false, keeps the lock by O_EXCL publication, judges owners by their
// payload, recovers a dead owner's file by rename-and-check, and refreshes
// the file's mtime as a heartbeat.
func TestNoKernelLocks(t *testing.T) {
	dir := lockDir(t)
	lock, pidfile, copyFile := filepath.Join(dir, "n.lock"), filepath.Join(dir, "pid"), filepath.Join(dir, "copy")
	g := startHelper(t, "gwlock-noflock", nil, "run", "--lock", lock, "--stale", "600ms", "--",
		testBinary(t), "helper:gateway", "-sleep", "60s", "-pidfile", pidfile, "-copy-lock", copyFile)
	waitFile(t, pidfile)
	p, err := parsePayload(waitFile(t, copyFile))
	if err != nil || p.Flock {
		t.Fatalf("payload without kernel locks = %+v, %v; want flock:false", p, err)
	}
	before, _ := os.Stat(lock)
	// A second starter judges the payload: the owner is alive.
	r := runGwlockHelper(t, "gwlock-noflock", "run", "--lock", lock, "--timeout", "300ms", "--stale", "600ms", "--", "true")
	if r.code != exitBusy {
		t.Fatalf("second starter: exit %d, want %d\n%s", r.code, exitBusy, r.stderr)
	}
	if ev := mustEvent(t, r.events(), "acquire-contention", "owner_status"); ev["owner_status"] != "alive" {
		t.Fatalf("owner_status = %s, want alive", ev["owner_status"])
	}
	// Heartbeat: every --stale/3 the mtime moves.
	deadline := time.Now().Add(eventWait)
	for {
		now, _ := os.Stat(lock)
		if now.ModTime().After(before.ModTime()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lock file mtime never refreshed by the heartbeat")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Launcher and gateway die: the next starter recovers by payload.
	gw := readPIDs(t, pidfile)[0]
	_ = g.cmd.Process.Kill()
	_ = syscall.Kill(gw, syscall.SIGKILL)
	waitGone(t, g.cmd.Process.Pid)
	waitGone(t, gw)
	mustRecover(t, runGwlockHelper(t, "gwlock-noflock", "run", "--lock", lock, "--timeout", "2s", "--stale", "600ms", "--", "true"), reasonOwnerDead)
	assertOnlyLockFile(t, dir)
}

// TestNoKernelLocksStorm: without flock, mutual exclusion rests on the atomic
// publication alone; many contenders still never overlap.
func TestNoKernelLocksStorm(t *testing.T) {
	dir := lockDir(t)
	procs := stormSize(t, 32)
	outs := runContenders(t, procs, "-noflock", "-lock", filepath.Join(dir, "ns.lock"),
		"-marker", filepath.Join(dir, "inside"), "-n", "3", "-hold", "200us")
	if ok, _ := tally(t, outs); ok != procs {
		t.Fatalf("%d of %d contenders finished cleanly", ok, procs)
	}
}

func runGwlockHelper(t *testing.T, helper string, args ...string) result {
	t.Helper()
	return runCmd(t, helperCmd(t, helper, args...))
}

// TestTempLitterSwept: a temp file left by an acquisition killed before it
// published is removed by the next acquisition; a live contender's is not.
func TestTempLitterSwept(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "l.lock")
	dead := filepath.Join(dir, ".l.lock.999999.deadbeef0000"+tempSuffix)
	live := filepath.Join(dir, ".l.lock.888888.cafebabe0000"+tempSuffix)
	other := filepath.Join(dir, ".other.lock.1.x"+tempSuffix)
	for _, p := range []string{dead, live, other} {
		writeLockFile(t, p, []byte(`{"pid":1}`), 0)
	}
	liveFile, err := os.OpenFile(live, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer liveFile.Close()
	if err := unix.Flock(int(liveFile.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if r := runGwlock(t, nil, "run", "--lock", lock, "--", "true"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if _, err := os.Stat(dead); err == nil {
		// The Linux O_TMPFILE path leaves no litter and sweeps only after a
		// crash; a named-temp starter must sweep.
		if r := runGwlockNamed(t, "run", "--lock", lock, "--", "true"); r.code != 0 {
			t.Fatal(r.stderr)
		}
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatal("a dead acquisition's temp file survived")
	}
	for _, p := range []string{live, other} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s removed: it was not dead litter of this lock", filepath.Base(p))
		}
	}
}

func runGwlockNamed(t *testing.T, args ...string) result {
	t.Helper()
	return runGwlockHelper(t, "gwlock-named", args...)
}

// helperChaos acquires and releases forever, printing "." per acquisition.
// Inside its critical section it must get a non-blocking POSIX record lock
// (fcntl) on a shared marker file; failing means another process is inside.
// A record lock, not a flock: a SIGKILLed process drops its record locks
// synchronously while closing its descriptors, but its flocks only later in
// deferred work, so a dying holder always leaves the marker before the lock.
func helperChaos(args []string) int {
	lock, marker := args[0], args[1]
	if len(args) > 2 && args[2] == "named" {
		forceNamedTemp()
	}
	m, err := os.OpenFile(marker, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	mfd := int(m.Fd())
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	un := unix.Flock_t{Type: unix.F_UNLCK}
	for {
		l, err := acquire(lockOptions{Path: lock, ConfigPath: lock, Timeout: 5 * time.Second, Poll: 10 * time.Millisecond, Stale: 30 * time.Second})
		if err != nil {
			fmt.Println("STUCK", err)
			return 4
		}
		if err := unix.FcntlFlock(uintptr(mfd), unix.F_SETLK, &lk); err != nil {
			fmt.Println("VIOLATION: marker held by another process:", err)
			return 3
		}
		time.Sleep(time.Duration(rand.Intn(300)) * time.Microsecond)
		_ = unix.FcntlFlock(uintptr(mfd), unix.F_SETLK, &un)
		_ = l.release(nil)
		os.Stdout.Write([]byte("."))
	}
}

// TestChaos SIGKILLs contenders at random points of acquisition, hold and
// release, many times. Mutual exclusion must hold throughout, no starter may
// get stuck, and the lock dir must end with no litter. CHAOS_ITERATIONS
// raises the number of kills (make chaos).
func TestChaos(t *testing.T) {
	kills := chaosIterations(150)
	dir, markDir := lockDir(t), lockDir(t)
	c := &chaosContenders{t: t, lock: filepath.Join(dir, "c.lock"), marker: filepath.Join(markDir, "inside")}
	const contenders = 4
	procs := make([]chaosProc, contenders)
	for i := range procs {
		procs[i] = c.spawn(i)
	}
	rng := rand.New(rand.NewSource(testSeed(t)))
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(rng.Intn(3000)) * time.Microsecond)
		i := rng.Intn(contenders)
		_ = procs[i].cmd.Process.Kill()
		c.collect(procs[i])
		procs[i] = c.spawn(i)
	}
	for _, p := range procs {
		_ = p.cmd.Process.Kill()
		c.collect(p)
	}
	// The next starter gets in within its timeout and leaves a clean dir.
	r := runGwlockNamed(t, "run", "--lock", c.lock, "--timeout", "5s", "--", "true")
	if r.code != 0 {
		t.Fatalf("starter after the chaos: exit %d\n%s", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("lock dir after chaos holds %v, want nothing", names)
	}
	if c.acquisitions == 0 {
		t.Fatal("no acquisitions happened; the chaos tested nothing")
	}
	checkChaosDetector(t, dir, c.marker)
	t.Logf("chaos: %d SIGKILLs, %d acquisitions, %d violations, %d stuck starters", kills, c.acquisitions, c.violations, c.stuck)
}

// chaosIterations is how many kills a chaos test makes: def, or
// CHAOS_ITERATIONS.
func chaosIterations(def int) int {
	if v, err := strconv.Atoi(os.Getenv("CHAOS_ITERATIONS")); err == nil && v > 0 {
		return v
	}
	return def
}

// chaosContenders are TestChaos's acquirers on one lock and one marker,
// with what they reported.
type chaosContenders struct {
	t                               *testing.T
	lock, marker                    string
	acquisitions, violations, stuck int
}

type chaosProc struct {
	cmd *exec.Cmd
	out *lockedBuffer
}

// spawn starts contender i; odd ones use named temp files.
func (c *chaosContenders) spawn(i int) chaosProc {
	mode := "anon"
	if i%2 == 1 {
		mode = "named"
	}
	p := chaosProc{cmd: helperCmd(c.t, "chaos", c.lock, c.marker, mode), out: new(lockedBuffer)}
	p.cmd.Stdout = p.out
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// collect waits for a contender and counts what it reported.
func (c *chaosContenders) collect(p chaosProc) {
	_ = p.cmd.Wait()
	s := p.out.String()
	c.acquisitions += strings.Count(s, ".")
	if strings.Contains(s, "VIOLATION") {
		c.violations++
		c.t.Error(s[strings.Index(s, "VIOLATION"):])
	}
	if strings.Contains(s, "STUCK") {
		c.stuck++
		c.t.Error(s[strings.Index(s, "STUCK"):])
	}
}

// checkChaosDetector is the control: contenders on different locks share
// the marker and are caught.
func checkChaosDetector(t *testing.T, dir, marker string) {
	a := helperCmd(t, "chaos", filepath.Join(dir, "a.lock"), marker)
	b := helperCmd(t, "chaos", filepath.Join(dir, "b.lock"), marker)
	var ao, bo lockedBuffer
	a.Stdout, b.Stdout = &ao, &bo
	_ = a.Start()
	_ = b.Start()
	for deadline := time.Now().Add(eventWait); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(ao.String()+bo.String(), "VIOLATION") {
			break
		}
	}
	_ = a.Process.Kill()
	_ = b.Process.Kill()
	_ = a.Wait()
	_ = b.Wait()
	if !strings.Contains(ao.String()+bo.String(), "VIOLATION") {
		t.Fatal("control: two contenders on different locks were never caught overlapping; the detector is blind")
	}
}

// TestChaosRun kills launchers and gateways (one, the other, or both) at
// random moments while three slots keep starting `gwlock run` on one lock.
// Each gateway holds a record lock on a shared marker for its whole life, so
// two gateways alive at once are caught. Every starter must get in within
// its --timeout, and the lock dir must end clean.
func TestChaosRun(t *testing.T) {
	kills := chaosIterations(100)
	dir, work := lockDir(t), lockDir(t)
	c := &runChaos{t: t, rng: rand.New(rand.NewSource(testSeed(t))), work: work,
		lock: filepath.Join(dir, "run.lock"), marker: filepath.Join(work, "gateway")}
	slots := []*chaosSlot{c.spawn(0), c.spawn(1), c.spawn(2)}
	for k := 0; k < kills; {
		time.Sleep(time.Duration(c.rng.Intn(2000)) * time.Microsecond)
		i := c.rng.Intn(len(slots))
		s := slots[i]
		if s.cmd.ProcessState == nil && !gone(s.cmd.Process.Pid) {
			c.kill(s)
			k++
		}
		if gone(s.cmd.Process.Pid) {
			c.finish(s)
			slots[i] = c.spawn(i)
		}
	}
	for _, s := range slots {
		c.finish(s) // each ends by itself: its gateway sleeps at most 5 ms
	}
	if b, err := os.ReadFile(c.marker + ".violations"); err == nil {
		t.Fatalf("two gateways ran at once:\n%s", b)
	}
	checkExclusiveDetector(t, filepath.Join(work, "control"))
	r := runGwlock(t, nil, "run", "--lock", c.lock, "--timeout", "10s", "--", testBinary(t), "helper:gateway", "-exclusive", c.marker)
	if r.code != 0 {
		t.Fatalf("starter after the chaos: exit %d\n%s", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("lock dir after chaos holds %d entries, want none", len(ents))
	}
	t.Logf("run chaos: %d SIGKILLs of launchers and gateways, %d starters, 0 overlapping gateways, %d stuck starters", kills, c.starts, c.stuck)
}

// runChaos is TestChaosRun's starters on one lock, with their count.
type runChaos struct {
	t                  *testing.T
	rng                *rand.Rand
	work, lock, marker string
	starts, stuck      int
}

type chaosSlot struct {
	cmd     *exec.Cmd
	out     *lockedBuffer
	pidfile string
}

// spawn starts a `gwlock run` in slot i; a third of its gateways daemonize
// where the OS lets the tree be followed.
func (c *runChaos) spawn(i int) *chaosSlot {
	s := &chaosSlot{out: new(lockedBuffer), pidfile: filepath.Join(c.work, fmt.Sprintf("pid-%d-%d", i, c.starts))}
	c.starts++
	gateway := []string{testBinary(c.t), "helper:gateway", "-exclusive", c.marker, "-pidfile", s.pidfile,
		"-sleep", fmt.Sprintf("%dus", c.rng.Intn(5000))}
	if runtime.GOOS == "linux" && c.rng.Intn(3) == 0 {
		// A daemonizing gateway: the daemon, in a session of
		// its own, is the one that holds the marker.
		gateway = append(gateway, "-daemonize")
	}
	s.cmd = helperCmd(c.t, "gwlock", append([]string{"run", "-q", "--lock", c.lock, "--timeout", "10s", "--"}, gateway...)...)
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	return s
}

// kill SIGKILLs the slot's launcher, its gateway, or both.
func (c *runChaos) kill(s *chaosSlot) {
	gw := 0
	if b, err := os.ReadFile(s.pidfile); err == nil {
		gw, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	which := c.rng.Intn(3)
	if which != 1 {
		_ = s.cmd.Process.Kill()
	}
	if which != 0 && gw > 0 {
		_ = syscall.Kill(gw, syscall.SIGKILL)
	}
}

func (c *runChaos) finish(s *chaosSlot) {
	_ = s.cmd.Wait()
	if strings.Contains(s.out.String(), "acquire-timeout") {
		c.stuck++
		c.t.Errorf("a starter timed out: %s", s.out.String())
	}
}

// checkExclusiveDetector is the control: two gateways on the marker
// without gwlock are caught.
func checkExclusiveDetector(t *testing.T, control string) {
	first := helperCmd(t, "gateway", "-exclusive", control, "-sleep", "5s", "-pidfile", control+".pid")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitFile(t, control+".pid")
	if err := helperCmd(t, "gateway", "-exclusive", control).Run(); err == nil {
		t.Fatal("control: a second gateway on a held marker was not caught")
	}
	_ = first.Process.Kill()
	_ = first.Wait()
}

// blackhole returns a loopback port that swallows connection attempts: a
// listener that never accepts, its accept queue already full, so the kernel
// drops further SYNs instead of answering. To a prober it looks like an
// unreachable host, and no packet leaves the machine.
func blackhole(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.CloseOnExec(fd) // helpers must not inherit the black hole
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	port := sa.(*unix.SockaddrInet4).Port
	// Fill the queue; each filler either completes or hangs, both are fine.
	for i := 0; i < 4; i++ {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond); err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 300*time.Millisecond); err == nil {
		c.Close()
		t.Skip("this kernel answered past a full accept queue; no black hole to test against")
	}
	return port
}

// TestProbeBounded: probing a host that never answers ends within the
// documented bounds, for probe, status and run's port check.
func TestProbeBounded(t *testing.T) {
	port := strconv.Itoa(blackhole(t))
	dir := lockDir(t)
	lock := filepath.Join(dir, "p.lock")
	for _, tc := range []struct {
		args  []string
		code  int
		limit time.Duration
	}{
		{[]string{"probe", "--port", port}, 1, 3 * time.Second},
		{[]string{"probe", "--port", port, "--wait", "500ms"}, 1, 3 * time.Second},
		{[]string{"status", "--lock", lock, "--port", port}, statusNotRunning, 3 * time.Second},
		{[]string{"run", "--lock", lock, "--port", port, "--", testBinary(t), "helper:gateway"}, 0, 5 * time.Second},
	} {
		begin := time.Now()
		r := runGwlock(t, nil, tc.args...)
		if took := time.Since(begin); took > tc.limit {
			t.Errorf("%v against a silent host took %s, over %s", tc.args, took, tc.limit)
		}
		if r.code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s", tc.args, r.code, tc.code, r.stderr)
		}
	}
}
