//go:build !linux

package main

// dropProgramPages: only Linux's accounting is measured and tuned here.
func dropProgramPages() {}
