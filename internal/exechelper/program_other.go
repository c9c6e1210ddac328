//go:build !linux || !amd64

package exechelper

const machine = 0

var code []byte
