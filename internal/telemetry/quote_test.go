package telemetry

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostile are inputs that must never reach a printed line raw: each control
// character class, the Unicode line breaks, a bidi override, and bytes that
// are not UTF-8.
var hostile = []struct{ name, in, want string }{
	{"newline", "a\nevent=x", `a\nevent=x`},
	{"carriage return", "a\rb", `a\rb`},
	{"tab", "a\tb", `a\tb`},
	{"escape", "a\x1b[2Jb", `a\x1b[2Jb`},
	{"nul", "a\x00b", `a\x00b`},
	{"del", "a\x7fb", `a\x7fb`},
	{"c1", "a\u0085b", `a\u0085b`},
	{"line separator", "a\u2028b", `a\u2028b`},
	{"paragraph separator", "a\u2029b", `a\u2029b`},
	{"bidi override", "a\u202eb", `a\u202eb`},
	{"invalid utf-8", "a\xff\xfeb", `a\xff\xfeb`},
	{"truncated rune", "a\xe2\x80", `a\xe2\x80`},
	{"plain", `C:\dir\é x`, `C:\dir\é x`},
}

func TestPrintable(t *testing.T) {
	for _, tc := range hostile {
		got := Printable(tc.in)
		if got != tc.want {
			t.Errorf("%s: Printable(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
		if !utf8.ValidString(got) || strings.ContainsAny(got, "\n\r\t\x00\x1b\u2028\u2029") {
			t.Errorf("%s: Printable(%q) = %q still holds a raw control character or bad UTF-8", tc.name, tc.in, got)
		}
	}
}

// TestValueAsEventLines: Value quotes as the event lines do, so a line of
// gwlock's own and a telemetry line read the same way. The one difference:
// slog's text handler writes DEL (0x7f) raw, Value escapes it.
func TestValueAsEventLines(t *testing.T) {
	for _, in := range []string{"plain", "", "a b", "a=b", `a"b`, "/run/gwlock/x.lock", "2026-01-01T00:00:00.000Z"} {
		checkValue(t, in)
	}
	for _, tc := range hostile {
		if tc.name != "del" { // slog leaves DEL raw; Value is the stricter
			checkValue(t, tc.in)
		}
	}
}

func checkValue(t *testing.T, in string) {
	t.Helper()
	var buf bytes.Buffer
	New(&buf, "logfmt", false).Info("e", "k", in)
	line := buf.String()
	i := strings.Index(line, " k=")
	if i < 0 {
		t.Fatalf("no k= in %q", line)
	}
	want := strings.TrimSuffix(line[i+3:], "\n")
	if got := Value(in); got != want {
		t.Errorf("Value(%q) = %s, want %s as the event line writes it", in, got, want)
	}
}
