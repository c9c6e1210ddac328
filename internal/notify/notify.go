// Package notify speaks systemd's readiness protocol (sd_notify(3)) on both
// sides of a supervisor: a Listener is the NOTIFY_SOCKET a supervised program is
// given, a Sender passes the supervisor's own state up to its service
// manager.
//
// Contract:
//
//   - Listen binds a datagram socket at a path the caller chose and made
//     safe; Close unbinds it and calls the caller's remove. The Listener reads
//     datagrams in a goroutine of its own and delivers their non-empty lines,
//     in order, on Notes. A datagram cut to fit the buffer is dropped whole,
//     as systemd drops it: its lines are not what was sent.
//   - Every datagram that arrives is accepted: anyone who can write to the
//     socket can speak for the program. A check of the sender (its peer
//     credentials) belongs in admit, the one place that decides.
//   - Classify says what a line is for a supervisor: READY=1 is the
//     program's readiness, STATUS= and EXTEND_TIMEOUT_USEC= pass up as they
//     are, and everything else (MAINPID=, WATCHDOG=, the file descriptor
//     store) is the supervisor's own business and is dropped.
//   - Send never blocks and never fails the caller: states go into a bounded
//     queue written by one goroutine with a one-second write deadline each;
//     a service manager that stops reading loses states, never the caller's
//     time. Without a usable address (no NOTIFY_SOCKET, or not a path or an
//     abstract name), and on Windows, it does nothing.
package notify

import (
	"net"
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

// Listener is the program's NOTIFY_SOCKET, bound while the supervisor runs.
type Listener struct {
	conn   *net.UnixConn
	remove func()
	notes  chan string
}

// Listen binds bindPath as a datagram socket and starts reading it; remove,
// called by Close (or at once if the bind fails), deletes the socket's name.
func Listen(bindPath string, remove func()) (*Listener, error) {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: bindPath, Net: "unixgram"})
	if err != nil {
		remove()
		return nil, err
	}
	l := &Listener{conn: conn, remove: remove, notes: make(chan string, 64)}
	go l.read()
	return l, nil
}

// Notes delivers one KEY=VALUE line at a time until the socket closes.
func (l *Listener) Notes() <-chan string { return l.notes }

// read splits each admitted datagram into its lines until the socket closes.
func (l *Listener) read() {
	buf := make([]byte, maxDatagram)
	for {
		n, _, flags, _, err := l.conn.ReadMsgUnix(buf, nil)
		if err != nil {
			return
		}
		if !admit(flags) {
			continue
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if line != "" {
				l.notes <- line
			}
		}
	}
}

// admit decides whether a datagram counts. Today only its size does; the
// sender's credentials (SCM_CREDENTIALS, with SO_PASSCRED set at Listen)
// would be checked here.
func admit(flags int) bool { return flags&msgTrunc == 0 }

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
