package main

import (
	"net"
	"os"
	"runtime"
	"strings"
)

// The gateway's own NOTIFY_SOCKET (issue 12). systemd's socket belongs to
// the unit's main process, gwlock: a gateway that wrote READY=1 to it would
// be refused (NotifyAccess=main) or believed before gwlock knows the gateway
// is up. So gwlock gives the gateway a socket of its own, in the lock
// directory (gwlock writes nothing anywhere else), named after the lock,
// relays READY=1 as gwlock's readiness and STATUS= and EXTEND_TIMEOUT_USEC=
// as they are, and removes the socket when it exits.

// notifySuffix names the relay socket: <lock file>.notify.
const notifySuffix = ".notify"

// maxSocketPath is the room in sockaddr_un's sun_path (108 bytes on Linux,
// 104 on the BSDs), less the terminating NUL, on every unix gwlock builds for.
const maxSocketPath = 103

// notifyRelay is the gateway's NOTIFY_SOCKET, bound while gwlock runs.
type notifyRelay struct {
	path   string
	conn   *net.UnixConn
	remove func()
	notes  chan string // one KEY=VALUE line each
}

// openNotifyRelay binds the relay socket beside the lock. Nil without an
// error where there is nothing to do: Windows (no datagram sockets), or
// nobody to tell: no systemd above us ($NOTIFY_SOCKET) and no --ready-notify
// waiting for the gateway's READY=1. A socket, its goroutine and its removal
// would cost every plain `run` a fifth of a millisecond.
func openNotifyRelay(h holder, wanted bool) (*notifyRelay, error) {
	if h == nil || runtime.GOOS == "windows" || (!wanted && os.Getenv("NOTIFY_SOCKET") == "") {
		return nil, nil
	}
	path, bindPath, remove, err := h.runtimeSocket(notifySuffix, maxSocketPath)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: bindPath, Net: "unixgram"})
	if err != nil {
		remove()
		return nil, err
	}
	r := &notifyRelay{path: path, conn: conn, remove: remove, notes: make(chan string, 64)}
	go r.read()
	return r, nil
}

// read splits each datagram into its lines until the socket closes.
func (r *notifyRelay) read() {
	buf := make([]byte, 4096)
	for {
		n, _, flags, _, err := r.conn.ReadMsgUnix(buf, nil)
		if err != nil {
			return
		}
		if flags&msgTrunc != 0 {
			continue // cut to fit: its lines are not what was sent (systemd drops them too)
		}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if line != "" {
				r.notes <- line
			}
		}
	}
}

// drain discards the lines read but not yet handled.
func (r *notifyRelay) drain() {
	for {
		select {
		case <-r.notes:
		default:
			return
		}
	}
}

func (r *notifyRelay) close() {
	if r == nil {
		return
	}
	r.conn.Close()
	r.remove()
}

// relayedNote says what a line from the gateway is for gwlock: "ready",
// "relay" (passed on to systemd as it is), or "" (dropped: MAINPID= would
// name the gateway as the unit's main process, WATCHDOG= and the file
// descriptor store are gwlock's to manage).
func relayedNote(line string) string {
	switch {
	case line == "READY=1":
		return "ready"
	case strings.HasPrefix(line, "STATUS="), strings.HasPrefix(line, "EXTEND_TIMEOUT_USEC="):
		return "relay"
	}
	return ""
}
