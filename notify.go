package main

import (
	"errors"
	"gwlock/internal/notify"
	"io/fs"
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
//
// Who may speak for the gateway: the socket is the launcher's uid's alone
// (0600 whatever the umask, see notify.Listen), and on Linux, where the
// kernel names each datagram's sender, a datagram counts only if its sender
// is, when gwlock reads it, a live process of the gateway's tree: gwlock is
// among its ancestors (every process gwlock starts is the gateway's, and as
// a subreaper gwlock inherits the daemons they leave), or it shares the
// lock's open file description (fd 3, inherited down the tree). Its uid
// does not matter, so a gateway that changed uid is still heard where it
// can reach the socket; another user's process, or one of the launcher's
// own uid outside the tree, is not. A sender already gone when its datagram
// is read cannot be placed and does not count, as under systemd's
// NotifyAccess=all: systemd-notify(1) waits on a barrier for that reason.
// Off Linux the socket's mode is the only check.

// notifySuffix names the relay socket: <lock file>.notify.
const notifySuffix = ".notify"

// maxSocketPath is the room in sockaddr_un's sun_path (108 bytes on Linux,
// 104 on the BSDs), less the terminating NUL, on every unix gwlock builds for.
const maxSocketPath = 103

// squattedNotify refuses a relay socket name held by something that is not
// a leftover socket of ours: another user's socket, a file, a directory.
var squattedNotify = refusal{"notify socket", "remove it, or pass --lock-dir naming a directory of your own"}

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
// would cost every plain `run` a fifth of a millisecond. A name squatted at
// the socket's path is an *unsafeError.
func openNotifyRelay(h holder, wanted bool) (*notifyRelay, error) {
	if h == nil || runtime.GOOS == "windows" || (!wanted && os.Getenv("NOTIFY_SOCKET") == "") {
		return nil, nil
	}
	tree, _ := h.(treeHolder)
	admit := func(p notify.Peer) bool { return inGatewayTree(p.PID, tree) }
	// A name that appears between clearing the path and linking the socket
	// is judged again, once: a leftover of ours is cleared, anything else
	// refused.
	for attempt := 0; ; attempt++ {
		path, bindPath, remove, err := h.runtimeSocket(notifySuffix, maxSocketPath)
		if err != nil {
			return nil, refusalOr(err)
		}
		l, err := notify.Listen(bindPath, remove, admit)
		switch {
		case err == nil:
			return &notifyRelay{Listener: l, path: path}, nil
		case !errors.Is(err, fs.ErrExist) || attempt == 1:
			return nil, err
		}
	}
}

// refusalOr is err, or the refusal it carries: the path is named once.
func refusalOr(err error) error {
	var ue *unsafeError
	if errors.As(err, &ue) {
		return ue
	}
	return err
}

// inGatewayTree says whether pid is, now, a process of the gateway's tree:
// a descendant of gwlock, or a process sharing the held lock.
func inGatewayTree(pid int, tree treeHolder) bool {
	if pid <= 0 || pid == os.Getpid() {
		return false
	}
	if descendsFromUs(pid) {
		return true
	}
	if tree != nil {
		for _, p := range tree.sharers() {
			if p == pid {
				return true
			}
		}
	}
	return false
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
