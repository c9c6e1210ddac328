package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestGatewayEnv: GWLOCK_LOCK_PATH replaces every inherited entry, whatever
// its position, and leaves everything else as it was.
func TestGatewayEnv(t *testing.T) {
	set := map[string]string{"GWLOCK_LOCK_PATH": "/run/gwlock/new.lock"}
	tests := []struct {
		name string
		base []string
		want []string
	}{
		{"none inherited", []string{"A=1", "B=2"}, []string{"A=1", "B=2", "GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}},
		{"one inherited", []string{"GWLOCK_LOCK_PATH=/bogus", "A=1"}, []string{"A=1", "GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}},
		{"two inherited", []string{"GWLOCK_LOCK_PATH=/a", "A=1", "GWLOCK_LOCK_PATH=/b"}, []string{"A=1", "GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}},
		{"empty inherited", []string{"GWLOCK_LOCK_PATH="}, []string{"GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}},
		{"prefix is another name", []string{"GWLOCK_LOCK_PATHS=x", "GWLOCK_LOCK=y"}, []string{"GWLOCK_LOCK_PATHS=x", "GWLOCK_LOCK=y", "GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}},
		{"drive directory entry", []string{"=C:=C:\\gw", "A=1"}, []string{"=C:=C:\\gw", "A=1", "GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}},
	}
	if runtime.GOOS == "windows" {
		tests = append(tests, struct {
			name string
			base []string
			want []string
		}{"other case on Windows", []string{"Gwlock_Lock_Path=/bogus"}, []string{"GWLOCK_LOCK_PATH=/run/gwlock/new.lock"}})
	}
	for _, tc := range tests {
		if got := gatewayEnv(tc.base, set); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: gatewayEnv(%q) = %q, want %q", tc.name, tc.base, got, tc.want)
		}
	}
}

// TestInheritedLockPathReplaced: a gateway started under an environment that
// already carries GWLOCK_LOCK_PATH (a nested gwlock, a stale export) reads
// the lock it really runs under. Go's os.Getenv returns the first of two
// duplicates, so an appended entry would lose.
func TestInheritedLockPathReplaced(t *testing.T) {
	dir := lockDir(t)
	lock, envfile := filepath.Join(dir, "v.lock"), filepath.Join(dir, "env")
	inherited := []string{"GWLOCK_LOCK_PATH=/bogus"}
	r := runGwlock(t, inherited, "run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-envfile", envfile)
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if got := strings.TrimSpace(string(waitFile(t, envfile))); got != lock {
		t.Errorf("gateway's GWLOCK_LOCK_PATH = %q, want %q", got, lock)
	}
	if runtime.GOOS != "linux" {
		return
	}
	// Go deduplicates its own environment at start; the kernel's copy of a
	// running gateway's environment shows every entry it was given.
	pidfile := filepath.Join(dir, "pid")
	bg := startHelper(t, "gwlock", inherited, "run", "--lock", lock, "--",
		testBinary(t), "helper:gateway", "-pidfile", pidfile, "-sleep", "60s")
	pid := strings.TrimSpace(string(waitFile(t, pidfile)))
	raw, err := os.ReadFile("/proc/" + pid + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, kv := range strings.Split(string(raw), "\x00") {
		if strings.HasPrefix(kv, "GWLOCK_LOCK_PATH=") {
			entries = append(entries, kv)
		}
	}
	if len(entries) != 1 || entries[0] != "GWLOCK_LOCK_PATH="+lock {
		t.Errorf("gateway's environment has %q, want exactly GWLOCK_LOCK_PATH=%s", entries, lock)
	}
	bg.signal(t, os.Interrupt)
	bg.wait(t)
}

func TestParseDuration(t *testing.T) {
	good := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0}, {"5", 5 * time.Second}, {"0.25", 250 * time.Millisecond}, {"0.001", time.Millisecond},
		{"250ms", 250 * time.Millisecond}, {"1h30m", 90 * time.Minute}, {"+5s", 5 * time.Second},
		{"8760h", maxDuration}, {"31536000", maxDuration},
	}
	for _, tc := range good {
		if got, err := parseDuration(tc.in); err != nil || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, want string }{
		{"inf", "finite"}, {"+Inf", "finite"}, {"infinity", "finite"}, {"NaN", "finite"}, {"nan", "finite"},
		{"1e10", "out of range"}, {"1e400", "out of range"}, {"31536001", "out of range"}, {"8761h", "out of range"},
		{"9999999999h", "out of range"}, {"2562048h", "out of range"},
		{"-0", "negative"}, {"-0s", "negative"}, {"-1", "negative"}, {"-1ns", "negative"}, {"-inf", "negative"},
		{"soon", "not a duration"}, {"", "not a duration"}, {"5 s", "not a duration"},
	}
	for _, tc := range bad {
		if got, err := parseDuration(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseDuration(%q) = %v, %v, want an error saying %q", tc.in, got, err, tc.want)
		}
	}
}

// clearGwlockEnv hides the developer's GWLOCK_* settings from in-process parsing.
func clearGwlockEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if name := envName(kv); strings.HasPrefix(name, "GWLOCK_") {
			t.Setenv(name, "")
		}
	}
}

// TestFlagValues: every bad duration is a usage error naming where it came
// from; a flag beats any variable, across naming modes too.
func TestFlagValues(t *testing.T) {
	tests := []struct {
		name string
		env  []string // NAME=value
		args []string
		want string                // in the usage error; "" = no error
		ok   func(c *config) error // checks a parse that succeeded
	}{
		{"timeout inf", nil, []string{"run", "--lock", "/l", "--timeout", "inf", "--", "gw"}, "-timeout: not a finite duration", nil},
		{"timeout NaN", nil, []string{"run", "--lock", "/l", "--timeout", "NaN", "--", "gw"}, "-timeout: not a finite duration", nil},
		{"timeout 1e10", nil, []string{"run", "--lock", "/l", "--timeout", "1e10", "--", "gw"}, "-timeout: out of range", nil},
		{"timeout -0", nil, []string{"run", "--lock", "/l", "--timeout", "-0", "--", "gw"}, "-timeout: negative", nil},
		{"stop-timeout inf", nil, []string{"run", "--lock", "/l", "--stop-timeout", "inf", "--", "gw"}, "-stop-timeout: not a finite", nil},
		{"stop-timeout huge", nil, []string{"run", "--lock", "/l", "--stop-timeout", "99999999999h", "--", "gw"}, "-stop-timeout: not a duration or out of range", nil},
		{"poll 1ns", nil, []string{"run", "--lock", "/l", "--poll", "1ns", "--", "gw"}, "bad --poll 1ns: under the 1ms minimum", nil},
		{"poll 0", nil, []string{"status", "--lock", "/l", "--poll", "0"}, "bad --poll 0s: under the 1ms minimum", nil},
		{"stale 2ns", nil, []string{"run", "--lock", "/l", "--stale", "2ns", "--", "gw"}, "bad --stale 2ns: under the 1ms minimum", nil},
		{"stale 0.0001", nil, []string{"unlock", "--lock", "/l", "--stale", "0.0001"}, "bad --stale 100µs: under the 1ms minimum", nil},
		{"env stale 4ns", []string{"GWLOCK_STALE=4ns"}, []string{"run", "--lock", "/l", "--", "gw"}, "bad GWLOCK_STALE 4ns: under the 1ms minimum", nil},
		{"env timeout inf", []string{"GWLOCK_TIMEOUT=inf"}, []string{"status", "--lock", "/l"}, `bad GWLOCK_TIMEOUT="inf": not a finite`, nil},
		{"probe wait NaN", nil, []string{"probe", "--port", "1", "--wait", "NaN"}, "-wait: not a finite", nil},
		{"minimums accepted", nil, []string{"run", "--lock", "/l", "--poll", "1ms", "--stale", "0.001", "--stop-timeout", "0", "--timeout", "0", "--", "gw"}, "", func(c *config) error {
			if c.poll != time.Millisecond || c.stale != time.Millisecond || c.stopTimeout != 0 || c.timeout != 0 {
				return fmt.Errorf("poll %v stale %v stop-timeout %v timeout %v, want 1ms 1ms 0 0", c.poll, c.stale, c.stopTimeout, c.timeout)
			}
			return nil
		}},
		{"flag beats a malformed variable", []string{"GWLOCK_TIMEOUT=inf"}, []string{"status", "--lock", "/l", "--timeout", "2s"}, "", func(c *config) error {
			if c.timeout != 2*time.Second {
				return fmt.Errorf("timeout %v, want 2s", c.timeout)
			}
			return nil
		}},
		{"--lock beats GWLOCK_CONFIG", []string{"GWLOCK_CONFIG=/etc/gw.json"}, []string{"status", "--lock", "/l"}, "", func(c *config) error {
			if c.lockPath != "/l" || c.configPath != "" {
				return fmt.Errorf("lock %q config %q, want lock /l alone", c.lockPath, c.configPath)
			}
			return nil
		}},
		{"--config beats GWLOCK_LOCK", []string{"GWLOCK_LOCK=/l"}, []string{"run", "--config", "/etc/gw.json", "--", "gw"}, "", func(c *config) error {
			if c.configPath != "/etc/gw.json" || c.lockPath != "" {
				return fmt.Errorf("config %q lock %q, want config /etc/gw.json alone", c.configPath, c.lockPath)
			}
			return nil
		}},
		{"--config beats GWLOCK_CONFIG", []string{"GWLOCK_CONFIG=/etc/env.json"}, []string{"status", "--config", "/etc/flag.json"}, "", func(c *config) error {
			if c.configPath != "/etc/flag.json" {
				return fmt.Errorf("config %q, want /etc/flag.json", c.configPath)
			}
			return nil
		}},
		{"both flags", nil, []string{"status", "--config", "/etc/gw.json", "--lock", "/l"}, "--config and --lock both given", nil},
		{"both variables", []string{"GWLOCK_CONFIG=/etc/gw.json", "GWLOCK_LOCK=/l"}, []string{"status"}, "GWLOCK_CONFIG and GWLOCK_LOCK both set", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearGwlockEnv(t)
			for _, kv := range tc.env {
				t.Setenv(envName(kv), kv[len(envName(kv))+1:])
			}
			c, err := parseFlags(tc.args[0], tc.args[1:])
			var ue *usageError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("parseFlags(%q) with %q: %v, want success", tc.args, tc.env, err)
			case tc.want == "":
				if err := tc.ok(c); err != nil {
					t.Fatalf("parseFlags(%q) with %q: %v", tc.args, tc.env, err)
				}
			case !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("parseFlags(%q) with %q = %v, want a usage error saying %q", tc.args, tc.env, err, tc.want)
			}
		})
	}
}

// TestBadValueTouchesNothing: a bad value ends the run with exit 2 and one
// line before anything exists: no lock dir, no lock file, no gateway.
func TestBadValueTouchesNothing(t *testing.T) {
	dir := lockDir(t)
	cfg := filepath.Join(dir, "gw.json")
	writeLockFile(t, cfg, []byte("{}"), 0)
	pidfile := filepath.Join(dir, "pid")
	gateway := []string{"--", testBinary(t), "helper:gateway", "-pidfile", pidfile}
	// The default lock dir would be made under these, before the fix as after.
	home := []string{"XDG_RUNTIME_DIR=" + dir, "TMPDIR=" + dir, "TMP=" + dir, "TEMP=" + dir, "LOCALAPPDATA=" + dir}
	cases := [][]string{
		{"--config", cfg, "--stale", "2ns"},
		{"--config", cfg, "--poll", "1ns"},
		{"--config", cfg, "--timeout", "inf"},
		{"--config", cfg, "--stop-timeout", "NaN"},
		{"--config", cfg, "--lock-dir", filepath.Join(dir, "locks"), "--timeout", "1e10"},
		{"--lock", filepath.Join(dir, "x.lock"), "--timeout", "-0"},
		{"--lock", filepath.Join(dir, "x.lock"), "--stale", "0"},
	}
	for _, flags := range cases {
		r := runGwlock(t, home, append(append([]string{"run"}, flags...), gateway...)...)
		if r.code != exitUsage {
			t.Errorf("run %q: exit %d, want %d; stderr %q", flags, r.code, exitUsage, r.stderr)
		}
		if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "gwlock: ") {
			t.Errorf("run %q: stderr %q, want one gwlock: line", flags, r.stderr)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "gw.json" {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("run %q: %s holds %q after a usage error, want only gw.json", flags, dir, names)
		}
	}
}

// TestFlagBeatsEnvAcrossModes: real processes, both directions, and the two
// ways of naming the lock twice.
func TestFlagBeatsEnvAcrossModes(t *testing.T) {
	dir := lockDir(t)
	cfg, lock := filepath.Join(dir, "gw.json"), filepath.Join(dir, "flag.lock")
	writeLockFile(t, cfg, []byte("{}"), 0)
	derived := filepath.Join(dir, derivedLockName(cfg))

	r := runGwlock(t, []string{"GWLOCK_CONFIG=" + cfg}, "status", "--lock", lock)
	if r.code != statusNotRunning || !strings.Contains(r.stdout, "lock="+lock+" ") {
		t.Errorf("GWLOCK_CONFIG + --lock: exit %d, stdout %q, stderr %q; want %d for lock %s", r.code, r.stdout, r.stderr, statusNotRunning, lock)
	}
	r = runGwlock(t, []string{"GWLOCK_LOCK=" + lock}, "status", "--config", cfg, "--lock-dir", dir)
	if r.code != statusNotRunning || !strings.Contains(r.stdout, "lock="+derived+" ") {
		t.Errorf("GWLOCK_LOCK + --config: exit %d, stdout %q, stderr %q; want %d for lock %s", r.code, r.stdout, r.stderr, statusNotRunning, derived)
	}
	r = runGwlock(t, []string{"GWLOCK_CONFIG=" + cfg, "GWLOCK_LOCK=" + lock}, "status")
	if r.code != exitUsage || !strings.Contains(r.stderr, "GWLOCK_CONFIG and GWLOCK_LOCK both set") {
		t.Errorf("GWLOCK_CONFIG + GWLOCK_LOCK: exit %d, stderr %q; want %d", r.code, r.stderr, exitUsage)
	}
	r = runGwlock(t, nil, "status", "--config", cfg, "--lock", lock)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--config and --lock both given") {
		t.Errorf("--config + --lock: exit %d, stderr %q; want %d", r.code, r.stderr, exitUsage)
	}
}
