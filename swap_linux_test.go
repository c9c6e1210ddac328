package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() { helpers["swapper"] = helperSwapper }

// helperSwapper PARENT NAME TARGET is an attacker who swaps the lock dir for
// a symlink while gwlock works in it. It can write PARENT; it plants PARENT/.evil, a symlink to TARGET, watches
// PARENT and, the moment anything opens the directory NAME there (gwlock's
// check), exchanges NAME and .evil in one renameat2(RENAME_EXCHANGE): from
// then on NAME leads to TARGET. It prints "armed" once watching, then
// "swapped"; it waits at most helperDeadline.
func helperSwapper(args []string) int {
	parent, name, target := args[0], args[1], args[2]
	if err := os.Symlink(target, filepath.Join(parent, ".evil")); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err == nil {
		_, err = unix.InotifyAddWatch(in, parent, unix.IN_OPEN|unix.IN_ONLYDIR)
	}
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("armed")
	for _, ev := range readInotify(in) {
		if ev.name == name && ev.mask&unix.IN_ISDIR != 0 {
			if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(parent, ".evil"), unix.AT_FDCWD, filepath.Join(parent, name), unix.RENAME_EXCHANGE); err != nil {
				fmt.Println("ERROR", err)
				return 1
			}
			fmt.Println("swapped")
			return 0
		}
	}
	return 1
}

type inotifyEvent struct {
	mask uint32
	name string
}

// readInotify reads one batch of events from a blocking inotify descriptor,
// or what is queued from a non-blocking one (nothing: no events).
func readInotify(fd int) []inotifyEvent {
	buf := make([]byte, 64<<10)
	var out []inotifyEvent
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if n <= 0 {
			return out
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(raw.Len)]
			out = append(out, inotifyEvent{mask: raw.Mask, name: string(bytes.TrimRight(name, "\x00"))})
			off += unix.SizeofInotifyEvent + int(raw.Len)
		}
		return out
	}
}

// TestSwappedLockDirRedirectsNothing: root's
// lock dir sits in a directory that another user (nobody) can write. Driven
// by inotify, nobody swaps the lock dir for a symlink to its own directory
// the instant gwlock opens it for the check, so everything gwlock does after
// the check (create, link, judge, release) would land in nobody's directory
// if it walked the path again. Over many attempts, nothing may ever be
// created, linked, renamed or deleted there. SWAP_ATTEMPTS sets the count.
func TestSwappedLockDirRedirectsNothing(t *testing.T) {
	requireRoot(t)
	attempts := 200
	if v, err := strconv.Atoi(os.Getenv("SWAP_ATTEMPTS")); err == nil && v > 0 {
		attempts = v
	}
	base, err := os.MkdirTemp("", "gwlock-test-swap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	mustChmod(t, base, 0o755)
	attacker := filepath.Join(base, "attacker")
	if err := os.Mkdir(attacker, 0o755); err != nil {
		t.Fatal(err)
	}
	mustChown(t, attacker, nobody)
	cfg := filepath.Join(base, "gw.json")
	writeLockFile(t, cfg, []byte("{}"), 0)
	race := &swapRace{base: base, attacker: attacker, cfg: cfg, exe: sharedTestBinary(t),
		watch: mustWatchTouches(t, attacker), outcomes: map[string]int{}}
	defer unix.Close(race.watch)
	for i := 0; i < attempts; i++ {
		race.attempt(t, i)
	}
	race.report(t, attempts)
}

// mustWatchTouches watches dir for anything created, removed, renamed or
// written in it.
func mustWatchTouches(t *testing.T, dir string) int {
	watch, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	const touched = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_ATTRIB | unix.IN_MODIFY | unix.IN_CLOSE_WRITE
	if _, err := unix.InotifyAddWatch(watch, dir, touched); err != nil {
		unix.Close(watch)
		t.Fatal(err)
	}
	return watch
}

// swapRace is TestSwappedLockDirRedirectsNothing's attempts and what they
// did to the attacker's directory.
type swapRace struct {
	base, attacker, cfg, exe string
	watch                    int
	outcomes                 map[string]int
	intrusions               []string
	intruded                 int // attempts that changed the attacker's dir
}

// attempt runs gwlock once against a lock dir the swapper is armed to swap.
func (race *swapRace) attempt(t *testing.T, i int) {
	parent := filepath.Join(race.base, "p"+strconv.Itoa(i))
	dir := filepath.Join(parent, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	mustChown(t, parent, nobody) // nobody can write the lock dir's parent
	swapper := asUser(t, helperCmd(t, "swapper", parent, "locks", race.attacker), nobody, race.exe)
	out, err := swapper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := swapper.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "armed" {
		_ = swapper.Process.Kill()
		t.Fatalf("swapper did not arm: %q", lines.Text())
	}
	r := runGwlock(t, nil, "run", "--lock-dir", dir, "--config", race.cfg, "--", "true")
	_ = swapper.Process.Kill() // if it never saw the open
	swapped := lines.Scan() && lines.Text() == "swapped"
	_ = swapper.Wait()
	outcome := fmt.Sprintf("swapped=%t exit=%d", swapped, r.code)
	race.outcomes[outcome]++
	if r.code != 0 && race.outcomes[outcome] == 1 {
		t.Logf("attempt %d: %s\n%s", i, outcome, r.stderr)
	}
	evs := readInotify(race.watch)
	for _, ev := range evs {
		race.intrusions = append(race.intrusions, fmt.Sprintf("attempt %d (%s): %#x on %q", i, outcome, ev.mask, ev.name))
	}
	if len(evs) > 0 {
		race.intruded++
	}
}

// report fails if anything landed in the attacker's directory, or if the
// swap happened too rarely for the race to have been run.
func (race *swapRace) report(t *testing.T, attempts int) {
	var summary []string
	swapped := 0
	for k, v := range race.outcomes {
		summary = append(summary, fmt.Sprintf("%s: %d", k, v))
		if strings.HasPrefix(k, "swapped=true") {
			swapped += v
		}
	}
	sort.Strings(summary)
	t.Logf("%d attempts; %s; %d attempts changed the attacker's dir (%d inotify events)", attempts, strings.Join(summary, ", "), race.intruded, len(race.intrusions))
	if ents, _ := os.ReadDir(race.attacker); len(ents) != 0 || len(race.intrusions) != 0 {
		shown := race.intrusions
		if len(shown) > 10 {
			shown = shown[:10]
		}
		t.Fatalf("gwlock created, linked or deleted in the attacker's dir (%d entries left):\n%s", len(ents), strings.Join(shown, "\n"))
	}
	if swapped < attempts/2 {
		t.Fatalf("the swap happened in %d of %d attempts; the race was not run", swapped, attempts)
	}
}
