//go:build !linux

package notify

import "net"

// namesSenders: no per-datagram sender here (see the package doc); the
// socket's mode is the check.
const namesSenders = false

// credSpace: no control messages are read.
const credSpace = 0

func passCredentials(*net.UnixConn) error { return nil }

func sender([]byte) (Peer, bool) { return Peer{}, false }
