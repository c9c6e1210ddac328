//go:build !linux

package main

// descendsFromUs: off Linux no datagram names its sender, so nothing asks
// (notify.Listen); the socket's mode is the check there.
func descendsFromUs(int) bool { return false }
