//go:build !linux

package main

// threadCount is unknown off Linux: run makes no threads ahead there.
func threadCount() int { return 0 }

func processHeadroom(int) error { return nil }

// threadsLimited: no thread is made ahead off Linux (threadCount is 0).
func threadsLimited() bool { return false }
