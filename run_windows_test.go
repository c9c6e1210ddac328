package main

import (
	"errors"
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
