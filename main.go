// Gwlock guarantees that exactly one gateway process runs per configuration on
// a host, launches and supervises it, and explains every decision in one line
// of telemetry on stderr.
//
// Usage:
//
//	gwlock run    [flags] -- COMMAND [ARG...]
//	gwlock status [flags] [--json]
//	gwlock probe  --port N [--host H] [--wait D]
//	gwlock unlock [flags]
//	gwlock version
//
// run takes the lock named by --config (or --lock), starts COMMAND directly
// (no shell) with GWLOCK_LOCK_PATH set, holds the lock until the gateway is
// gone, and exits with the gateway's code. A lock left by a dead owner is
// reclaimed at once; a live owner's lock is never taken. status reports who
// holds a lock (LSB codes: 0 running, 1 dead owner's file, 3 not running,
// 4 unknown). probe checks a TCP port. unlock removes a lock file whose owner
// is provably gone, never a live one.
//
// Every flag also reads an environment variable (GWLOCK_CONFIG, GWLOCK_LOCK,
// GWLOCK_LOCK_DIR, GWLOCK_PORT, GWLOCK_HOST, GWLOCK_TIMEOUT, GWLOCK_STALE,
// GWLOCK_LOG_FORMAT); the flag wins. GWLOCK_ALLOW_MULTI=1 skips the lock.
//
// Exit codes: the gateway's own code (128+N if signal N killed it), 0
// success, 1 launcher failure, 2 usage error, 69 port already served by
// another process, 75 a live owner holds the lock after --timeout, 77 unsafe
// lock directory or path, 126/127 COMMAND not executable / not found.
//
// See README.md for the protocol, the telemetry events and the payload.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes, all in one place (DESIGN.md "Exit codes").
const (
	exitOK            = 0
	exitFailure       = 1
	exitUsage         = 2
	exitPortConflict  = 69
	exitBusy          = 75
	exitUnsafe        = 77
	exitNotExecutable = 126
	exitNotFound      = 127

	// status, LSB init-script codes
	statusRunning    = 0
	statusDeadFile   = 1
	statusNotRunning = 3
	statusUnknown    = 4
)

const usageText = `usage:
  gwlock run    [flags] -- COMMAND [ARG...]   take the lock, run the gateway, hold the lock until it is gone
  gwlock status [flags] [--json]              who holds the lock, is it alive, is its port listening
  gwlock probe  --port N [--host H] [--wait D] TCP connect probe
  gwlock unlock [flags]                       remove a lock whose owner is provably gone
  gwlock version
  gwlock help COMMAND                         the full reference for run, status, probe or unlock

lock flags (run, status, unlock):
  --config PATH        gateway config; its absolute path names the lock   [GWLOCK_CONFIG]
  --lock FILE          explicit lock file instead of --config             [GWLOCK_LOCK]
  --lock-dir DIR       where derived locks live                           [GWLOCK_LOCK_DIR]
  --port N             gateway TCP port                                   [GWLOCK_PORT]
  --host H             host to probe (127.0.0.1)                          [GWLOCK_HOST]
  --timeout D          how long to wait for a held lock, 0 = once (5s)    [GWLOCK_TIMEOUT]
  --poll D             longest pause between non-event retries (100ms)
  --stale D            age after which an unjudgeable lock is stale (30s) [GWLOCK_STALE]
  --log-format F       text or json (text)                                [GWLOCK_LOG_FORMAT]
  -q, --quiet          only warnings and errors
run flags:
  --stop-timeout D     grace between the stop signal and SIGKILL (10s)
  --restart P          no, on-failure or always (no)
  --if-running A       fail (exit 75) or ok (exit 0) when a live owner holds the lock
  --subreaper          adopt orphaned descendants and reap them (Linux)
status flags:
  --json               print the report as JSON
` + etcdUsageText

// init starts run's background preparation before main, so that it overlaps
// even the runtime's and flag parsing's work (about 3% of `run -- true`).
func init() {
	if len(os.Args) > 1 && os.Args[1] == "run" {
		prepareRun()
	}
}

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, stderrWriter))
}

// usageError is a bad command line (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// config is the parsed command line of any command.
type config struct {
	configPath, lockPath, lockDir string
	port                          int
	host                          string
	timeout, poll, stale          time.Duration
	stopTimeout, wait             time.Duration
	restart, ifRunning, logFormat string
	quiet, json, subreaper        bool
	command                       []string
	etcd                          etcdConfig // --backend and the etcd flags (etcd_flags.go)
}

// cli runs one gwlock command and returns its exit code.
func cli(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	if cmd == "run" {
		prepareRun() // already under way when called from main
	}
	switch cmd {
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "gwlock %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "--help", "-help":
		return cmdHelp(rest, stdout, stderr)
	case "run", "status", "probe", "unlock":
	default:
		return fail(stderr, usagef("unknown command %q (hint: gwlock run|status|probe|unlock|version)", cmd))
	}
	if helpRequested(rest) {
		return cmdHelp([]string{cmd}, stdout, stderr)
	}
	c, err := parseFlags(cmd, rest)
	if err != nil {
		return fail(stderr, err)
	}
	log := newTelemetry(stderr, c.logFormat, c.quiet)
	switch cmd {
	case "run":
		if c.etcd.Backend == "etcd" {
			// Wired by the backend seam (issue 11): file lock, then etcdBackend.
			return fail(stderr, errors.New("run --backend etcd: not wired into the supervisor yet (issue 11)"))
		}
		return cmdRun(c, log, stderr)
	case "status":
		if c.etcd.Backend == "etcd" {
			return etcdStatus(c.etcd, stdout, c.json)
		}
		return cmdStatus(c, stdout, stderr)
	case "probe":
		return cmdProbe(c, stderr)
	default:
		return cmdUnlock(c, log, stderr)
	}
}

func parseFlags(cmd string, args []string) (*config, error) {
	c := &config{host: "127.0.0.1", timeout: 5 * time.Second, poll: 100 * time.Millisecond,
		stale: 30 * time.Second, stopTimeout: 10 * time.Second, restart: "no", ifRunning: "fail", logFormat: "text"}
	set := flag.NewFlagSet("gwlock "+cmd, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	set.Usage = func() {}
	envOf := map[string]string{}
	str := func(p *string, name, env string) {
		set.StringVar(p, name, *p, "")
		envOf[name] = env
	}
	dur := func(p *time.Duration, name, env string) {
		set.Var((*durationFlag)(p), name, "")
		envOf[name] = env
	}
	if cmd != "probe" {
		str(&c.configPath, "config", "GWLOCK_CONFIG")
		str(&c.lockPath, "lock", "GWLOCK_LOCK")
		str(&c.lockDir, "lock-dir", "GWLOCK_LOCK_DIR")
		dur(&c.timeout, "timeout", "GWLOCK_TIMEOUT")
		dur(&c.poll, "poll", "")
		dur(&c.stale, "stale", "GWLOCK_STALE")
		str(&c.logFormat, "log-format", "GWLOCK_LOG_FORMAT")
		set.BoolVar(&c.quiet, "q", false, "")
		set.BoolVar(&c.quiet, "quiet", false, "")
	}
	set.Var((*portFlag)(&c.port), "port", "")
	envOf["port"] = "GWLOCK_PORT"
	c.etcd.Backend = "file"
	if cmd == "run" || cmd == "status" {
		addEtcdFlags(set, envOf, &c.etcd)
	}
	str(&c.host, "host", "GWLOCK_HOST")
	switch cmd {
	case "run":
		dur(&c.stopTimeout, "stop-timeout", "")
		str(&c.restart, "restart", "")
		str(&c.ifRunning, "if-running", "")
		set.BoolVar(&c.subreaper, "subreaper", false, "")
	case "status":
		set.BoolVar(&c.json, "json", false, "")
	case "probe":
		dur(&c.wait, "wait", "")
	}
	// Environment first, so that a flag given on the command line wins.
	for name, env := range envOf {
		if v, ok := os.LookupEnv(env); ok && env != "" && v != "" {
			if err := set.Set(name, v); err != nil {
				return nil, usagef("bad %s=%q: %v", env, v, err)
			}
		}
	}
	flagArgs, command, sawDashes := splitCommand(args)
	if err := set.Parse(flagArgs); err != nil {
		return nil, usagef("%v (hint: gwlock help)", err)
	}
	if set.NArg() > 0 {
		if cmd == "run" {
			return nil, usagef("unexpected argument %q: put the gateway command after -- (gwlock run [flags] -- COMMAND)", set.Arg(0))
		}
		return nil, usagef("unexpected argument %q", set.Arg(0))
	}
	c.command = command
	if err := c.etcd.finish(cmd, set, c); err != nil {
		return nil, err
	}
	return c, c.validate(cmd, sawDashes)
}

// splitCommand separates gwlock's flags from the gateway command at the first "--".
func splitCommand(args []string) (flags, command []string, sawDashes bool) {
	for i, a := range args {
		if a == "--" {
			return args[:i], args[i+1:], true
		}
	}
	return args, nil, false
}

// validate checks flag combinations before any file is touched.
func (c *config) validate(cmd string, sawDashes bool) error {
	if c.logFormat != "text" && c.logFormat != "json" {
		return usagef("bad --log-format %q: want text or json", c.logFormat)
	}
	if c.host == "" {
		return usagef("empty --host")
	}
	switch cmd {
	case "probe":
		if c.port == 0 {
			return usagef("probe needs --port N")
		}
		return nil
	case "run":
		if !sawDashes || len(c.command) == 0 {
			return usagef("run needs a command after -- (gwlock run [flags] -- COMMAND [ARG...])")
		}
		if c.restart != "no" && c.restart != "on-failure" && c.restart != "always" {
			return usagef("bad --restart %q: want no, on-failure or always", c.restart)
		}
		if c.ifRunning != "fail" && c.ifRunning != "ok" {
			return usagef("bad --if-running %q: want fail or ok", c.ifRunning)
		}
	default:
		if sawDashes {
			return usagef("%s takes no command after --", cmd)
		}
	}
	if c.configPath != "" && c.lockPath != "" {
		return usagef("--config and --lock both given: name the lock one way")
	}
	if c.configPath == "" && c.lockPath == "" && c.etcd.LockName == "" {
		return usagef("%s needs --config PATH or --lock FILE", cmd)
	}
	if c.poll <= 0 {
		return usagef("--poll must be positive")
	}
	if c.stale <= 0 {
		return usagef("--stale must be positive")
	}
	return nil
}

// lockTarget is where a lock lives and what named it.
type lockTarget struct {
	path     string // the lock file
	dir      string
	name     string // recorded as configPath in the payload
	explicit bool   // the directory was named by the user: never chmodded
	d        *checkedDir
}

func (c *config) target() (lockTarget, error) {
	if c.lockPath != "" {
		p, err := filepath.Abs(c.lockPath)
		if err != nil {
			return lockTarget{}, &fs.PathError{Op: "resolve --lock", Path: c.lockPath, Err: err}
		}
		if strings.HasSuffix(c.lockPath, string(filepath.Separator)) {
			return lockTarget{}, usagef("--lock %s names a directory: give a file name", c.lockPath)
		}
		return lockTarget{path: p, dir: filepath.Dir(p), name: p, explicit: true}, nil
	}
	cfg, err := filepath.Abs(c.configPath)
	if err != nil {
		return lockTarget{}, &fs.PathError{Op: "resolve --config", Path: c.configPath, Err: err}
	}
	if resolved, err := filepath.EvalSymlinks(cfg); err == nil {
		cfg = resolved
	}
	dir, explicit := c.lockDir, c.lockDir != ""
	if explicit {
		if dir, err = filepath.Abs(dir); err != nil {
			return lockTarget{}, &fs.PathError{Op: "resolve --lock-dir", Path: c.lockDir, Err: err}
		}
	} else {
		dir = defaultLockDir()
	}
	return lockTarget{path: filepath.Join(dir, derivedLockName(cfg)), dir: dir, name: cfg, explicit: explicit}, nil
}

// fail prints the one line that explains err and returns its exit code.
func fail(stderr io.Writer, err error) int {
	code := exitCode(err)
	var hint string
	var ue *unsafeError
	if errors.As(err, &ue) {
		hint = ue.Hint
	}
	line := "gwlock: " + err.Error()
	if hint != "" {
		line += " (hint: " + hint + ")"
	}
	_, _ = io.WriteString(stderr, line+"\n")
	return code
}

// exitCode maps an error to the documented exit code.
func exitCode(err error) int {
	var (
		ue *usageError
		se *unsafeError
		be *busyError
		ce *commandError
		pe *portConflictError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &se):
		return exitUnsafe
	case errors.As(err, &be):
		return exitBusy
	case errors.As(err, &pe):
		return exitPortConflict
	case errors.As(err, &ce):
		return ce.code
	}
	return exitFailure
}

// openTarget resolves the lock and checks, creates or tightens and opens its
// directory for run; acquire takes the open directory over (lockOptions).
func openTarget(c *config, log *telemetry) (lockTarget, error) {
	t, err := c.target()
	if err != nil {
		return t, err
	}
	t.d, err = openLockDir(t.dir, t.explicit, true, log)
	return t, err
}

func (c *config) lockOptions(t lockTarget, log *telemetry) lockOptions {
	return lockOptions{Path: t.path, Dir: t.d, ConfigPath: t.name, Port: c.port, Host: c.host,
		Timeout: c.timeout, Poll: c.poll, Stale: c.stale, Log: log, facts: hostProbe{probeHost: c.host}}
}

func cmdProbe(c *config, stderr io.Writer) int {
	addr := c.host + ":" + strconv.Itoa(c.port)
	if c.wait > 0 {
		if _, ok := waitForPort(c.host, c.port, c.wait, 100*time.Millisecond, nil); ok {
			return exitOK
		}
		fmt.Fprintf(stderr, "gwlock: probe %s: not listening after %s\n", addr, c.wait)
		return exitFailure
	}
	if portListening(c.host, c.port, time.Second) {
		return exitOK
	}
	fmt.Fprintf(stderr, "gwlock: probe %s: not listening\n", addr)
	return exitFailure
}

// durationFlag is a time.Duration that also takes bare seconds ("5" = 5s).
type durationFlag time.Duration

func (d *durationFlag) String() string { return time.Duration(*d).String() }
func (d *durationFlag) Set(s string) error {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n < 0 {
			return errors.New("negative duration")
		}
		*d = durationFlag(time.Duration(n * float64(time.Second)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration (want e.g. 5s, 250ms, 0)")
	}
	if v < 0 {
		return errors.New("negative duration")
	}
	*d = durationFlag(v)
	return nil
}

// portFlag is a TCP port, 1..65535.
type portFlag int

func (p *portFlag) String() string { return strconv.Itoa(int(*p)) }
func (p *portFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return errors.New("not a TCP port (want 1..65535)")
	}
	*p = portFlag(n)
	return nil
}
