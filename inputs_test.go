package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
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

// flagCase is one command line and environment, and what parsing it gives.
type flagCase struct {
	name string
	env  []string // NAME=value
	args []string
	want string                // in the usage error; "" = no error
	ok   func(c *config) error // checks a parse that succeeded
}

// TestFlagValues: every bad duration is a usage error naming where it came
// from, and naming the lock both ways is refused.
func TestFlagValues(t *testing.T) {
	runFlagCases(t, []flagCase{
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
		{"both flags", nil, []string{"status", "--config", "/etc/gw.json", "--lock", "/l"}, "--config and --lock both given", nil},
		{"both variables", []string{"GWLOCK_CONFIG=/etc/gw.json", "GWLOCK_LOCK=/l"}, []string{"status"}, "GWLOCK_CONFIG and GWLOCK_LOCK both set", nil},
	})
}

// TestFlagPrecedence: the minimums are accepted, and a flag beats any
// variable, across naming modes too.
func TestFlagPrecedence(t *testing.T) {
	runFlagCases(t, []flagCase{
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
	})
}

func runFlagCases(t *testing.T, tests []flagCase) {
	t.Helper()
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
	derived := filepath.Join(dir, derivedLockName(identityOf(t, cfg)))

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

// holdConfigLock starts a gwlock run for cfg whose gateway lives until the
// test stops it, and returns it with the lock it holds.
func holdConfigLock(t *testing.T, cfg, locks string) (*background, string) {
	t.Helper()
	bg := startHelper(t, "gwlock", nil, "run", "--config", cfg, "--lock-dir", locks, "--",
		testBinary(t), "helper:gateway", "-sleep", "60s")
	lock := bg.waitEvent(t, "acquire-start")["lock"]
	bg.waitEvent(t, "child-start")
	return bg, lock
}

// mustContend runs a second starter with --timeout 0 and requires it to find
// held the lock: exit 75 naming that lock, and no second gateway.
func mustContend(t *testing.T, cmd *exec.Cmd, lock string) {
	t.Helper()
	pidfile := filepath.Join(t.TempDir(), "second")
	cmd.Args = append(cmd.Args, "--timeout", "0", "--", testBinary(t), "helper:gateway", "-pidfile", pidfile)
	r := runCmd(t, cmd)
	if r.code != exitBusy {
		t.Fatalf("second starter %q: exit %d, want %d (the first holds the lock); stderr:\n%s", cmd.Args[2:], r.code, exitBusy, r.stderr)
	}
	if ev := mustEvent(t, r.events(), "acquire-timeout", "lock"); ev["lock"] != lock {
		t.Fatalf("second starter waited on %s, want the first's %s", ev["lock"], lock)
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Fatal("a second gateway started")
	}
}

// stopHolder stops a holdConfigLock run and checks it left no lock.
func stopHolder(t *testing.T, bg *background, lock string) {
	t.Helper()
	bg.signal(t, os.Interrupt)
	bg.wait(t)
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Fatalf("lock %s left after the holder stopped: %v", lock, err)
	}
}

// TestConfigMapSwapKeepsLock: a Kubernetes ConfigMap volume updates by
// writing a new timestamped directory and renaming a symlink ..data over the
// old one; config.json -> ..data/config.json never changes. A starter after
// the update must contend with the gateway started before it.
func TestConfigMapSwapKeepsLock(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Wine's symlinks are not resolved by EvalSymlinks")
	}
	volume, locks := tempDir(t), lockDir(t)
	writeVersion := func(name string) {
		if err := os.Mkdir(filepath.Join(volume, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeLockFile(t, filepath.Join(volume, name, "config.json"), []byte(`{"v":"`+name+`"}`), 0)
		tmp := filepath.Join(volume, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(volume, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion("..2026_11_27_15_00_00.000000001")
	cfg := filepath.Join(volume, "config.json")
	if err := os.Symlink(filepath.Join("..data", "config.json"), cfg); err != nil {
		t.Fatal(err)
	}
	bg, lock := holdConfigLock(t, cfg, locks)

	writeVersion("..2026_11_27_15_05_00.000000002")
	if err := os.RemoveAll(filepath.Join(volume, "..2026_11_27_15_00_00.000000001")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), "000000002") {
		t.Fatalf("the swap did not happen: config reads %q", b)
	}
	mustContend(t, helperCmd(t, "gwlock", "run", "--config", cfg, "--lock-dir", locks), lock)
	r := runGwlock(t, nil, "status", "--config", cfg, "--lock-dir", locks)
	if r.code != statusRunning || !strings.Contains(r.stdout, "lock="+lock+" ") {
		t.Errorf("status after the swap: exit %d %q, want %d for %s", r.code, r.stdout, statusRunning, lock)
	}
	stopHolder(t, bg, lock)
}

// TestConfigDotDotAfterSymlink: "link/../app.json" is where the kernel goes,
// the parent of the link's target, not the directory holding the link. A
// decoy where lexical cleaning would land proves which one names the lock;
// run (relative and absolute spellings), status and unlock all agree.
func TestConfigDotDotAfterSymlink(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows resolves .. by text before links, as filepath.Abs does")
	}
	root, locks := tempDir(t), lockDir(t)
	if err := os.MkdirAll(filepath.Join(root, "etc", "gateway"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(root, "etc", "app.json")
	writeLockFile(t, cfg, []byte("{}"), 0)
	writeLockFile(t, filepath.Join(root, "app.json"), []byte(`{"decoy":true}`), 0)
	if err := os.Symlink(filepath.Join("etc", "gateway"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	spelled := filepath.Join(root, "link") + "/../app.json" // filepath.Join would clean it
	bg, lock := holdConfigLock(t, cfg, locks)

	mustContend(t, helperCmd(t, "gwlock", "run", "--config", spelled, "--lock-dir", locks), lock)
	relative := helperCmd(t, "gwlock", "run", "--config", "link/../app.json", "--lock-dir", locks)
	relative.Dir = root
	mustContend(t, relative, lock)
	r := runGwlock(t, nil, "status", "--config", spelled, "--lock-dir", locks)
	if r.code != statusRunning || !strings.Contains(r.stdout, "lock="+lock+" ") {
		t.Errorf("status --config %s: exit %d %q, want %d for %s", spelled, r.code, r.stdout, statusRunning, lock)
	}
	// Refused, not "nothing to remove": unlock found the live owner's lock.
	if r := runGwlock(t, nil, "unlock", "--config", spelled, "--lock-dir", locks); r.code != exitFailure || !strings.Contains(r.stderr, "refused") {
		t.Errorf("unlock --config %s: exit %d %q, want %d and a refusal", spelled, r.code, r.stderr, exitFailure)
	}
	stopHolder(t, bg, lock)
}

// TestConfigNotAFile: a config that does not exist or is a directory is exit
// 66 for run and unlock, one line naming it and where it came from, with
// nothing created and no gateway started; status still names the lock a
// missing config would have.
func TestConfigNotAFile(t *testing.T) {
	dir := lockDir(t)
	missing := filepath.Join(dir, "gw.jsn")
	pidfile := filepath.Join(dir, "pid")
	gateway := []string{"--", testBinary(t), "helper:gateway", "-pidfile", pidfile}
	home := []string{"XDG_RUNTIME_DIR=" + dir, "TMPDIR=" + dir, "TMP=" + dir, "TEMP=" + dir, "LOCALAPPDATA=" + dir}
	file := filepath.Join(tempDir(t), "file")
	writeLockFile(t, file, nil, 0)
	underFile := filepath.Join(file, "gw.json")
	cases := []struct {
		name, path, why string
		env             []string
		args            []string
	}{
		{"run, missing", missing, "no such file", nil, append([]string{"run", "--config", missing}, gateway...)},
		{"run, a directory", dir, "is a directory", nil, append([]string{"run", "--config", dir}, gateway...)},
		{"run, a directory with a slash", dir + string(filepath.Separator), "is a directory", nil, append([]string{"run", "--config", dir + string(filepath.Separator)}, gateway...)},
		{"run, under a file", underFile, "not a directory", nil, append([]string{"run", "--config", underFile}, gateway...)},
		{"run, from the environment", missing, "GWLOCK_CONFIG must name", []string{"GWLOCK_CONFIG=" + missing}, append([]string{"run"}, gateway...)},
		{"unlock, missing", missing, "--config must name", nil, []string{"unlock", "--config", missing}},
		{"status, a directory", dir, "is a directory", nil, []string{"status", "--config", dir}},
	}
	for _, tc := range cases {
		r := runGwlock(t, append(home, tc.env...), tc.args...)
		if r.code != exitNoInput {
			t.Errorf("%s: exit %d, want %d; stderr %q", tc.name, r.code, exitNoInput, r.stderr)
		}
		line := strings.TrimSpace(r.stderr)
		why := tc.why
		if runtime.GOOS == "windows" && (why == "no such file" || why == "not a directory") {
			why = "" // the OS's own words differ there
		}
		named := strings.TrimSuffix(tc.path, string(filepath.Separator)) // Windows cleans it away
		if strings.Contains(line, "\n") || !strings.HasPrefix(line, "gwlock: config "+named) || !strings.Contains(line, why) || !strings.Contains(line, "hint:") {
			t.Errorf("%s: stderr %q, want one line naming %s, saying %q, with a hint", tc.name, r.stderr, tc.path, tc.why)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("%s: %s is no longer empty: %v", tc.name, dir, ents)
		}
	}
	r := runGwlock(t, home, "status", "--config", missing, "--lock-dir", dir)
	if want := filepath.Join(dir, derivedLockName(identityOf(t, missing))); r.code != statusNotRunning || !strings.Contains(r.stdout, "lock="+want+" ") {
		t.Errorf("status of a missing config: exit %d %q, want %d for %s", r.code, r.stdout, statusNotRunning, want)
	}
}

// identityOf is the name a config path gives its lock, existing or not:
// temp dirs sit behind symlinks on some systems (macOS /var -> /private/var).
func identityOf(t *testing.T, path string) string {
	t.Helper()
	id, err := configIdentity(path)
	if id == "" {
		t.Fatal(err)
	}
	return id
}
