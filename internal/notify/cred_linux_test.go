package notify

import (
	"os"
	"testing"
)

// On Linux every datagram is put to admit with its sender as the kernel
// names it, and one admit refuses is not delivered.
func TestAdmitSeesSender(t *testing.T) {
	path := t.TempDir() + "/a.notify"
	peers := make(chan Peer, 4)
	l, err := Listen(path, func() { os.Remove(path) }, func(p Peer) bool {
		peers <- p
		return len(peers) > 1
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mustSend(t, path, "STATUS=refused")
	mustSend(t, path, "STATUS=admitted")
	if got := mustNote(t, l); got != "STATUS=admitted" {
		t.Errorf("first note = %q, want the admitted one", got)
	}
	if p := <-peers; p.PID != os.Getpid() || p.UID != os.Geteuid() {
		t.Errorf("sender = %+v, want pid %d uid %d", p, os.Getpid(), os.Geteuid())
	}
}
