package telemetry

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Every line gwlock prints, not only the event lines, carries text it does
// not control: paths, a config name, an etcd key, an OS error. A newline in
// one would end the line early and let the rest pose as a line of its own (a
// forged event or status line); a carriage return or an escape sequence
// rewrites what a terminal shows. The event lines are safe as slog writes
// them (it quotes any value that needs it); the two functions below are the
// same rule for the lines gwlock writes itself.

// Printable is line as it may be printed: every rune strconv.IsPrint rejects
// (control characters such as \n, \r, \t, \x1b, \x00, DEL and C1; U+2028,
// U+2029; format characters such as bidi overrides) and every byte that is
// not UTF-8 is written as a Go escape (\n, \x1b, \u2028, \xff). Everything
// else, a backslash included, is left as it is, so a Windows path reads as
// itself; the result is for people and line readers, not to be unquoted.
func Printable(line string) string {
	if !needsEscape(line) {
		return line
	}
	var b strings.Builder
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(line[i]))
		case !strconv.IsPrint(r):
			q := strconv.QuoteRune(r) // '\n', '\x1b', '\u2028'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(line[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Value is s as a value in a key=value line, quoted as the event lines quote
// it: as it is when it is plain, else strconv.Quote(s). A value is plain when
// it is not empty and holds no space, '"', '=', nor anything Printable would
// escape, so it can neither end the line nor pose as another key.
func Value(s string) string {
	if s != "" && !strings.ContainsAny(s, " \"=") && !needsEscape(s) {
		return s
	}
	return strconv.Quote(s)
}

// needsEscape reports whether Printable would change s.
func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !strconv.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}
