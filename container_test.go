//go:build linux

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeDockerfile returns the ENTRYPOINT and CMD of the README's container
// recipe, so the test runs exactly what the README tells users to ship.
func readmeDockerfile(t *testing.T) (entrypoint, cmd []string) {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```dockerfile\n(.*?)```").FindSubmatch(b)
	if block == nil {
		t.Fatal("README.md has no ```dockerfile block")
	}
	for _, line := range strings.Split(string(block[1]), "\n") {
		for prefix, dst := range map[string]*[]string{"ENTRYPOINT ": &entrypoint, "CMD ": &cmd} {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				if err := json.Unmarshal([]byte(rest), dst); err != nil {
					t.Fatalf("README Dockerfile %s: %v", line, err)
				}
			}
		}
	}
	if len(entrypoint) == 0 || len(cmd) == 0 {
		t.Fatalf("README Dockerfile: ENTRYPOINT %q, CMD %q; want both in exec (JSON) form", entrypoint, cmd)
	}
	return entrypoint, cmd
}

// TestContainerRecipe runs the README's Dockerfile entrypoint as PID 1 of a
// new PID namespace, as docker would: its paths moved into a temp dir, its
// port a free one, and the test's fake gateway in place of the user's. As
// PID 1, gwlock must hold the lock, reap the zombies re-parented to it, and
// pass a stop signal to the gateway, exiting with the gateway's code.
func TestContainerRecipe(t *testing.T) {
	unshareWorks(t)
	entrypoint, cmd := readmeDockerfile(t)
	dir := lockDir(t)
	port := strconv.Itoa(freePort(t))
	inImage, lockDirInImage := containerImage(t, dir, port)
	argv := imageArgv(t, entrypoint, cmd, inImage)
	pidFile, sigFile, report := filepath.Join(dir, "pid"), filepath.Join(dir, "signals"), filepath.Join(dir, "zombies")
	const stopCode = 42
	args := append([]string{"--pid", "--fork", "--mount-proc", argv[0], "helper:gwlock"}, argv[1:]...)
	args = append(args, "--", testBinary(t), "helper:gateway", "-listen", port, "-pidfile", pidFile,
		"-sigfile", sigFile, "-term-exit", strconv.Itoa(stopCode), "-orphans", "3", "-zombie-report", report)
	unshare := exec.Command("unshare", args...)
	unshare.Env = cleanEnv()
	var out lockedBuffer
	unshare.Stdout, unshare.Stderr = &out, &out
	if err := unshare.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unshare.Process.Kill() })
	waitFile(t, pidFile)
	if n := strings.TrimSpace(string(waitFile(t, report))); n != "0" {
		t.Fatalf("gwlock as PID 1 left %s zombies\n%s", n, out.String())
	}
	locks, _ := filepath.Glob(filepath.Join(lockDirInImage, "gateway.*.lock"))
	if len(locks) != 1 {
		t.Fatalf("lock files in the image's lock dir = %q, want one\n%s", locks, out.String())
	}
	if code := dockerStop(t, unshare, &out); code != stopCode {
		t.Fatalf("exit after SIGTERM to PID 1 = %d, want the gateway's %d\n%s", code, stopCode, out.String())
	}
	if got := strings.TrimSpace(string(waitFile(t, sigFile))); got != syscall.SIGTERM.String() {
		t.Fatalf("gateway received %q, want %q", got, syscall.SIGTERM.String())
	}
	if locks, _ := filepath.Glob(filepath.Join(lockDirInImage, "gateway.*.lock")); len(locks) != 0 {
		t.Fatalf("lock files left after the gateway stopped: %q", locks)
	}
}

// containerImage makes the files the README's image has, under dir, and
// maps each path (and the port) the Dockerfile names to its stand-in.
func containerImage(t *testing.T, dir, port string) (inImage map[string]string, lockDirInImage string) {
	t.Helper()
	config := filepath.Join(dir, "config.json")
	if err := os.WriteFile(config, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lockDirInImage = filepath.Join(dir, "run-gwlock")
	if err := os.Mkdir(lockDirInImage, 0o700); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"/gwlock":                  testBinary(t),
		"/etc/gateway/config.json": config,
		"/run/gwlock":              lockDirInImage,
		"18789":                    port,
	}, lockDirInImage
}

// imageArgv is the ENTRYPOINT up to its "--", each name replaced by its
// stand-in in inImage; a path the test does not map fails it.
func imageArgv(t *testing.T, entrypoint, cmd []string, inImage map[string]string) []string {
	t.Helper()
	sep := -1
	var argv []string
	for i, arg := range entrypoint {
		if arg == "--" {
			sep = i
			break
		}
		if to, ok := inImage[arg]; ok {
			arg = to
		} else if strings.HasPrefix(arg, "/") {
			t.Fatalf("README Dockerfile names %s, which this test does not map", arg)
		}
		argv = append(argv, arg)
	}
	if sep < 0 || argv[0] != testBinary(t) || len(cmd) == 0 {
		t.Fatalf("README Dockerfile: ENTRYPOINT %q must be /gwlock ... -- and CMD the gateway", entrypoint)
	}
	return argv
}

// dockerStop does what docker stop does, SIGTERM to the container's PID 1
// (unshare's child), and returns the container's exit code.
func dockerStop(t *testing.T, unshare *exec.Cmd, out *lockedBuffer) int {
	t.Helper()
	pid1 := namespacePID1(t, unshare.Process.Pid)
	if err := syscall.Kill(pid1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- unshare.Wait() }()
	select {
	case <-done:
	case <-time.After(eventWait):
		t.Fatalf("gwlock as PID 1 did not end after SIGTERM\n%s", out.String())
	}
	return unshare.ProcessState.ExitCode()
}

// namespacePID1 is the host pid of unshare --fork's only child.
func namespacePID1(t *testing.T, unsharePID int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(unsharePID) + "/task/" + strconv.Itoa(unsharePID) + "/children")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 1 {
		t.Fatalf("unshare's children = %q, want one", fields)
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestReadmeBuildRunsInEmptyRoot builds gwlock with the README's install line
// and runs the README's container entrypoint in a root that holds nothing but
// the binary, its config and its lock dir: no libc, no /proc, no /dev, no
// /tmp, harsher than FROM scratch. A dynamically linked binary cannot even
// start there (its ELF interpreter is missing).
func TestReadmeBuildRunsInEmptyRoot(t *testing.T) {
	unshareWorks(t)
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^    ((?:[A-Z_]+=\S* )*go build [^#\n]*-o gwlock[^#\n]*?)\s*#`).FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no indented `... go build ... -o gwlock ...` install line")
	}
	root := t.TempDir()
	var env, argv []string
	for _, word := range strings.Fields(string(m[1])) {
		switch {
		case argv == nil && strings.Contains(word, "="):
			env = append(env, word)
		case len(argv) > 0 && argv[len(argv)-1] == "-o":
			argv = append(argv, filepath.Join(root, "gwlock"))
		default:
			argv = append(argv, word)
		}
	}
	build := exec.Command(argv[0], argv[1:]...)
	build.Env = append(os.Environ(), env...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", m[1], err, out)
	}
	entrypoint, _ := readmeDockerfile(t)
	for _, dir := range []string{"etc/gateway", "run/gwlock"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/gateway/config.json"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The image's entrypoint with gwlock itself as the gateway, without the
	// port (nothing would listen on it).
	var args []string
	for i := 0; i < len(entrypoint); i++ {
		if entrypoint[i] == "--port" {
			i++
			continue
		}
		args = append(args, entrypoint[i])
	}
	args = append(args, "/gwlock", "version")
	cmd := exec.Command("unshare", append([]string{"--pid", "--fork", "--root", root}, args...)...)
	cmd.Env = cleanEnv()
	r := runCmd(t, cmd)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "gwlock ") || !strings.Contains(r.stderr, "event=lock-released") {
		t.Fatalf("%q in an empty root: exit %d, want 0 and a released lock\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
}
