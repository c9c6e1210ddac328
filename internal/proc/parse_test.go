package proc

import (
	"encoding/binary"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, line string
		want       Stat
		ok         bool
	}{
		// `cat /proc/self/stat` on the development machine, verbatim.
		{"real", "19541 (cat) R 19539 19539 1051 0 -1 4194304 101 0 0 0 0 0 0 0 20 0 1 0 224010 3133440 387 18446744073709551615 94825250541568 94825250561449 140733262986576 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94825250577456 94825250579072 94825790623744 140733262994114 140733262994134 140733262994134 140733262995435 0\n",
			Stat{'R', 19539, 19539, 1051, 1, "224010"}, true},
		// A command name may hold spaces and parentheses: fields count from the last ')'.
		{"hostile comm", "42 (a) (b c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 9876543 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
			Stat{'S', 1, 42, 42, 1, "9876543"}, true},
		{"short", "42 (gate way) S 1 42 40 0 -1", Stat{'S', 1, 42, 40, 0, ""}, true},
		{"parens", "43 (a) (b)) Z 42 7 7 0", Stat{'Z', 42, 7, 7, 0, ""}, true},
		{"threads", "45 (d) Z 1 45 45 0 -1 4194624 0 0 0 0 0 0 0 0 20 0 3 0 99", Stat{'Z', 1, 45, 45, 3, "99"}, true},
		{"start not a number", "42 (x) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 soon 0", Stat{'S', 1, 42, 42, 1, ""}, true},
		{"truncated", "44 (x) R 1 2", Stat{}, false},
		{"no comm", "42 x S 1", Stat{}, false},
		{"garbage", "garbage", Stat{}, false},
	}
	for _, tc := range tests {
		got, err := ParseStat([]byte(tc.line))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: ParseStat = %+v, %v; want %+v, ok %v", tc.name, got, err, tc.want, tc.ok)
		}
	}
}

func TestStatExited(t *testing.T) {
	for _, tc := range []struct {
		st   Stat
		want bool
	}{
		{Stat{State: 'Z', Threads: 1}, true},
		{Stat{State: 'X'}, true},
		// A main thread that called pthread_exit: its process runs on.
		{Stat{State: 'Z', Threads: 3}, false},
		{Stat{State: 'S', Threads: 1}, false},
	} {
		if got := tc.st.Exited(); got != tc.want {
			t.Errorf("%+v.Exited() = %v, want %v", tc.st, got, tc.want)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("42 (a) (b c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 9876543 0"))
	f.Add([]byte("43 (x) Z 1 2 3"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStat(b)
		if err != nil && st != (Stat{}) {
			t.Fatalf("ParseStat(%q) = %+v with error %v", b, st, err)
		}
	})
}

// TestParseKinfoProc checks the FreeBSD parser against a buffer laid out as
// sys/user.h describes (no FreeBSD machine is available to take a real
// sample): a mismatched size or pid must give an error, never a value.
func TestParseKinfoProc(t *testing.T) {
	b := make([]byte, kinfoProcSize64)
	binary.LittleEndian.PutUint32(b[0:], kinfoProcSize64)
	binary.LittleEndian.PutUint32(b[kinfoOffPID:], 4321)
	binary.LittleEndian.PutUint64(b[kinfoOffStartSec:], 1764230400)
	binary.LittleEndian.PutUint64(b[kinfoOffStartUsec:], 123456)
	if got, err := ParseKinfoProc(b, 4321); err != nil || got != "1764230400.123456" {
		t.Fatalf("ParseKinfoProc = %q, %v", got, err)
	}
	if _, err := ParseKinfoProc(b, 4322); err == nil {
		t.Error("accepted a kinfo_proc of another pid")
	}
	if _, err := ParseKinfoProc(b[:kinfoProcSize64-1], 4321); err == nil {
		t.Error("accepted a short kinfo_proc")
	}
	binary.LittleEndian.PutUint32(b[0:], 1096)
	if _, err := ParseKinfoProc(b, 4321); err == nil {
		t.Error("accepted a kinfo_proc of another layout size")
	}
}

func TestParseStatusUID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"Name:\tcat\nUmask:\t0022\nState:\tR (running)\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n", 1000, true},
		{"Uid:\t65534\t65534\t65534\t65534\n", 65534, true},
		{"Name:\tx\nGid:\t1\n", 0, false},
		{"Uid:\n", 0, false},
		{"Uid:\t-1\t0\n", 0, false},
	} {
		got, err := ParseStatusUID([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseStatusUID(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParseStatusUID(f *testing.F) {
	f.Add([]byte("Uid:\t0\t0\t0\t0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if uid, err := ParseStatusUID(b); err != nil && uid != 0 || uid < 0 {
			t.Fatalf("ParseStatusUID(%q) = %d, %v", b, uid, err)
		}
	})
}
