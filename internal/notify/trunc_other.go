//go:build !unix

package notify

// msgTrunc: no datagram socket to read here; nothing is ever cut.
const msgTrunc = 0
