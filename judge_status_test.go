//go:build linux

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestStatusJSONTellsPathsApart: status --json prints every path it does
// not choose so that no bidi override or other unprintable rune reaches a
// terminal and two paths never print the same: a byte that is not UTF-8
// and the U+FFFD that stands for one, a bidi override and its escape
// written out, each reads back as itself.
func TestStatusJSONTellsPathsApart(t *testing.T) {
	dir := lockDir(t)
	names := []string{"a\u202eb\xff.lock", "a\u202eb\ufffd.lock", `a\u202eb\xff.lock`, `"a".lock`, "a\tb.lock", "plain.lock"}
	seen := map[string]string{}
	for _, name := range names {
		lock := filepath.Join(dir, name)
		r := runGwlock(t, nil, "status", "--json", "--lock", lock)
		replaced := strings.Contains(name, "\xff") && strings.Contains(r.stdout, "\ufffd")
		if replaced || strings.ContainsAny(r.stdout, "\u202e\t") || !strings.HasSuffix(r.stdout, "}\n") {
			t.Errorf("status --json for %q prints raw: %q", name, r.stdout)
		}
		var rep report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("status --json for %q: %v\n%s", name, err, r.stdout)
		}
		if got := unJSONText(t, rep.Lock); got != lock {
			t.Errorf("status --json lock %q reads back as %q, want %q", rep.Lock, got, lock)
		}
		if other, ok := seen[rep.Lock]; ok {
			t.Errorf("%q and %q print the same lock %q", other, name, rep.Lock)
		}
		seen[rep.Lock] = name
	}
	if _, rep := statusReport(t, filepath.Join(dir, "plain.lock")); rep.Lock != filepath.Join(dir, "plain.lock") {
		t.Errorf("a plain path is printed as %q, want it as it is", rep.Lock)
	}
}

// TestStatusJSONConfigPath: the payload records a config path that is
// not UTF-8 so that status --json shows it as itself.
func TestStatusJSONConfigPath(t *testing.T) {
	dir := lockDir(t)
	config := filepath.Join(dir, "c\u202e\xff.json")
	if err := os.WriteFile(config, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	g := startHelper(t, "gwlock", nil, "run", "--config", config, "--lock-dir", dir, "--", testBinary(t), "helper:gateway",
		"-pidfile", filepath.Join(dir, "pid"), "-sleep", "60s")
	waitFile(t, filepath.Join(dir, "pid"))
	r := runGwlock(t, nil, "status", "--json", "--config", config, "--lock-dir", dir)
	var rep report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Owner == nil {
		t.Fatalf("status --json: %v\n%s%s", err, r.stdout, r.stderr)
	}
	if strings.ContainsAny(r.stdout, "\u202e\ufffd") {
		t.Errorf("status --json prints raw: %q", r.stdout)
	}
	if got := unJSONText(t, rep.Owner.ConfigPath); got != config {
		t.Errorf("configPath %q reads back as %q, want %q", rep.Owner.ConfigPath, got, config)
	}
	g.signal(t, syscall.SIGTERM)
	g.wait(t)
}

// unJSONText reads back a string as status --json prints it: Go-quoted
// when it begins with '"', else as it is.
func unJSONText(t *testing.T, s string) string {
	t.Helper()
	if !strings.HasPrefix(s, `"`) {
		return s
	}
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("%q begins with a quote but does not unquote: %v", s, err)
	}
	return u
}
