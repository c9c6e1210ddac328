//go:build unix

package notify

import "syscall"

// msgTrunc flags a datagram cut to fit the buffer (recvmsg(2)).
const msgTrunc = syscall.MSG_TRUNC
