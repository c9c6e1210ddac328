package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// crowdSize is how many processes startCrowd adds to the host: more than
// scanAllocsMax, so a scan that allocates anything per process exceeds it.
const crowdSize = 64

// scanAllocsMax bounds what one scan of the whole process table allocates:
// its answer and its error, never anything per process.
const scanAllocsMax = 8

// startCrowd starts n processes that are not ours (their parent exits at
// once), in a process group of their own that the test kills at the end.
func startCrowd(t *testing.T, n int, env ...string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt `+strconv.Itoa(n)+` ]; do sleep 600 & i=$((i+1)); done`)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL) })
}

// TestScansAllocateNothingPerProcess: a launcher scans the process table on
// a schedule for as long as its gateway runs, so what a scan allocates must
// not grow with the number of processes on the host, or its garbage grows
// the launcher's memory with the host. With crowdSize processes added, each
// scan of the table (Descendants, GroupAlive, FlockHolders, Tagged) stays
// under scanAllocsMax allocations. Fails with a scan that makes anything
// per process: a listing of names, a path, a file buffer, the fields of a
// stat line (hundreds per scan).
func TestScansAllocateNothingPerProcess(t *testing.T) {
	startCrowd(t, crowdSize)
	sid, err := SessionID()
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.Create(filepath.Join(t.TempDir(), "scan.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	var st unix.Stat_t
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(int(lock.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	token := "absent" + strconv.Itoa(os.Getpid())
	for _, scan := range []struct {
		name string
		run  func()
	}{
		{"Descendants", func() { _, _ = Descendants() }},
		// Our own group in another session: a member exists, so the whole
		// table is read and none matches.
		{"GroupAlive", func() { _, _ = GroupAlive(unix.Getpgrp(), sid+1) }},
		{"FlockHolders", func() { _, _ = FlockHolders(st.Dev, st.Ino, "scan.lock") }},
		{"Tagged", func() { _, _ = Tagged(token, []int{os.Getuid()}, "") }},
	} {
		if got := testing.AllocsPerRun(10, scan.run); got > scanAllocsMax {
			t.Errorf("%s with %d more processes on the host: %.0f allocations per scan, want at most %d", scan.name, crowdSize, got, scanAllocsMax)
		}
	}
}

// TestScanKeepsNoLargeBuffer: what a scan keeps for the next one is
// bounded, whatever the largest file it read. A crowd whose environment is
// larger than keepMax is searched for a token; afterwards the kept
// environment buffer is no larger than keepMax. Fails if the buffer that
// held the largest environment on the host stays for the launcher's life.
func TestScanKeepsNoLargeBuffer(t *testing.T) {
	// One string of an environment may not exceed 128 KiB (MAX_ARG_STRLEN).
	bulk := strings.Repeat("x", keepMax/2)
	startCrowd(t, 2, "GWLOCK_TEST_BULK1="+bulk, "GWLOCK_TEST_BULK2="+bulk, "GWLOCK_TEST_BULK3="+bulk)
	token := "absent" + strconv.Itoa(os.Getpid())
	if _, err := Tagged(token, []int{os.Getuid()}, ""); err != nil {
		t.Logf("Tagged: %v", err)
	}
	scanLock.Lock()
	defer scanLock.Unlock()
	if got := cap(scan.env); got > keepMax {
		t.Errorf("after a search that read a %d-byte environment, %d bytes kept, want at most %d", 3*len(bulk), got, keepMax)
	}
	scan.links = make([]procLink, 0, keepMax)
	scan.trim()
	if scan.links != nil {
		t.Errorf("trim kept a table of %d links", cap(scan.links))
	}
}
