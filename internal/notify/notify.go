// Package notify speaks systemd's readiness protocol (sd_notify(3)) on both
// sides of a supervisor: a Listener is the NOTIFY_SOCKET a supervised program is
// given, a Sender passes the supervisor's own state up to its service
// manager.
//
// Contract:
//
//   - Listen binds a datagram socket at a path the caller chose and made
//     safe; Close unbinds it and calls the caller's remove. The socket is
//     private to this process's uid (mode 0600) from the moment its name
//     exists, whatever the umask: it is bound inside a new 0700 directory
//     beside the path, set to 0600 there, and only then linked to the path.
//     A name that appears at the path meanwhile is never replaced: Listen
//     fails with an error matching fs.ErrExist.
//   - The Listener reads datagrams in a goroutine of its own and delivers
//     the non-empty lines of those it admits, in order, on Notes. A datagram
//     cut to fit the buffer is dropped whole, as systemd drops it: its lines
//     are not what was sent.
//   - Who may speak: on Linux the kernel names each datagram's sender
//     (SO_PASSCRED, SCM_CREDENTIALS: its pid and uid when it sent), and a
//     datagram counts only if the caller's admit says yes for that Peer; one
//     the kernel does not vouch for never counts. Elsewhere no sender is
//     named for a datagram (macOS has no such message; FreeBSD's LOCAL_CREDS
//     gives no pid), admit is not asked, and the socket's mode is the only
//     check: any process of this uid, or root, can speak for the program.
//   - Classify says what a line is for a supervisor: READY=1 is the
//     program's readiness, STATUS= and EXTEND_TIMEOUT_USEC= pass up as they
//     are, and everything else (MAINPID=, WATCHDOG=, BARRIER=, the file
//     descriptor store) is the supervisor's own business and is dropped.
//     Descriptors a sender attaches (sd_notify_barrier's, FDSTORE=1's) are
//     never taken in: the kernel closes them, which ends a barrier's wait.
//   - Send never blocks and never fails the caller: states go into a bounded
//     queue written by one goroutine with a one-second write deadline each;
//     a service manager that stops reading loses states, never the caller's
//     time. Without a usable address (no NOTIFY_SOCKET, or not a path or an
//     abstract name), and on Windows, it does nothing.
package notify

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Kind is what a line from the program is for its supervisor.
type Kind int

const (
	Drop  Kind = iota // the supervisor's own business: not passed on
	Ready             // READY=1: the program says it serves
	Pass              // passed to the service manager as it is
)

// Classify says what line is for a supervisor.
func Classify(line string) Kind {
	switch {
	case line == "READY=1":
		return Ready
	case strings.HasPrefix(line, "STATUS="), strings.HasPrefix(line, "EXTEND_TIMEOUT_USEC="):
		return Pass
	}
	return Drop
}

// maxDatagram is the largest datagram read whole; systemd's own limit on a
// notification is larger, but no line gwlock relays comes near it.
const maxDatagram = 4096

// Peer is a datagram's sender as the kernel names it: its pid and uid when
// it sent.
type Peer struct{ PID, UID int }

// Listener is the program's NOTIFY_SOCKET, bound while the supervisor runs.
type Listener struct {
	conn   *net.UnixConn
	remove func()
	admit  func(Peer) bool
	notes  chan string
}

// Listen binds bindPath as a datagram socket private to this uid and starts
// reading it; remove, called by Close (or at once if the bind fails),
// deletes the socket's name. admit decides, where the OS names senders,
// whether a datagram counts; nil admits every sender it names.
func Listen(bindPath string, remove func(), admit func(Peer) bool) (*Listener, error) {
	conn, err := bindPrivate(bindPath)
	if err == nil {
		err = passCredentials(conn)
	}
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		if !errors.Is(err, fs.ErrExist) {
			remove() // the name is ours to remove only if we made it
		}
		return nil, err
	}
	if admit == nil {
		admit = func(Peer) bool { return true }
	}
	l := &Listener{conn: conn, remove: remove, admit: admit, notes: make(chan string, 64)}
	go l.read()
	return l, nil
}

// bindPrivate binds the socket under a temporary name in a new directory
// of mode 0700 beside bindPath, makes it 0600, and links it to bindPath.
// bind(2) creates the socket's inode with the mode 0777 less the umask, and
// a umask set around it would be the whole process's, racing every other
// goroutine's files; inside a directory only we can enter, the looser mode
// of that instant reaches nobody. link(2), unlike rename(2), never replaces
// a name that appeared at bindPath meanwhile.
func bindPrivate(bindPath string) (*net.UnixConn, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(bindPath), ".n")
	if err != nil {
		return nil, &fs.PathError{Op: "bind notify socket", Path: bindPath, Err: err}
	}
	defer os.Remove(tmp)
	name := filepath.Join(tmp, "s")
	defer os.Remove(name)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return nil, &fs.PathError{Op: "bind notify socket", Path: bindPath, Err: err}
	}
	if err = os.Chmod(name, 0o600); err == nil {
		err = os.Link(name, bindPath)
	}
	if err != nil {
		conn.Close()
		return nil, &fs.PathError{Op: "bind notify socket", Path: bindPath, Err: unwrapLink(err)}
	}
	return conn, nil
}

// unwrapLink is the OS's own error from a failed link: *os.LinkError would
// name both paths, and the temporary one is nobody's business.
func unwrapLink(err error) error {
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// Notes delivers one KEY=VALUE line at a time until the socket closes.
func (l *Listener) Notes() <-chan string { return l.notes }

// read splits each admitted datagram into its lines until the socket closes.
func (l *Listener) read() {
	buf := make([]byte, maxDatagram)
	oob := make([]byte, credSpace)
	for {
		n, oobn, flags, _, err := l.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		if flags&msgTrunc != 0 || !l.admitted(oob[:oobn]) {
			continue
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if line != "" {
				l.notes <- line
			}
		}
	}
}

// admitted decides whether a datagram with the control messages oob counts:
// where the OS names senders, only one the kernel named and admit accepts.
func (l *Listener) admitted(oob []byte) bool {
	if !namesSenders {
		return true
	}
	peer, ok := sender(oob)
	return ok && l.admit(peer)
}

// Drain discards the lines read but not yet taken: what a program's last
// life said must not count for the next one.
func (l *Listener) Drain() {
	for {
		select {
		case <-l.notes:
		default:
			return
		}
	}
}

// Close unbinds the socket and removes its name. A nil Listener is closed.
func (l *Listener) Close() {
	if l == nil {
		return
	}
	l.conn.Close()
	l.remove()
}

// Sender passes states to one service manager's socket, in order.
type Sender struct {
	addr  string
	queue chan string
	once  sync.Once
}

// NewSender sends to addr, the service manager's NOTIFY_SOCKET: a path, or
// an abstract name starting with '@'.
func NewSender(addr string) *Sender {
	return &Sender{addr: addr, queue: make(chan string, 32)}
}

// Send queues state (lines joined by '\n') for the service manager.
func (s *Sender) Send(state string) {
	if runtime.GOOS == "windows" || s.addr == "" || (!strings.HasPrefix(s.addr, "/") && !strings.HasPrefix(s.addr, "@")) {
		return
	}
	s.once.Do(func() { go s.write() })
	select {
	case s.queue <- state:
	default:
	}
}

// write is the one goroutine that may block on the service manager.
func (s *Sender) write() {
	for state := range s.queue {
		conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.addr, Net: "unixgram"})
		if err != nil {
			continue
		}
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = conn.Write([]byte(state))
		conn.Close()
	}
}
