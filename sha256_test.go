package main

import (
	"crypto/sha256"
	"strings"
	"testing"
)

func TestSum256(t *testing.T) {
	// Lengths around the 55/56/64-byte padding boundaries, and a long input.
	for _, n := range []int{0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 100000} {
		msg := []byte(strings.Repeat("gwlock/", n/7+1)[:n])
		if got, want := sum256(msg), sha256.Sum256(msg); got != want {
			t.Fatalf("sum256(%d bytes) = %x, want %x", n, got, want)
		}
	}
}

func FuzzSum256(f *testing.F) {
	f.Add([]byte("/etc/gateway/config.json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := sum256(b), sha256.Sum256(b); got != want {
			t.Fatalf("sum256(%q) = %x, want %x", b, got, want)
		}
	})
}
