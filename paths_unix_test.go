//go:build unix

package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func init() {
	// helper:gwlock-in ROOT ARGS... is gwlock with the default lock dirs'
	// parents under ROOT, so tests never write the real /run/gwlock or
	// /tmp/gwlock-<uid> that other test runs on this host may be using.
	helpers["gwlock-in"] = func(args []string) int {
		root := args[0]
		defaultDirBases.root = filepath.Join(root, "run")
		defaultDirBases.rootFallback = filepath.Join(root, "var", "run")
		defaultDirBases.user = filepath.Join(root, "tmp")
		return cli(args[1:], os.Stdout, stderrWriter)
	}
}

// victim is a non-root uid that nothing on the host uses; nobody squats.
const victim = 4242

// fakeRoot makes a scratch tree with the default dirs' parents: run (0755)
// and tmp (1777, like /tmp), entered by every uid.
func fakeRoot(t *testing.T) string {
	t.Helper()
	root, err := os.MkdirTemp("", "gwlock-test-root")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	mustChmod(t, root, 0o755)
	for dir, mode := range map[string]os.FileMode{"run": 0o755, "tmp": 0o777 | os.ModeSticky} {
		p := filepath.Join(root, dir)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		mustChmod(t, p, mode)
	}
	return root
}

func mustChmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// defaultLockDirUnder is the default lock dir of uid in a fakeRoot.
func defaultLockDirUnder(root string, uid int) string {
	if uid == 0 {
		return filepath.Join(root, "run", "gwlock")
	}
	return filepath.Join(root, "tmp", "gwlock-"+strconv.Itoa(uid))
}

// asUser makes cmd (a helperCmd) run as uid, through exe, a copy of the test
// binary that every user may execute (sharedTestBinary).
func asUser(t *testing.T, cmd *exec.Cmd, uid int, exe string) *exec.Cmd {
	t.Helper()
	requireRoot(t)
	cmd.Path = exe
	cmd.Args[0] = exe
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	return cmd
}

// sharedTestBinary copies the test binary where every user may execute it:
// go test builds it in a directory only its owner can enter.
func sharedTestBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gwlock-test-bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	mustChmod(t, dir, 0o755)
	src, err := os.Open(testBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	exe := filepath.Join(dir, "gwlock.test")
	dst, err := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return exe
}

// userDir is a directory owned by uid, for its pid files and configs.
func userDir(t *testing.T, root string, uid int) string {
	t.Helper()
	d := filepath.Join(root, "home-"+strconv.Itoa(uid))
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, uid, uid); err != nil {
		t.Fatal(err)
	}
	writeLockFile(t, filepath.Join(d, "gw.json"), []byte("{}"), 0)
	if err := os.Chmod(filepath.Join(d, "gw.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDefaultLockDirIgnoresEnvironment: the default lock dir depends on the
// uid alone, whatever XDG_RUNTIME_DIR and TMPDIR say.
func TestDefaultLockDirIgnoresEnvironment(t *testing.T) {
	want := defaultLockDir()
	if os.Geteuid() == 0 && want != "/run/gwlock" && want != "/var/run/gwlock" {
		t.Fatalf("root's defaultLockDir() = %s, want /run/gwlock (or /var/run/gwlock without /run)", want)
	}
	if uid := os.Geteuid(); uid != 0 && want != "/tmp/gwlock-"+strconv.Itoa(uid) {
		t.Fatalf("defaultLockDir() = %s, want /tmp/gwlock-%d", want, uid)
	}
	for _, env := range [][2]string{{"XDG_RUNTIME_DIR", t.TempDir()}, {"TMPDIR", t.TempDir()}} {
		t.Setenv(env[0], env[1])
		if got := defaultLockDir(); got != want {
			t.Fatalf("with %s=%s: defaultLockDir() = %s, want %s", env[0], env[1], got, want)
		}
	}
}

// TestTwoEnvironmentsOneConfig: starters of one config as the same user, one
// from a login shell (XDG_RUNTIME_DIR, a private TMPDIR) and one from cron or
// sudo (neither), take the same lock: the second finds the first's gateway
// running and starts none. As root and as an ordinary user, real processes.
func TestTwoEnvironmentsOneConfig(t *testing.T) {
	for _, uid := range []int{0, victim} {
		t.Run("uid-"+strconv.Itoa(uid), func(t *testing.T) { checkOneGatewayPerConfig(t, uid) })
	}
}

// envStarter starts `gwlock run` for one config as uid, in a fake root.
type envStarter struct {
	root, cfg, pidfile, exe string
	uid                     int
}

// command runs a gateway that sleeps for sleep (the first runs until
// stopped; a second would exit at once), with env added.
func (s envStarter) command(t *testing.T, sleep string, env ...string) *exec.Cmd {
	cmd := helperCmd(t, "gwlock-in", s.root, "run", "--config", s.cfg, "--timeout", "0", "--",
		s.exe, "helper:gateway", "-sleep", sleep, "-pidfile", s.pidfile)
	cmd.Env = append(cmd.Env, env...)
	if s.uid != 0 {
		asUser(t, cmd, s.uid, s.exe)
	}
	return cmd
}

// checkOneGatewayPerConfig starts two gwlocks for one config as uid with
// different XDG_RUNTIME_DIR and TMPDIR: both name the same lock, and the
// second finds the first's gateway.
func checkOneGatewayPerConfig(t *testing.T, uid int) {
	root := fakeRoot(t)
	home := userDir(t, root, uid)
	login, other := filepath.Join(home, "xdg"), filepath.Join(home, "tmp")
	for _, d := range []string{login, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		_ = os.Chown(d, uid, uid)
	}
	s := envStarter{root: root, cfg: filepath.Join(home, "gw.json"), pidfile: filepath.Join(home, "pid"), exe: testBinary(t), uid: uid}
	if uid != 0 {
		s.exe = sharedTestBinary(t)
	}
	first := s.command(t, "60s", "XDG_RUNTIME_DIR="+login, "TMPDIR="+login)
	var firstErr lockedBuffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = first.Process.Kill()
		for _, pid := range readPIDs(t, s.pidfile) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	waitFile(t, s.pidfile)
	second := runCmd(t, s.command(t, "1ms", "XDG_RUNTIME_DIR=", "TMPDIR="+other, "TMP="+other))
	if second.code != exitBusy {
		t.Fatalf("second starter (no XDG_RUNTIME_DIR, other TMPDIR): exit %d, want %d: two gateways for one config\nfirst:\n%s\nsecond:\n%s",
			second.code, exitBusy, firstErr.String(), second.stderr)
	}
	want := filepath.Join(defaultLockDirUnder(root, uid), derivedLockName(s.cfg))
	for name, out := range map[string]string{"first": firstErr.String(), "second": second.stderr} {
		if ev := mustEvent(t, parseLogfmt(out), "acquire-start", "lock"); ev["lock"] != want {
			t.Errorf("%s starter's lock = %s, want %s", name, ev["lock"], want)
		}
	}
	if pids := readPIDs(t, s.pidfile); len(pids) != 1 {
		t.Fatalf("%d gateways started, want 1", len(pids))
	}
	_ = first.Process.Signal(syscall.SIGTERM)
	if err := first.Wait(); err == nil || first.ProcessState.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Fatalf("first starter after SIGTERM: %v, want exit %d", err, 128+int(syscall.SIGTERM))
	}
}

// TestSquattedDefaultDir: another user (nobody) creates an ordinary user's
// default dir first, as a directory, a symlink to its own directory, or a
// file. The user's gwlock refuses with exit 77 and one line naming the
// squatter's uid and --lock-dir, starts nothing and touches nothing. Root's
// default lives where nobody cannot write, so the same squat of
// <tmp>/gwlock-0 does not stop root.
func TestSquattedDefaultDir(t *testing.T) {
	requireRoot(t)
	squats := map[string]func(t *testing.T, path, bait string){
		"directory": squatWithDir,
		"symlink":   squatWithLink,
		"file":      squatWithFile,
	}
	for name, squat := range squats {
		t.Run(name, func(t *testing.T) { checkSquatRefused(t, squat) })
	}
}

func squatWithDir(t *testing.T, path, _ string) {
	if err := os.Mkdir(path, 0o777); err != nil {
		t.Fatal(err)
	}
	mustChmod(t, path, 0o777)
	mustChown(t, path, nobody)
}

func squatWithLink(t *testing.T, path, bait string) {
	if err := os.Symlink(bait, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
}

func squatWithFile(t *testing.T, path, _ string) {
	writeLockFile(t, path, []byte("squat"), 0)
	mustChmod(t, path, 0o666)
	mustChown(t, path, nobody)
}

// checkSquatRefused: the victim's default dir squatted by nobody is refused
// at once in one line naming the squatter, nothing is written through it,
// and root, whose default is elsewhere, is not hindered by the same squat.
func checkSquatRefused(t *testing.T, squat func(t *testing.T, path, bait string)) {
	root := fakeRoot(t)
	home := userDir(t, root, victim)
	bait := userDir(t, root, nobody)
	mustChmod(t, bait, 0o777)
	def := defaultLockDirUnder(root, victim)
	squat(t, def, bait)
	pidfile := filepath.Join(home, "pid")
	cmd := asUser(t, helperCmd(t, "gwlock-in", root, "run", "--config", filepath.Join(home, "gw.json"), "--",
		"/bin/sh", "-c", "echo $$ > "+pidfile), victim, sharedTestBinary(t))
	before := time.Now()
	r := runCmd(t, cmd)
	if r.code != exitUnsafe {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitUnsafe, r.stderr)
	}
	if took := time.Since(before); took > eventWait {
		t.Errorf("refusal took %s", took)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"gwlock: lock dir " + def, "uid 65534", "--lock-dir", "hint:"} {
		if !strings.Contains(last, want) {
			t.Errorf("error line %q lacks %q", last, want)
		}
	}
	if _, err := os.Stat(pidfile); err == nil {
		t.Error("the gateway started")
	}
	if ents, _ := os.ReadDir(bait); len(ents) != 1 { // gw.json only
		t.Errorf("the squatter's directory holds %d entries, want 1: written through the squat", len(ents))
	}
	if fi, err := os.Lstat(def); err != nil || int(fi.Sys().(*syscall.Stat_t).Uid) != nobody {
		t.Errorf("the squatted path changed: %v", err)
	}
	// Root's default is not in the squattable tmp: the same squat of
	// root's name there changes nothing for root.
	squat(t, filepath.Join(root, "tmp", "gwlock-0"), bait)
	if r := runCmd(t, helperCmd(t, "gwlock-in", root, "run", "--config", filepath.Join(home, "gw.json"), "--", "true")); r.code != 0 {
		t.Fatalf("root beside a squatted %s/gwlock-0: exit %d, want 0\n%s", filepath.Join(root, "tmp"), r.code, r.stderr)
	}
}

func mustChown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Chown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// TestExplicitPathSymlinks: an explicit lock path may go
// through symlinks that only root or we can have made or changed (owned by
// root or us, in a directory owned by root or us that nobody else can
// write), like /var/run -> /run or macOS /tmp -> /private/tmp. Any other
// symlink is refused with exit 77 and one line saying it is a symlink and
// where it points; a symlinked lock dir is no longer "not a directory".
func TestExplicitPathSymlinks(t *testing.T) {
	requireRoot(t)
	root := fakeRoot(t)
	real := plantLinkTree(t, root)
	for _, tc := range explicitPathCases(t, root, real) {
		t.Run(tc.name, func(t *testing.T) { checkExplicitPath(t, real, tc) })
	}
	// This host's own /var/run, if it is root's symlink to /run: status
	// reads through it (and creates nothing).
	if target, err := os.Readlink("/var/run"); err == nil {
		lock := "/var/run/gwlock-test-" + strconv.Itoa(os.Getpid()) + ".lock"
		if r := runGwlock(t, nil, "status", "--lock", lock); r.code != statusNotRunning {
			t.Errorf("status --lock %s (/var/run -> %s): exit %d, want %d\n%s", lock, target, r.code, statusNotRunning, r.stderr)
		}
	}
}

func mustMkdirOwned(t *testing.T, path string, mode os.FileMode, uid int) {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	mustChmod(t, path, mode)
	mustChown(t, path, uid)
}

func mustLinkOwned(t *testing.T, target, path string, uid int) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// plantLinkTree makes root/real, the lock dir, and the links to it that
// explicitPathCases walk; it returns root/real.
func plantLinkTree(t *testing.T, root string) string {
	real := filepath.Join(root, "real")
	mustMkdirOwned(t, real, 0o700, 0)
	mustMkdirOwned(t, filepath.Join(root, "var"), 0o755, 0)
	mustLinkOwned(t, "../real", filepath.Join(root, "var", "run"), 0)                  // root's, in root's 0755 dir
	mustLinkOwned(t, filepath.Join(root, "var"), filepath.Join(root, "sys-var"), 0)    // a chain: sys-var -> var, var/run -> ../real
	mustLinkOwned(t, real, filepath.Join(root, "tmp", "in-tmp"), 0)                    // root's, in a dir anyone writes
	mustLinkOwned(t, filepath.Join(root, "var"), filepath.Join(root, "tmp", "var"), 0) // the same, to a dir
	mustLinkOwned(t, real, filepath.Join(root, "var", "nobodys"), nobody)              // nobody's
	mustMkdirOwned(t, filepath.Join(root, "nbhome"), 0o755, nobody)                    // nobody's dir
	mustLinkOwned(t, real, filepath.Join(root, "nbhome", "link"), 0)                   // root's link in it
	mustLinkOwned(t, "loop", filepath.Join(root, "var", "loop"), 0)                    // a loop of trusted links
	return real
}

// explicitPathCase is a run with a lock path through plantLinkTree's links:
// its exit code and what its one error line must mention.
type explicitPathCase struct {
	name     string
	args     []string
	code     int
	mentions []string
}

func explicitPathCases(t *testing.T, root, real string) []explicitPathCase {
	return []explicitPathCase{
		{"var-run", []string{"--lock", filepath.Join(root, "var", "run", "x.lock")}, 0, nil},
		{"var-run-as-lock-dir", []string{"--lock-dir", filepath.Join(root, "var", "run"), "--config", existingConfig(t)}, 0, nil},
		{"chain", []string{"--lock", filepath.Join(root, "sys-var", "run", "x.lock")}, 0, nil},
		{"dir-in-tmp", []string{"--lock-dir", filepath.Join(root, "tmp", "in-tmp"), "--config", existingConfig(t)}, exitUnsafe,
			[]string{"is a symlink to " + real + " owned by uid 0", "can be written by others"}},
		{"through-tmp", []string{"--lock", filepath.Join(root, "tmp", "var", "run", "x.lock")}, exitUnsafe,
			[]string{"goes through " + filepath.Join(root, "tmp", "var") + ", which is a symlink to " + filepath.Join(root, "var")}},
		{"nobodys-link", []string{"--lock", filepath.Join(root, "var", "nobodys", "x.lock")}, exitUnsafe,
			[]string{"symlink to " + real + " owned by uid 65534", "owned by root or us"}},
		{"link-in-nobodys-dir", []string{"--lock", filepath.Join(root, "nbhome", "link", "x.lock")}, exitUnsafe,
			[]string{"symlink to " + real + " owned by uid 0", "is owned by uid 65534"}},
		{"loop", []string{"--lock", filepath.Join(root, "var", "loop", "x.lock")}, exitUnsafe,
			[]string{"symlink to loop", "more than 40 symlinks"}},
	}
}

func checkExplicitPath(t *testing.T, real string, tc explicitPathCase) {
	r := runGwlock(t, nil, append(append([]string{"run"}, tc.args...), "--", "true")...)
	if r.code != tc.code {
		t.Fatalf("exit %d, want %d\n%s", r.code, tc.code, r.stderr)
	}
	if tc.code == 0 {
		if ents, _ := os.ReadDir(real); len(ents) != 0 {
			t.Fatalf("lock dir after the run holds %d entries, want none", len(ents))
		}
		return
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	last := lines[len(lines)-1]
	if len(lines) != 1 || !strings.HasPrefix(last, "gwlock: lock dir ") || !strings.Contains(last, "(hint: ") || strings.Contains(last, "not a directory") {
		t.Errorf("stderr %q: want one line \"gwlock: lock dir ...: ... (hint: ...)\" that does not call a symlink \"not a directory\"", r.stderr)
	}
	for _, want := range tc.mentions {
		if !strings.Contains(last, want) {
			t.Errorf("error line %q lacks %q", last, want)
		}
	}
}

// TestRootDefaultWithoutRun: where there is no /run, root's default is
// /var/run/gwlock, created 0700.
func TestRootDefaultWithoutRun(t *testing.T) {
	requireRoot(t)
	root := fakeRoot(t)
	if err := os.Remove(filepath.Join(root, "run")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "var", "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := runGwlockHelper(t, "gwlock-in", root, "run", "--config", existingConfig(t), "--", "true")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	want := filepath.Join(root, "var", "run", "gwlock")
	if ev := mustEvent(t, r.events(), "acquire-start", "lock"); filepath.Dir(ev["lock"]) != want {
		t.Fatalf("lock = %s, want one in %s", ev["lock"], want)
	}
	if fi, err := os.Lstat(want); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v, %v; want a 0700 directory", want, fi, err)
	}
}

// TestRealDefaultDirs runs the binary as built, without fakeRoot, in a
// private mount namespace whose /run and /tmp are fresh tmpfs mounts: root's
// lock lands in /run/gwlock and another uid's in /tmp/gwlock-<uid>, both
// 0700 and their own, whatever XDG_RUNTIME_DIR and TMPDIR say. The host's
// real /run and /tmp are never touched.
func TestRealDefaultDirs(t *testing.T) {
	requireLinux(t)
	requireRoot(t)
	if err := exec.Command("unshare", "--mount", "true").Run(); err != nil {
		t.Skipf("unshare --mount unavailable here (%v)", err)
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	// The test binary sits under the host's /tmp: copy it to the private
	// /run before a private /tmp hides it.
	script := `set -e
mount -t tmpfs -o mode=0755 tmpfs /run
cp "$1" /run/gw.test
mount -t tmpfs -o mode=1777 tmpfs /tmp
echo '{}' > /run/gw.json; chmod 644 /run/gw.json
env XDG_RUNTIME_DIR=/run TMPDIR=/run /run/gw.test helper:gwlock run -q --config /run/gw.json -- true
setpriv --reuid ` + strconv.Itoa(victim) + ` --regid ` + strconv.Itoa(victim) + ` --clear-groups env XDG_RUNTIME_DIR=/run TMPDIR=/run /run/gw.test helper:gwlock run -q --config /run/gw.json -- true
stat -c '%n %u %a %F' /run/gwlock /tmp/gwlock-` + strconv.Itoa(victim) + `
`
	cmd := exec.Command("unshare", "--mount", "sh", "-c", script, "sh", testBinary(t))
	cmd.Env = cleanEnv()
	r := runCmd(t, cmd)
	want := "/run/gwlock 0 700 directory\n/tmp/gwlock-" + strconv.Itoa(victim) + " " + strconv.Itoa(victim) + " 700 directory\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("exit %d, stdout %q, want %q\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
	}
}

// TestResolveDirWithoutOpenat2: the component walk alone (kernels before
// openat2, and every OS but Linux) opens the same directory as the fast path,
// through trusted symlinks as well.
func TestResolveDirWithoutOpenat2(t *testing.T) {
	dir := lockDir(t)
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"ab": "a/b", "up": "a/b/../../a/b"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	saved := openNoSymlinks
	openNoSymlinks = nil
	defer func() { openNoSymlinks = saved }()
	want, err := os.Stat(sub)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{sub, filepath.Join(dir, "ab"), filepath.Join(dir, "up")} {
		fd, err := resolveDir(path)
		if err != nil {
			t.Fatalf("resolveDir(%s): %v", path, err)
		}
		f := os.NewFile(uintptr(fd), path)
		got, err := f.Stat()
		f.Close()
		if err != nil || !os.SameFile(got, want) {
			t.Errorf("resolveDir(%s) opened %v (%v), want %s", path, got, err, sub)
		}
	}
}

// TestConfigWithoutStableName: a config that is a pipe, a device or a
// per-process name (/dev/fd/N, which resolves to /proc/<pid>/fd/N) would
// name a different lock for every starter, or one lock for every config:
// run refuses it (66) in one line, and starts and creates nothing.
func TestConfigWithoutStableName(t *testing.T) {
	dir := lockDir(t)
	fifo := filepath.Join(tempDir(t), "config.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	regular := filepath.Join(tempDir(t), "config.json")
	if err := os.WriteFile(regular, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(tempDir(t), "pid")
	for _, tc := range []struct{ name, config, why string }{
		{"a FIFO", fifo, "not a regular file"},
		{"stdin (/dev/null here)", "/dev/stdin", "not a regular file"},
		{"a regular file by descriptor", "/dev/fd/3", "per-process name"},
	} {
		cmd := helperCmd(t, "gwlock", "run", "--config", tc.config, "--lock-dir", dir, "--timeout", "0", "--",
			testBinary(t), "helper:gateway", "-pidfile", pidfile)
		f, err := os.Open(regular)
		if err != nil {
			t.Fatal(err)
		}
		cmd.ExtraFiles = []*os.File{f}
		r := runCmd(t, cmd)
		f.Close()
		line := strings.TrimSpace(r.stderr)
		if r.code != exitNoInput || strings.Contains(line, "\n") || !strings.Contains(line, tc.why) || !strings.Contains(line, "hint:") {
			t.Errorf("%s: exit %d, stderr %q; want %d and one line saying %q", tc.name, r.code, r.stderr, exitNoInput, tc.why)
		}
		if _, err := os.Lstat(pidfile); err == nil {
			t.Fatalf("%s: a gateway started", tc.name)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("%s: %s is no longer empty: %v", tc.name, dir, ents)
		}
	}
}

// TestConfigTooLongForTheRecord (POSIX: the gateway is sh, and "<" is no
// character of a Windows name): a --config path whose payload would leave
// no room for the gateway's record (its pid, start time, descendants and
// uids, up to 4 KiB in all) is refused before any lock exists, naming the
// fix; one that leaves room gets its gateway recorded. JSON escaping counts:
// "<" takes six bytes. Fails with the room left unchecked: the run goes on,
// and every later record of the tree fails unseen.
func TestConfigTooLongForTheRecord(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		fits bool
	}{{strings.Repeat("<", 600), false}, {strings.Repeat("c", 600), true}} {
		cfgDir := filepath.Join(dir, c.name[:1]+"s", c.name[:200], c.name[200:400], c.name[400:])
		if err := os.MkdirAll(cfgDir, 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(cfgDir, "gw.json")
		if err := os.WriteFile(cfg, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		locks := filepath.Join(dir, "locks-"+c.name[:1])
		if err := os.Mkdir(locks, 0o700); err != nil {
			t.Fatal(err)
		}
		r := runGwlock(t, nil, "run", "--config", cfg, "--lock-dir", locks, "--", "sh", "-c", `cat "$GWLOCK_LOCK_PATH"`)
		entries, _ := os.ReadDir(locks)
		switch {
		case c.fits && (r.code != 0 || !strings.Contains(r.stdout, `"childPid"`)):
			t.Errorf("%d-byte path: exit %d, payload %q; want 0 and the gateway recorded\n%s", len(cfg), r.code, r.stdout, r.stderr)
		case !c.fits && (r.code == 0 || !strings.Contains(r.stderr, "shorten --config") || len(entries) != 0):
			t.Errorf("%d-byte path of '<': exit %d, %d files left; want a refusal naming --config and no lock\n%s", len(cfg), r.code, len(entries), r.stderr)
		}
	}
}
