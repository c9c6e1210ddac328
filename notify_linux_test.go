package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func init() { helpers["notifysend"] = helperNotifySend }

// helperNotifySend sends each STATE as one datagram to $NOTIFY_SOCKET and
// prints "sent" or the error: "helper:notifysend [-after FILE] [-depth N]
// [-stay] STATE...". -after waits for FILE to exist first; -depth N sends
// from the Nth generation of its own children; -stay then waits to be
// killed, so the sender is alive when gwlock reads what it sent.
func helperNotifySend(args []string) int {
	set := flag.NewFlagSet("notifysend", flag.ContinueOnError)
	after := set.String("after", "", "wait for this file first")
	depth := set.Int("depth", 0, "send from this generation of children")
	stay := set.Bool("stay", false, "wait to be killed after sending")
	if set.Parse(args) != nil {
		return 2
	}
	for *after != "" {
		if _, err := os.Stat(*after); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if *depth > 0 {
		exe, _ := os.Executable()
		child := exec.Command(exe, append([]string{"helper:notifysend", "-depth", strconv.Itoa(*depth - 1), "-stay=" + strconv.FormatBool(*stay)}, set.Args()...)...)
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		_ = child.Run()
		return 0
	}
	for _, state := range set.Args() {
		c, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
		if err == nil {
			_, err = c.Write([]byte(state))
			c.Close()
		}
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
	}
	fmt.Println("sent")
	if *stay {
		time.Sleep(time.Hour)
	}
	return 0
}

// otherUID is a uid that is not ours: nobody's, made with useradd if this
// system has no such user.
func otherUID(t *testing.T) int {
	t.Helper()
	requireRoot(t)
	u, err := user.Lookup("nobody")
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "nobody").CombinedOutput(); err != nil {
			t.Fatalf("useradd nobody: %v: %s", err, out)
		}
		if u, err = user.Lookup("nobody"); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	return uid
}

// sharedStickyDir is a directory every user may write to, sticky, as /tmp,
// under a parent every user may enter.
func sharedStickyDir(t *testing.T) (parent, shared string) {
	parent = lockDir(t)
	mustChmod(t, parent, 0o755)
	shared = filepath.Join(parent, "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	mustChmod(t, shared, 0o777|os.ModeSticky)
	return parent, shared
}

// TestNotifyRelayHearsOnlyTheTree: with umask 000 and the lock in a shared
// sticky directory, the relay socket is still 0600; another user cannot
// write to it, and a process of gwlock's own uid outside the gateway's tree
// can but is not heard: neither its READY=1 nor its STATUS= is logged or
// relayed. The gateway's grandchild is heard. Fails with the socket taking
// the umask (the other user's datagrams come first) or without the check of
// the sender (the outsider's do).
func TestNotifyRelayHearsOnlyTheTree(t *testing.T) {
	other := otherUID(t)
	exe := sharedTestBinary(t)
	parent, shared := sharedStickyDir(t)
	sock, conn := listenNotify(t, parent)
	lock, gate := filepath.Join(shared, "n.lock"), filepath.Join(parent, "go")
	relay := lock + notifySuffix
	old := syscall.Umask(0) // gwlock inherits it
	g := startHelper(t, "gwlock", []string{"NOTIFY_SOCKET=" + sock}, "run", "--lock", lock, "--ready-notify",
		"--", testBinary(t), "helper:notifysend", "-after", gate, "-depth", "2", "-stay", "STATUS=tree", "READY=1")
	syscall.Umask(old)
	g.waitEvent(t, "child-start")
	fi, err := os.Lstat(relay)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("relay socket %s: mode %v under umask 000, want a socket of mode 0600", relay, fi.Mode())
	}

	intruder := asUser(t, helperCmd(t, "notifysend", "STATUS=forged by another user", "READY=1"), other, exe)
	intruder.Env = append(intruder.Env, "NOTIFY_SOCKET="+relay)
	out, _ := intruder.Output()
	t.Logf("another user's send: %s", strings.TrimSpace(string(out)))
	outsider := helperCmd(t, "notifysend", "-stay", "STATUS=forged by an outsider", "READY=1")
	outsider.Env = append(outsider.Env, "NOTIFY_SOCKET="+relay)
	mustSent(t, outsider)

	// Datagrams on one socket are read in order: the forged ones are in
	// before the tree sends.
	writeLockFile(t, gate, nil, 0)
	if ev := g.waitEvent(t, "gateway-ready"); ev["by"] != "notify" {
		t.Errorf("gateway-ready by = %q, want notify", ev["by"])
	}
	got := []string{readNotify(t, conn), readNotify(t, conn)}
	want := []string{"STATUS=tree", "READY=1\nMAINPID=" + strconv.Itoa(g.cmd.Process.Pid)}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("systemd got %q, want only the tree's %q", got, want)
	}
	g.signal(t, syscall.SIGTERM)
	_, stderr := g.wait(t)
	if strings.Count(stderr, "event=gateway-ready ") != 1 || strings.Contains(stderr, "forged") {
		t.Errorf("gwlock heard a sender outside the tree:\n%s", stderr)
	}
}

// mustSent starts cmd, a notifysend helper, and waits for its "sent"; it is
// killed when the test ends.
func mustSent(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "sent\n" {
		t.Fatalf("%v: %q, want sent", cmd.Args, line)
	}
}

// TestNotifySocketSquatted: a name squatted at the relay socket's path
// (another user's socket or file, or any file that is not a socket) is
// refused as a squatted lock is: exit 77 naming the path and the squatter,
// the squatter left in place, no gateway started; with --ready-notify, and
// with only systemd's NOTIFY_SOCKET to relay to. Fails with exit 1
// "operation not permitted" when the refusal is not made.
func TestNotifySocketSquatted(t *testing.T) {
	other := otherUID(t)
	parent, shared := sharedStickyDir(t)
	sock, _ := listenNotify(t, parent)
	squatters := []struct {
		name, why string
		make      func(path string) error
	}{
		{"another user's socket", "owned by uid " + strconv.Itoa(other), func(path string) error {
			c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
			if err != nil {
				return err
			}
			c.Close()
			return os.Chown(path, other, other)
		}},
		{"another user's file", "owned by uid " + strconv.Itoa(other), func(path string) error {
			if err := os.WriteFile(path, nil, 0o666); err != nil {
				return err
			}
			return os.Chown(path, other, other)
		}},
		{"a file of ours", "not a socket", func(path string) error { return os.WriteFile(path, nil, 0o600) }},
	}
	for i, sq := range squatters {
		for _, mode := range [][]string{{"--ready-notify"}, nil} {
			lock := filepath.Join(shared, "s"+strconv.Itoa(i)+strconv.Itoa(len(mode))+".lock")
			relay, pidfile := lock+notifySuffix, lock+".pid"
			if err := sq.make(relay); err != nil {
				t.Fatal(err)
			}
			args := append(append([]string{"run", "--lock", lock}, mode...), "--", testBinary(t), "helper:gateway", "-pidfile", pidfile)
			r := runGwlock(t, []string{"NOTIFY_SOCKET=" + sock}, args...)
			if r.code != exitUnsafe || !strings.Contains(r.stderr, "gwlock: notify socket "+relay+": ") || !strings.Contains(r.stderr, sq.why) {
				t.Errorf("%s %v: exit %d %q, want %d naming %s and %q", sq.name, mode, r.code, r.stderr, exitUnsafe, relay, sq.why)
			}
			if _, err := os.Lstat(relay); err != nil {
				t.Errorf("%s: the squatter was removed: %v", sq.name, err)
			}
			if _, err := os.Stat(pidfile); err == nil {
				t.Errorf("%s: a gateway started beside a squatted notify socket", sq.name)
			}
		}
	}
}
