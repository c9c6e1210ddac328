package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/windows"
)

// TestWindowsGatewayDiesWithLauncher: on Windows the gateway sits in a job
// object that kills it when the launcher's handle closes, so killing the
// launcher frees the lock and no orphaned gateway keeps running.
func TestWindowsGatewayDiesWithLauncher(t *testing.T) {
	dir := lockDir(t)
	lock, pidfile := filepath.Join(dir, "w.lock"), filepath.Join(dir, "pid")
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-sleep", "60s", "-pidfile", pidfile)
	gw, _ := strconv.Atoi(strings.TrimSpace(string(waitFile(t, pidfile))))
	_ = g.cmd.Process.Kill()
	deadline := time.Now().Add(eventWait)
	for processProbe(gw) == pidPresent {
		if time.Now().After(deadline) {
			t.Fatalf("gateway %d outlived its launcher", gw)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "5s", "--", testBinary(t), "helper:gateway", "-exit", "4")
	if r.code != 4 {
		t.Fatalf("next starter: exit %d, want the gateway's 4\n%s", r.code, r.stderr)
	}
}

// TestWindowsExitCode: the gateway's exit code passes through.
func TestWindowsExitCode(t *testing.T) {
	dir := lockDir(t)
	r := runGwlock(t, nil, "run", "--lock", filepath.Join(dir, "e.lock"), "--", testBinary(t), "helper:gateway", "-exit", "9")
	if r.code != 9 {
		t.Fatalf("exit %d, want 9", r.code)
	}
	if _, err := os.Stat(filepath.Join(dir, "e.lock")); !os.IsNotExist(err) {
		t.Fatalf("lock file left behind: %v", err)
	}
}

// TestWindowsForeignOwner: a lock dir or lock file owned by another account
// is refused (exit 77) and left alone.
func TestWindowsForeignOwner(t *testing.T) {
	other, err := windows.StringToSid("S-1-5-32-546") // BUILTIN\Guests
	if err != nil {
		t.Fatal(err)
	}
	setOwner := func(path string) {
		t.Helper()
		if err := windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION, other, nil, nil, nil); err != nil {
			t.Skipf("cannot give %s another owner here: %v", path, err)
		}
		sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION)
		if owner, _, _ := sd.Owner(); err != nil || !windows.EqualSid(owner, other) {
			t.Skip("the filesystem does not keep file owners (Wine reports the caller for every file); TestForeignOwnerRule covers the decision")
		}
	}
	dir := lockDir(t)
	foreignDir := filepath.Join(dir, "theirs")
	if err := os.Mkdir(foreignDir, 0o700); err != nil {
		t.Fatal(err)
	}
	setOwner(foreignDir)
	r := runGwlock(t, nil, "run", "--lock", filepath.Join(foreignDir, "x.lock"), "--", testBinary(t), "helper:gateway")
	if r.code != exitUnsafe || !strings.Contains(r.stderr, foreignDir) {
		t.Fatalf("another account's lock dir: exit %d, want %d naming it\n%s", r.code, exitUnsafe, r.stderr)
	}
	lock := filepath.Join(dir, "theirs.lock")
	writeLockFile(t, lock, []byte(`{"pid":1}`), 0)
	setOwner(lock)
	r = runGwlock(t, nil, "run", "--lock", lock, "--", testBinary(t), "helper:gateway")
	if r.code != exitUnsafe {
		t.Fatalf("another account's lock file: exit %d, want %d\n%s", r.code, exitUnsafe, r.stderr)
	}
	if b, err := os.ReadFile(lock); err != nil || string(b) != `{"pid":1}` {
		t.Fatalf("another account's lock file changed: %q %v", b, errors.Unwrap(err))
	}
}

// TestForeignOwnerRule: the owner rule on security descriptors built here.
func TestForeignOwnerRule(t *testing.T) {
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		t.Fatal(err)
	}
	guests, _ := windows.StringToSid("S-1-5-32-546")
	admins, _ := windows.CreateWellKnownSid(windows.WinBuiltinAdministratorsSid)
	system, _ := windows.CreateWellKnownSid(windows.WinLocalSystemSid)
	for _, tc := range []struct {
		owner   *windows.SID
		foreign bool
	}{{tu.User.Sid, false}, {admins, false}, {system, false}, {guests, true}} {
		sd, err := windows.NewSecurityDescriptor()
		if err != nil {
			t.Fatal(err)
		}
		if err := sd.SetOwner(tc.owner, false); err != nil {
			t.Fatal(err)
		}
		if why := foreignOwner(sd); (why != "") != tc.foreign {
			t.Errorf("foreignOwner(owner %s) = %q, want foreign=%v", tc.owner, why, tc.foreign)
		}
	}
}

// openProcess returns a handle to pid that can wait for it; holding it keeps
// the PID from being reused while the test looks at it.
func openProcess(t *testing.T, pid int) windows.Handle {
	t.Helper()
	h, err := windows.OpenProcess(windows.SYNCHRONIZE|windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		t.Fatalf("OpenProcess(%d): %v", pid, err)
	}
	t.Cleanup(func() { windows.CloseHandle(h) })
	return h
}

// waitGone waits (event-driven, bounded) until the process behind h exits.
func waitGone(h windows.Handle) bool {
	ev, _ := windows.WaitForSingleObject(h, uint32(eventWait/time.Millisecond))
	return ev == windows.WAIT_OBJECT_0
}

// TestWindowsLauncherKilledAtGatewayStart: the gateway is
// in the kill-on-close job before its first instruction, so a launcher killed
// right after the start, at either step, takes the gateway with it; killed
// before the resume, the gateway never ran at all. Before the fix the
// gateway ran first and joined the job after: killed at "resumed", the
// gateway outlived its launcher.
func TestWindowsLauncherKilledAtGatewayStart(t *testing.T) {
	for _, step := range []string{"assigned", "resumed"} {
		t.Run(step, func(t *testing.T) {
			dir := lockDir(t)
			lock, pidfile, ran := filepath.Join(dir, "k.lock"), filepath.Join(dir, "pid"), filepath.Join(dir, "ran")
			g := startHelper(t, "gwlock-stall", nil, step, pidfile, "run", "--lock", lock, "--",
				testBinary(t), "helper:gateway", "-sleep", "60s", "-pidfile", ran)
			gw, _ := strconv.Atoi(strings.TrimSpace(string(waitFile(t, pidfile))))
			h := openProcess(t, gw)
			if err := g.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			if !waitGone(h) {
				windows.TerminateProcess(h, 1)
				t.Fatalf("gateway %d outlived its launcher, killed at step %s", gw, step)
			}
			if _, err := os.Stat(ran); step == "assigned" && err == nil {
				t.Fatalf("gateway ran before it was resumed")
			}
			r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "5s", "--", testBinary(t), "helper:gateway", "-exit", "4")
			if r.code != 4 {
				t.Fatalf("next starter: exit %d, want the gateway's 4\n%s", r.code, r.stderr)
			}
		})
	}
}

// TestWindowsJobAssignmentFailure: a gateway that cannot be
// put in the job never runs: gwlock terminates it unrun, says so in one line,
// exits 1 and releases the lock. Before the fix the failure was ignored and
// the gateway ran outside the job.
func TestWindowsJobAssignmentFailure(t *testing.T) {
	dir := lockDir(t)
	lock, pidfile, ran := filepath.Join(dir, "j.lock"), filepath.Join(dir, "pid"), filepath.Join(dir, "ran")
	r := runCmd(t, helperCmd(t, "gwlock-nojob", pidfile, "run", "--lock", lock, "--",
		testBinary(t), "helper:gateway", "-pidfile", ran, "-exit", "4"))
	if r.code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitFailure, r.stderr)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.HasPrefix(l, "gwlock: ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "job object") {
		t.Fatalf("error lines = %q, want one naming the job object", lines)
	}
	if len(findEvents(r.events(), "child-start")) != 0 {
		t.Fatalf("child-start reported for a gateway that never ran:\n%s", r.stderr)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Fatalf("the gateway ran")
	}
	gw, _ := strconv.Atoi(strings.TrimSpace(string(waitFile(t, pidfile))))
	if st := processProbe(gw); st != pidAbsent {
		t.Fatalf("processProbe(gateway %d) = %v after gwlock exited, want absent", gw, st)
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Fatalf("lock file left behind: %v", err)
	}
}

// TestWindowsExitCode259IsDead: a process that exited with code
// 259 (STILL_ACTIVE's value) is dead, even while a handle keeps its object,
// and a lock file naming it is reclaimed at once. Before the fix
// GetExitCodeProcess == 259 read as running.
func TestWindowsExitCode259IsDead(t *testing.T) {
	cmd := helperCmd(t, "gateway", "-exit", "259")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	h := openProcess(t, pid) // keeps the exited process's object alive
	if !waitGone(h) {
		t.Fatalf("helper %d did not exit", pid)
	}
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil || code != 259 {
		t.Fatalf("exit code %d (%v), want 259", code, err)
	}
	if st := processProbe(pid); st != pidAbsent {
		t.Fatalf("processProbe(exited with 259) = %v, want absent (%v)", st, pidAbsent)
	}
	if st, ok := processStartTime(pid); ok {
		t.Fatalf("processStartTime(exited with 259) = %q, want none", st)
	}
	lock := filepath.Join(lockDir(t), "259.lock")
	writeLockFile(t, lock, mustJSON(t, map[string]any{"pid": pid, "createdAt": "2026-01-01T00:00:00.000Z", "configPath": lock}), 0)
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "0", "--", testBinary(t), "helper:gateway")
	mustRecover(t, r, reasonOwnerDead)
	_ = cmd.Wait()
}

// TestWindowsScannerDuringPublish: a scanner that opens the new
// lock file without FILE_SHARE_DELETE just before it is renamed into place
// delays the run, never fails it. Before the fix: exit 1.
func TestWindowsScannerDuringPublish(t *testing.T) {
	lock := filepath.Join(lockDir(t), "p.lock")
	r := runCmd(t, helperCmd(t, "gwlock-scanned", "publish", "rw", "300ms", "5s",
		"run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-exit", "7"))
	if r.code != 7 {
		t.Fatalf("exit %d, want the gateway's 7\n%s", r.code, r.stderr)
	}
	mustEvent(t, r.events(), "lock-released")
}

// TestWindowsSweepDuringCreate: another acquisition's sweep of temp files
// holds the lock range of our new temp file at the moment we go to lock it.
// That is a reason to start over with a new file, never an error; before the
// fix the run failed with an error line whose Error method panicked (a
// *PathError with a nil Err): exit 1.
func TestWindowsSweepDuringCreate(t *testing.T) {
	lock := filepath.Join(lockDir(t), "c.lock")
	r := runCmd(t, helperCmd(t, "gwlock-scanned", "lock new", "lock", "2s", "5s",
		"run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-exit", "7"))
	if r.code != 7 || strings.Contains(r.stderr, "PANIC") {
		t.Fatalf("exit %d, want the gateway's 7\n%s", r.code, r.stderr)
	}
	mustEvent(t, r.events(), "lock-released")
}

// TestWindowsErrorsNeverPanic: each error the Windows lock path builds
// prints, whatever the OS gave it: one attempt at a new file whose range a
// sweep holds, and a third party's handle with no OS error to show.
func TestWindowsErrorsNeverPanic(t *testing.T) {
	d := &checkedDir{path: lockDir(t)}
	var sweep windows.Handle
	testHookFileOp = func(op, path string) {
		if op != "lock new" {
			return
		}
		h, err := createFile(path, windows.OPEN_EXISTING)
		if err != nil {
			t.Errorf("open the new temp file as a sweep would: %v", err)
			return
		}
		if ok, err := (&lockFile{h: h}).lockRange(false); !ok {
			t.Errorf("lock the new temp file's range as a sweep would: %v", err)
		}
		sweep = h
	}
	defer func() { testHookFileOp = nil }()
	f, err := createOwnerFileOnce(d, "n.lock")
	windows.CloseHandle(sweep)
	if err == nil {
		f.discard()
		t.Fatal("createOwnerFileOnce succeeded while a sweep held the range")
	}
	if msg := printed(err); !errors.Is(err, errSweptMeanwhile) || strings.Contains(msg, "PANIC") {
		t.Errorf("createOwnerFileOnce with the range held = %s, want errSweptMeanwhile", msg)
	}
	for _, err := range []error{inUse(nil, "held"), inUse(errors.New("not an Errno"), "held"), inUse(windows.ERROR_SHARING_VIOLATION, "held")} {
		if msg := printed(err); strings.Contains(msg, "PANIC") || !errors.Is(err, errFileInUse) {
			t.Errorf("inUse error = %s, want a message matching errFileInUse", msg)
		}
	}
}

// printed is err as the final error line shows it: %v recovers a panic in
// Error and prints it as %!v(PANIC=...).
func printed(err error) string { return fmt.Sprintf("%v", err) }

// TestWindowsScannerOnStaleLock: a dead owner's lock file that a
// scanner holds open with no sharing at all is opened, judged and reclaimed
// once the scanner lets go, within --timeout. Before the fix: exit 1.
func TestWindowsScannerOnStaleLock(t *testing.T) {
	lock := filepath.Join(lockDir(t), "s.lock")
	writeLockFile(t, lock, mustJSON(t, map[string]any{"pid": deadPID(t), "createdAt": "2026-01-01T00:00:00.000Z", "configPath": lock, "flock": true}), 0)
	r := runCmd(t, helperCmd(t, "gwlock-scanned", "open", "none", "300ms", "5s",
		"run", "--lock", lock, "--timeout", "10s", "--", testBinary(t), "helper:gateway"))
	mustRecover(t, r, reasonOwnerDead)
}

// TestWindowsScannerDuringRelease: a scanner that keeps the lock
// file open without FILE_SHARE_DELETE for 1.5 s while gwlock releases it
// delays the release; the run still succeeds. Before the fix release gave up
// after 1 s: exit 1.
func TestWindowsScannerDuringRelease(t *testing.T) {
	lock := filepath.Join(lockDir(t), "r.lock")
	r := runCmd(t, helperCmd(t, "gwlock-scanned", "remove", "rw", "1500ms", "5s",
		"run", "--lock", lock, "--", testBinary(t), "helper:gateway"))
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\n%s", r.code, r.stderr)
	}
	mustEvent(t, r.events(), "lock-released")
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Fatalf("lock file left behind: %v", err)
	}
}

// TestWindowsScannerOutlastsRelease: a scanner that keeps the lock
// file open past the release bound makes gwlock report the failure (exit 1,
// no lock-released), never success; its kernel lock is dropped all the same,
// so the next starter reclaims the file at once (owner-dead).
func TestWindowsScannerOutlastsRelease(t *testing.T) {
	lock := filepath.Join(lockDir(t), "o.lock")
	r := runCmd(t, helperCmd(t, "gwlock-scanned", "remove", "rw", "1500ms", "200ms",
		"run", "--lock", lock, "--", testBinary(t), "helper:gateway"))
	if r.code != exitFailure || !strings.Contains(r.stderr, "gwlock: remove lock "+lock) {
		t.Fatalf("exit %d, want %d with a line naming the lock\n%s", r.code, exitFailure, r.stderr)
	}
	if len(findEvents(r.events(), "lock-released")) != 0 {
		t.Fatalf("lock-released reported for a lock file still at its path:\n%s", r.stderr)
	}
	r = runGwlock(t, nil, "run", "--lock", lock, "--timeout", "10s", "--", testBinary(t), "helper:gateway")
	mustRecover(t, r, reasonOwnerDead)
}

// TestWindowsLockPathReplaced: an inherited
// GWLOCK_LOCK_PATH, in any letter case (Windows names ignore it), is
// replaced, not duplicated: the gateway reads the lock it runs under. Before,
// the gateway's environment held both and GetEnvironmentVariable found the
// inherited one first.
func TestWindowsLockPathReplaced(t *testing.T) {
	dir := lockDir(t)
	lock, envfile := filepath.Join(dir, "v.lock"), filepath.Join(dir, "env")
	r := runGwlock(t, []string{`gwlock_lock_path=C:\stale.lock`}, "run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-envfile", envfile)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if got := strings.TrimSpace(string(waitFile(t, envfile))); got != lock {
		t.Fatalf("gateway's GWLOCK_LOCK_PATH = %q, want %q", got, lock)
	}
}
