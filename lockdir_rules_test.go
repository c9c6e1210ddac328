package main

import (
	"errors"
	"strings"
	"testing"
)

// The lock dir rules are pure: they are tested here on every OS, whatever
// the OS files that apply them.

const ruleTestUID = 1000

func ruleWhy(err error) string {
	var unsafe *unsafeError
	if !errors.As(err, &unsafe) {
		return ""
	}
	return unsafe.Why + " | " + unsafe.Hint
}

func TestDefaultDirRefusal(t *testing.T) {
	for _, tc := range []struct {
		found dirEntry
		want  string // "" for no refusal
	}{
		{dirEntry{kind: kindDir, uid: ruleTestUID, mode: 0o700}, ""},
		{dirEntry{kind: kindDir, uid: ruleTestUID, mode: 0o777}, ""}, // tightened, not refused
		{dirEntry{kind: kindDir, uid: 0, mode: 0o700}, "is owned by uid 0, not by us (uid 1000): another user created it | remove it, or pass --lock-dir"},
		{dirEntry{kind: kindSymlink, uid: ruleTestUID, target: "/home/me/x", targetRead: true}, "is a symlink to /home/me/x owned by uid 1000; the default lock dir must be a real directory"},
		{dirEntry{kind: "FIFO", uid: 65534}, "is a FIFO owned by uid 65534, not a directory | remove it, or pass --lock-dir"},
	} {
		got := ruleWhy(defaultDirRefusal("/tmp/gwlock-1000", tc.found, ruleTestUID))
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("defaultDirRefusal(%+v) = %q, want %q", tc.found, got, tc.want)
		}
	}
}

func TestExplicitDirRefusal(t *testing.T) {
	for _, tc := range []struct {
		dir  dirEntry
		want string
	}{
		{dirEntry{kind: kindDir, uid: ruleTestUID, mode: 0o755}, ""},
		{dirEntry{kind: kindDir, uid: 0, mode: 0o1777}, ""},
		{dirEntry{kind: kindDir, uid: 0, mode: 0o777}, "is writable by others (mode 0777) without the sticky bit | chmod go-w"},
		{dirEntry{kind: kindDir, uid: 65534, mode: 0o700}, "is owned by uid 65534, neither us (uid 1000) nor root | use a directory you own"},
	} {
		got := ruleWhy(explicitDirRefusal("/srv/locks", tc.dir, ruleTestUID))
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("explicitDirRefusal(%+v) = %q, want %q", tc.dir, got, tc.want)
		}
	}
}

func TestLinkRefusal(t *testing.T) {
	trusted := dirEntry{path: "/var", kind: kindDir, uid: 0, mode: 0o755}
	loose := dirEntry{path: "/tmp", kind: kindDir, uid: 0, mode: 0o1777}
	foreign := dirEntry{path: "/home/x", kind: kindDir, uid: 65534, mode: 0o755}
	link := func(uid uint32, read bool) dirEntry {
		return dirEntry{path: "/var/run", kind: kindSymlink, uid: uid, target: "/run", targetRead: read}
	}
	for _, tc := range []struct {
		path     string
		link     dirEntry
		dir      *dirEntry
		followed int
		want     string
	}{
		{"/var/run/gwlock", link(0, true), &trusted, 0, ""},
		{"/var/run/gwlock", link(ruleTestUID, true), &trusted, 0, ""},
		{"/var/run", link(0, false), &trusted, 0, "is a symlink to /run owned by uid 0; its target cannot be read | name the real directory"},
		{"/var/run/gwlock", link(65534, true), &trusted, 0, "goes through /var/run, which is a symlink to /run owned by uid 65534; gwlock follows only symlinks owned by root or us"},
		{"/var/run/gwlock", link(0, true), nil, 0, "its directory cannot be checked"},
		{"/var/run/gwlock", link(0, true), &foreign, 0, "its directory /home/x is owned by uid 65534, who could change it"},
		{"/var/run/gwlock", link(0, true), &loose, 0, "its directory /tmp can be written by others (mode 1777), who could replace it"},
		{"/var/run/gwlock", link(0, true), &trusted, maxSymlinks, "more than 40 symlinks"},
	} {
		got := ruleWhy(linkRefusal(tc.path, tc.link, tc.dir, tc.followed, ruleTestUID))
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("linkRefusal(%s, %+v, %v, %d) = %q, want %q", tc.path, tc.link, tc.dir, tc.followed, got, tc.want)
		}
	}
}
