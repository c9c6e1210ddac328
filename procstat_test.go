package main

import (
	"encoding/binary"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name, line, want string
		ok               bool
	}{
		// `cat /proc/self/stat` on the development machine, verbatim.
		{"real", "19541 (cat) R 19539 19539 1051 0 -1 4194304 101 0 0 0 0 0 0 0 20 0 1 0 224010 3133440 387 18446744073709551615 94825250541568 94825250561449 140733262986576 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94825250577456 94825250579072 94825790623744 140733262994114 140733262994134 140733262994134 140733262995435 0\n", "224010", true},
		// A command name may hold spaces and parentheses: fields count from the last ')'.
		{"hostile comm", "42 (a) (b c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 9876543 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n", "9876543", true},
		{"truncated", "42 (x) S 1 42 42 0 -1 4194560 1 0 0", "", false},
		{"no comm", "42 x S 1", "", false},
		{"not a number", "42 (x) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 soon 0", "", false},
	}
	for _, tc := range tests {
		got, ok := parseProcStat([]byte(tc.line))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: parseProcStat = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestParseKinfoProc checks the FreeBSD parser against a buffer laid out as
// sys/user.h describes (no FreeBSD machine is available to take a real
// sample): a mismatched size or pid must give "unknown", never a value.
func TestParseKinfoProc(t *testing.T) {
	b := make([]byte, kinfoProcSize64)
	binary.LittleEndian.PutUint32(b[0:], kinfoProcSize64)
	binary.LittleEndian.PutUint32(b[kinfoOffPID:], 4321)
	binary.LittleEndian.PutUint64(b[kinfoOffStartSec:], 1764230400)
	binary.LittleEndian.PutUint64(b[kinfoOffStartUsec:], 123456)
	if got, ok := parseKinfoProc(b, 4321); !ok || got != "1764230400.123456" {
		t.Fatalf("parseKinfoProc = %q, %v", got, ok)
	}
	if _, ok := parseKinfoProc(b, 4322); ok {
		t.Error("accepted a kinfo_proc of another pid")
	}
	if _, ok := parseKinfoProc(b[:kinfoProcSize64-1], 4321); ok {
		t.Error("accepted a short kinfo_proc")
	}
	binary.LittleEndian.PutUint32(b[0:], 1096)
	if _, ok := parseKinfoProc(b, 4321); ok {
		t.Error("accepted a kinfo_proc of another layout size")
	}
}

// TestOwnStartTime: the OS reports a start time for us, stable across calls,
// and none for a PID that does not exist.
func TestOwnStartTime(t *testing.T) {
	a, ok := processStartTime(selfFacts().pid)
	b, _ := processStartTime(selfFacts().pid)
	if !ok || a == "" || a != b {
		t.Fatalf("processStartTime(self) = %q then %q (%v)", a, b, ok)
	}
	if _, ok := processStartTime(deadPID(t)); ok {
		t.Error("a start time for a dead pid")
	}
	if _, ok := processStartTime(0); ok {
		t.Error("a start time for pid 0")
	}
}

func TestParseProcStatus(t *testing.T) {
	for _, tc := range []struct {
		line string
		want procStatus
		ok   bool
	}{
		{"42 (gate way) S 1 42 40 0 -1", procStatus{'S', 1, 42, 40, 0}, true},
		{"43 (a) (b)) Z 42 7 7 0", procStatus{'Z', 42, 7, 7, 0}, true},
		{"44 (x) R 1 2", procStatus{}, false},
		{"45 (d) Z 1 45 45 0 -1 4194624 0 0 0 0 0 0 0 0 20 0 3 0 99", procStatus{'Z', 1, 45, 45, 3}, true},
		{"garbage", procStatus{}, false},
	} {
		got, ok := parseProcStatus([]byte(tc.line))
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseProcStatus(%q) = %+v, %t; want %+v, %t", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}
