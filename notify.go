package main

import (
	"gwlock/internal/notify"
	"os"
	"runtime"
	"sync"
)

// The gateway gets a NOTIFY_SOCKET of its own. systemd's socket belongs to
// the unit's main process, gwlock: a gateway that wrote READY=1 to it would
// be refused (NotifyAccess=main) or believed before gwlock knows the gateway
// is up. So gwlock binds a socket for the gateway in the lock directory
// (gwlock writes nothing anywhere else), named after the lock, relays
// READY=1 as gwlock's own readiness and STATUS= and EXTEND_TIMEOUT_USEC= as
// they are (notify.Classify), and removes the socket when it exits.

// notifySuffix names the relay socket: <lock file>.notify.
const notifySuffix = ".notify"

// maxSocketPath is the room in sockaddr_un's sun_path (108 bytes on Linux,
// 104 on the BSDs), less the terminating NUL, on every unix gwlock builds for.
const maxSocketPath = 103

// notifyRelay is the gateway's NOTIFY_SOCKET, bound while gwlock runs; path
// is the name the gateway is given.
type notifyRelay struct {
	*notify.Listener
	path string
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
	l, err := notify.Listen(bindPath, remove)
	if err != nil {
		return nil, err
	}
	return &notifyRelay{Listener: l, path: path}, nil
}

// close unbinds the relay, if there is one.
func (r *notifyRelay) close() {
	if r != nil {
		r.Close()
	}
}

// systemd is gwlock's own channel to the service manager above it, if any.
var systemd = sync.OnceValue(func() *notify.Sender { return notify.NewSender(os.Getenv("NOTIFY_SOCKET")) })

// sdNotify tells the service manager state; it never blocks the caller.
func sdNotify(state string) { systemd().Send(state) }
