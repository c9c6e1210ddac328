package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// rssFileKB is this process's resident pages of files, from status.
func rssFileKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.Fields(rest)[0])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestDropProgramPages: the program's clean pages leave the resident set,
// and the program runs on (its code is mapped again as it is used).
func TestDropProgramPages(t *testing.T) {
	before := rssFileKB(t)
	dropProgram()
	after := rssFileKB(t)
	if after >= before {
		t.Fatalf("RssFile %d kB before, %d kB after: nothing dropped", before, after)
	}
	if r := runGwlock(t, nil, "version"); r.code != 0 {
		t.Fatalf("gwlock version after the drop: exit %d", r.code)
	}
	t.Logf("RssFile %d kB -> %d kB", before, after)
}

// TestMappingsKeepWrittenPages: a mapping with pages of its own, or whose
// count cannot be read, is never taken for a clean one; paths may hold
// spaces.
func TestMappingsKeepWrittenPages(t *testing.T) {
	smaps := "00400000-00800000 r-xp 00000000 fd:01 42 /opt/my gw/gwlock\n" +
		"Size: 4096 kB\nAnonymous: 0 kB\n" +
		"00800000-00900000 r--p 00400000 fd:01 42 /opt/my gw/gwlock\n" +
		"Anonymous: 12 kB\n" +
		"00900000-00a00000 r--p 00500000 fd:01 42 /opt/my gw/gwlock\n" +
		"00a00000-00b00000 rw-p 00000000 00:00 0\n" +
		"Anonymous: 0 kB\n"
	ms := mappings([]byte(smaps))
	if len(ms) != 4 {
		t.Fatalf("%d mappings, want 4: %+v", len(ms), ms)
	}
	want := []int64{0, 12, -1, 0}
	for i, m := range ms {
		if m.anonymous != want[i] {
			t.Errorf("mapping %d: anonymous %d, want %d", i, m.anonymous, want[i])
		}
	}
	if got := mappedFile(ms, 0x400100); got != "/opt/my gw/gwlock" {
		t.Errorf("mappedFile = %q", got)
	}
	if ms[3].path != "" {
		t.Errorf("anonymous mapping path %q", ms[3].path)
	}
}
