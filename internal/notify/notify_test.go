//go:build unix

package notify

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// noteWait bounds the wait for a datagram to come through a socket.
const noteWait = 10 * time.Second

// mustListen binds a Listener in a fresh directory and says whether remove ran.
func mustListen(t *testing.T) (*Listener, string, *bool) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "n.notify")
	removed := new(bool)
	l, err := Listen(path, func() { *removed = true; os.Remove(path) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l, path, removed
}

func mustSend(t *testing.T, path, datagram string) {
	t.Helper()
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(datagram)); err != nil {
		t.Fatal(err)
	}
}

func mustNote(t *testing.T, l *Listener) string {
	t.Helper()
	select {
	case n := <-l.Notes():
		return n
	case <-time.After(noteWait):
		t.Fatal("no note")
	}
	return ""
}

func TestListenerSplitsLines(t *testing.T) {
	l, path, _ := mustListen(t)
	mustSend(t, path, "READY=1\nSTATUS=up\n\n")
	for _, want := range []string{"READY=1", "STATUS=up"} {
		if got := mustNote(t, l); got != want {
			t.Fatalf("note = %q, want %q", got, want)
		}
	}
}

// A datagram longer than the buffer is dropped whole; the next one counts.
func TestListenerDropsTruncated(t *testing.T) {
	l, path, _ := mustListen(t)
	mustSend(t, path, "READY=1\n"+strings.Repeat("x", maxDatagram))
	mustSend(t, path, "STATUS=after")
	if got := mustNote(t, l); got != "STATUS=after" {
		t.Fatalf("note = %q, want STATUS=after (the cut datagram dropped)", got)
	}
}

func TestListenerDrainAndClose(t *testing.T) {
	l, path, removed := mustListen(t)
	mustSend(t, path, "READY=1")
	deadline := time.Now().Add(noteWait)
	for len(l.notes) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	l.Drain()
	if n := len(l.notes); n != 0 {
		t.Fatalf("after Drain, %d notes left", n)
	}
	l.Close()
	if !*removed {
		t.Fatal("Close did not remove the socket's name")
	}
	var nilListener *Listener
	nilListener.Close()
}

// A failed bind removes the name at once: nothing is left behind.
func TestListenRemovesOnFailure(t *testing.T) {
	removed := false
	if _, err := Listen(filepath.Join(t.TempDir(), "missing", "n.notify"), func() { removed = true }, nil); err == nil {
		t.Fatal("Listen in a missing directory succeeded")
	}
	if !removed {
		t.Fatal("a failed Listen did not call remove")
	}
}

func TestSenderDelivers(t *testing.T) {
	l, path, _ := mustListen(t)
	s := NewSender(path)
	s.Send("READY=1")
	s.Send("STATUS=two")
	for _, want := range []string{"READY=1", "STATUS=two"} {
		if got := mustNote(t, l); got != want {
			t.Fatalf("note = %q, want %q", got, want)
		}
	}
}

// Send never blocks: with nobody reading, or no usable address, the caller
// goes on at once.
func TestSenderNeverBlocks(t *testing.T) {
	for _, addr := range []string{"", "relative", filepath.Join(t.TempDir(), "nobody")} {
		s := NewSender(addr)
		done := make(chan struct{})
		go func() {
			for i := 0; i < 1000; i++ {
				s.Send("STATUS=x")
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(noteWait):
			t.Fatalf("Send to %q blocked", addr)
		}
	}
}

// The socket is 0600 from the moment its name exists, whatever the umask,
// and a name already at the path is never replaced.
func TestListenPrivateWhateverUmask(t *testing.T) {
	old := syscall.Umask(0)
	l, path, _ := mustListen(t)
	syscall.Umask(old)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode under umask 000 = %v, want a socket of mode 0600", fi.Mode())
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("Listen left %d names beside the socket, want none", len(ents)-1)
	}
	removed := false
	if _, err := Listen(path, func() { removed = true }, nil); !errors.Is(err, fs.ErrExist) || removed {
		t.Errorf("Listen over an existing name = %v (remove called: %v), want fs.ErrExist and the name left alone", err, removed)
	}
	mustSend(t, path, "READY=1")
	if got := mustNote(t, l); got != "READY=1" {
		t.Errorf("note = %q after a refused second Listen, want READY=1", got)
	}
}
