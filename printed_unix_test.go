//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostileNames are pieces of user input that would forge or garble a line
// printed raw: each kind of control character, the Unicode line breaks, a
// bidi override, and bytes that are not UTF-8. (No argument, variable or
// file name can hold a NUL; internal/telemetry's own test covers it.)
var hostileNames = []struct{ name, piece string }{
	{"newline", "\n"},
	{"carriage return", "\r"},
	{"escape", "\x1b[2K\r"},
	{"tab", "\t"},
	{"del", "\x7f"},
	{"next line (C1)", "\u0085"},
	{"line separator", "\u2028"},
	{"paragraph separator", "\u2029"},
	{"bidi override", "\u202e"},
	{"invalid utf-8", "\xff\xfe"},
}

// mustBeOneCleanLine fails unless out is exactly one line with nothing a
// terminal or a line reader would take for a line break or a control.
func mustBeOneCleanLine(t *testing.T, what, out string) string {
	t.Helper()
	line, rest, ok := strings.Cut(out, "\n")
	if !ok || rest != "" {
		t.Errorf("%s: %q is not exactly one line", what, out)
	}
	if !utf8.ValidString(line) {
		t.Errorf("%s: %q is not UTF-8", what, line)
	}
	for _, r := range line {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' || r == '\u202e' {
			t.Errorf("%s: %q holds %U raw", what, line, r)
		}
	}
	return line
}

// TestErrorLineEscapesInput: a --config naming no file, whatever it holds,
// gives one gwlock: line (exit 66) that no reader takes for two lines or for
// the telemetry line a forger appended.
func TestErrorLineEscapesInput(t *testing.T) {
	dir := lockDir(t)
	forged := "time=2026-01-01T00:00:00.000Z level=INFO event=acquire-success lock=/run/gwlock/fake.lock"
	for _, tc := range hostileNames {
		config := filepath.Join(dir, "gw"+tc.piece+forged+".json")
		r := runGwlock(t, []string{"XDG_RUNTIME_DIR=" + dir}, "run", "--lock-dir", dir, "--config", config, "--", "true")
		if r.code != exitNoInput {
			t.Errorf("%s: exit %d, want %d; stderr %q", tc.name, r.code, exitNoInput, r.stderr)
		}
		// The forged text stays inside the one gwlock: line.
		if line := mustBeOneCleanLine(t, tc.name, r.stderr); !strings.HasPrefix(line, "gwlock: config ") {
			t.Errorf("%s: stderr %q, want one gwlock: config line", tc.name, r.stderr)
		}
	}
}

// TestStatusAndUnlockLinesEscapeLockDir: a lock dir whose name holds a
// control character (or a space, to forge a key) gives status one line whose
// lock= value reads back as the real path, and no forged state= or pid=;
// unlock's own line is one clean line too.
func TestStatusAndUnlockLinesEscapeLockDir(t *testing.T) {
	parent := lockDir(t)
	cases := append([]struct{ name, piece string }{{"space", " "}}, hostileNames...)
	for _, tc := range cases {
		dir := filepath.Join(parent, "d"+tc.piece+"state=running pid=1")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		lock := filepath.Join(dir, "gw.lock")
		r := runGwlock(t, nil, "status", "--lock", lock)
		line := mustBeOneCleanLine(t, tc.name+": status", r.stdout)
		got := parseLogfmt("event=status " + line)
		if r.code != statusNotRunning || len(got) != 1 || got[0]["lock"] != lock || got[0]["state"] != "not-running" || got[0]["pid"] != "" {
			t.Errorf("%s: status exit %d %q, read back as %v; want lock=%q state=not-running and no pid", tc.name, r.code, line, got, lock)
		}
		r = runGwlock(t, nil, "unlock", "--lock", lock)
		mustBeOneCleanLine(t, tc.name+": unlock", r.stderr)
		if r.code != exitOK || !strings.Contains(r.stderr, "nothing to remove") {
			t.Errorf("%s: unlock exit %d %q, want 0 and nothing to remove", tc.name, r.code, r.stderr)
		}
	}
}
