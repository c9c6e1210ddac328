package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestTagged(t *testing.T) {
	token := "tok" + strconv.Itoa(os.Getpid())
	ours := []int{os.Getuid()}
	// An error may come with 0: a process of our uid with more privilege
	// (PID 1 of some containers) cannot be read, and then nobody can say
	// it does not carry the token.
	if pid, err := Tagged(token, ours, ""); pid != 0 {
		t.Fatalf("Tagged before any carrier = %d, %v; want 0", pid, err)
	}
	h := mustStart(t, func(c *exec.Cmd) { c.Env = append(c.Env, TokenVar+"="+token) })
	for range 2 { // the second call is answered from the remembered pid
		if pid, err := Tagged(token, ours, ""); pid != h.pid() || err != nil {
			t.Fatalf("Tagged = %d, %v; want %d", pid, err, h.pid())
		}
	}
	if pid, err := Tagged(token, []int{os.Getuid() + 1}, ""); pid != 0 {
		t.Fatalf("Tagged for another uid = %d, %v; want 0", pid, err)
	}
	h.stop()
	if pid, err := Tagged(token, ours, ""); pid != 0 {
		t.Fatalf("Tagged after the carrier exited = %d, %v; want 0", pid, err)
	}
}

// TestTaggedPassesOverOlder: a carrier that started before the bound (the
// launcher that handed the token out) is none of its tree, and is not
// found; the same carrier under an older bound is.
func TestTaggedPassesOverOlder(t *testing.T) {
	token := "old" + strconv.Itoa(os.Getpid())
	ours := []int{os.Getuid()}
	carrier := mustStart(t, func(c *exec.Cmd) { c.Env = append(c.Env, TokenVar+"="+token) })
	self, err := StartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A bound in a later clock tick than the carrier's start.
	var later string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		h := mustStart(t, nil)
		st, err := StartTime(h.pid())
		h.stop()
		carried, _ := StartTime(carrier.pid())
		if err == nil && st != carried {
			later = st
			break
		}
	}
	if later == "" {
		t.Fatal("no process started in a later clock tick than the carrier")
	}
	if pid, err := Tagged(token, ours, later); pid != 0 || err != nil {
		t.Errorf("Tagged(bound after the carrier) = %d, %v; want 0, nil", pid, err)
	}
	if pid, err := Tagged(token, ours, self); pid != carrier.pid() || err != nil {
		t.Errorf("Tagged(bound before the carrier) = %d, %v; want %d", pid, err, carrier.pid())
	}
}

func TestDescendants(t *testing.T) {
	h := mustStart(t, nil)
	got, err := Descendants()
	if err != nil || !slices.Contains(got, h.pid()) {
		t.Fatalf("Descendants = %v, %v; want %d among them", got, err, h.pid())
	}
	h.stop()
	if got, _ := Descendants(); slices.Contains(got, h.pid()) {
		t.Fatalf("Descendants = %v after %d exited", got, h.pid())
	}
}

func TestGroupAlive(t *testing.T) {
	sid, err := SessionID()
	if err != nil {
		t.Fatal(err)
	}
	h := mustStart(t, func(c *exec.Cmd) { c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} })
	if alive, err := GroupAlive(h.pid(), sid); !alive || err != nil {
		t.Errorf("GroupAlive(member's group, our session) = %v, %v; want true", alive, err)
	}
	if alive, err := GroupAlive(h.pid(), sid+1); alive || err != nil {
		t.Errorf("GroupAlive(another session) = %v, %v; want false", alive, err)
	}
	h.stop()
	if alive, err := GroupAlive(h.pid(), sid); alive || err != nil {
		t.Errorf("GroupAlive(emptied group) = %v, %v; want false", alive, err)
	}
}

// TestSurvivor: one pass finds a live member of a recorded group in our
// session (naming the group) and a token carrier (naming it), and nothing
// once both are gone or when the session is another.
func TestSurvivor(t *testing.T) {
	sid, err := SessionID()
	if err != nil {
		t.Fatal(err)
	}
	token := "surv" + strconv.Itoa(os.Getpid())
	ours := []int{os.Getuid()}
	member := mustStart(t, func(c *exec.Cmd) { c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} })
	carrier := mustStart(t, func(c *exec.Cmd) { c.Env = append(c.Env, TokenVar+"="+token) })
	if got, err := Survivor(TreeQuery{Groups: []int{member.pid()}, Session: sid}); got != member.pid() || err != nil {
		t.Errorf("Survivor(member's group) = %d, %v; want %d", got, err, member.pid())
	}
	if got, err := Survivor(TreeQuery{Groups: []int{member.pid()}, Session: sid + 1}); got != 0 || err != nil {
		t.Errorf("Survivor(group, another session) = %d, %v; want 0", got, err)
	}
	if got, err := Survivor(TreeQuery{Token: token, UIDs: ours}); got != carrier.pid() || err != nil {
		t.Errorf("Survivor(token) = %d, %v; want %d", got, err, carrier.pid())
	}
	member.stop()
	if got, err := Survivor(TreeQuery{Groups: []int{member.pid()}, Session: sid, Token: token, UIDs: ours}); got != carrier.pid() || err != nil {
		t.Errorf("Survivor(emptied group, token) = %d, %v; want the carrier %d", got, err, carrier.pid())
	}
	carrier.stop()
	// Born after us: PID 1 of a container, which we may not read, is
	// passed over as older than the tree.
	self, _ := StartTime(os.Getpid())
	if got, err := Survivor(TreeQuery{Groups: []int{member.pid()}, Session: sid, Token: token, UIDs: ours, BornAfter: self}); got != 0 || err != nil {
		t.Errorf("Survivor(all gone) = %d, %v; want 0, nil", got, err)
	}
	if got, err := Survivor(TreeQuery{}); got != 0 || err != nil {
		t.Errorf("Survivor(nothing asked) = %d, %v; want 0, nil", got, err)
	}
}

// TestFlockHoldersAndCreator: a child that inherited our locked descriptor
// is a holder; the kernel names us as the lock's creator.
func TestFlockHoldersAndCreator(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	dev, ino := uint64(st.Dev), uint64(st.Ino)
	if pid, err := FlockCreator(dev, ino); pid != 0 || err != nil {
		t.Fatalf("FlockCreator(unlocked) = %d, %v; want 0, nil", pid, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	h := mustStart(t, func(c *exec.Cmd) { c.ExtraFiles = []*os.File{f} })
	if pid, err := FlockCreator(dev, ino); pid != os.Getpid() || err != nil {
		t.Errorf("FlockCreator = %d, %v; want us, %d", pid, err, os.Getpid())
	}
	if got, err := FlockHolders(dev, ino, "x.lock"); !slices.Contains(got, h.pid()) || slices.Contains(got, os.Getpid()) || err != nil {
		t.Errorf("FlockHolders = %v, %v; want %d and not us", got, err, h.pid())
	}
}

func TestHostIdentity(t *testing.T) {
	if id, err := BootID(); id == "" || err != nil {
		t.Errorf("BootID = %q, %v", id, err)
	}
	if ns, err := PIDNamespace(); ns == "" || err != nil {
		t.Errorf("PIDNamespace = %q, %v", ns, err)
	}
}

func TestUIDAndStopped(t *testing.T) {
	if got, err := UID(os.Getpid()); got != os.Getuid() || err != nil {
		t.Errorf("UID(self) = %d, %v; want %d", got, err, os.Getuid())
	}
	h := mustStart(t, nil)
	if st, err := Stopped(h.pid()); st || err != nil {
		t.Errorf("Stopped(running) = %v, %v; want false", st, err)
	}
	if err := syscall.Kill(h.pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(h.pid(), syscall.SIGCONT)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if st, err := Stopped(h.pid()); st && err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("Stopped(stopped) = %v, %v; want true", st, err)
		}
	}
	if _, err := Stopped(deadPID(t)); err == nil {
		t.Error("Stopped(dead) gave no error")
	}
}
