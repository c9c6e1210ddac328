package notify

import (
	"net"

	"golang.org/x/sys/unix"
)

// namesSenders: Linux names every datagram's sender (SCM_CREDENTIALS).
const namesSenders = true

// credSpace is room for exactly one SCM_CREDENTIALS message. Descriptors a
// sender attached do not fit, so the kernel closes them (MSG_CTRUNC) and
// none is ever installed in this process.
var credSpace = unix.CmsgSpace(unix.SizeofUcred)

// passCredentials asks the kernel to attach the sender's credentials to
// every datagram read (SO_PASSCRED): its pid and uid when it sent, which
// the sender cannot choose but to its own (only a privileged sender may
// name other ones, and root can speak for anyone anyway).
func passCredentials(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	return serr
}

// sender reads the credentials the kernel attached; false when none are.
func sender(oob []byte) (Peer, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return Peer{}, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_CREDENTIALS {
			continue
		}
		if cred, err := unix.ParseUnixCredentials(&m); err == nil && cred.Pid > 0 {
			return Peer{PID: int(cred.Pid), UID: int(cred.Uid)}, true
		}
	}
	return Peer{}, false
}
