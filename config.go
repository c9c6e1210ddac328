package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

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
	cmd                           string
	from                          map[string]string // flag name: "--name" or the variable that set it
	backend                       string            // --backend: file or etcd
	etcd                          etcdConfig        // the etcd flags (etcd_flags.go)

	// Readiness: an HTTP probe instead of the TCP one, the
	// gateway's own READY=1, and how long to wait for them (0: forever).
	readyURL     string
	readyNotify  bool
	readyTimeout time.Duration
	// stopSignal is what stops the gateway (systemd KillSignal=, Docker
	// STOPSIGNAL); stopSignalName as given, for the usage check.
	stopSignal     os.Signal
	stopSignalName string
	// deathSignal is what the kernel sends the gateway when gwlock dies
	// (--death-signal); nil: the default, see (*supervisor).deathSignal.
	deathSignal     os.Signal
	deathSignalName string
	// Exit codes that are never, and always, restarted (systemd's
	// RestartPreventExitStatus= and RestartForceExitStatus=).
	preventExit, forceExit exitCodes
}

// flagSet is one command's flags and the variable each also reads.
type flagSet struct {
	*flag.FlagSet
	envOf map[string]string
}

func (f flagSet) str(p *string, name, env string) {
	f.StringVar(p, name, *p, "")
	f.envOf[name] = env
}

func (f flagSet) dur(p *time.Duration, name, env string) {
	f.Var((*durationFlag)(p), name, "")
	f.envOf[name] = env
}

func parseFlags(cmd string, args []string) (*config, error) {
	c := &config{host: "127.0.0.1", timeout: 5 * time.Second, poll: 100 * time.Millisecond,
		stale: 30 * time.Second, stopTimeout: 10 * time.Second, restart: "no", ifRunning: "fail", logFormat: "text",
		stopSignal: stopSignal, stopSignalName: signalName(stopSignal), preventExit: exitCodes{exitEXConfig}}
	c.cmd = cmd
	set := c.flags(cmd)
	flagArgs, command, sawDashes := splitCommand(args)
	if err := set.Parse(flagArgs); err != nil {
		return nil, usagef("%v (hint: gwlock help)", err)
	}
	if err := c.applyEnv(set); err != nil {
		return nil, err
	}
	if set.NArg() > 0 {
		if cmd == "run" {
			return nil, usagef("unexpected argument %q: put the gateway command after -- (gwlock run [flags] -- COMMAND)", set.Arg(0))
		}
		return nil, usagef("unexpected argument %q", set.Arg(0))
	}
	c.command = command
	if err := c.etcd.finish(cmd, set.FlagSet, c); err != nil {
		return nil, err
	}
	return c, c.validate(cmd, sawDashes)
}

// flags declares cmd's flags on c.
func (c *config) flags(cmd string) flagSet {
	set := flagSet{flag.NewFlagSet("gwlock "+cmd, flag.ContinueOnError), map[string]string{}}
	set.SetOutput(io.Discard)
	set.Usage = func() {}
	str, dur := set.str, set.dur
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
	set.envOf["port"] = "GWLOCK_PORT"
	c.backend = "file"
	if cmd == "run" || cmd == "status" {
		str(&c.backend, "backend", "GWLOCK_BACKEND")
		addEtcdFlags(set, &c.etcd)
	}
	str(&c.host, "host", "GWLOCK_HOST")
	switch cmd {
	case "run":
		dur(&c.stopTimeout, "stop-timeout", "")
		str(&c.restart, "restart", "")
		str(&c.ifRunning, "if-running", "")
		set.BoolVar(&c.subreaper, "subreaper", false, "")
		str(&c.readyURL, "ready-url", "")
		set.BoolVar(&c.readyNotify, "ready-notify", false, "")
		dur(&c.readyTimeout, "ready-timeout", "")
		str(&c.stopSignalName, "stop-signal", "")
		str(&c.deathSignalName, "death-signal", "")
		set.Var(&c.preventExit, "restart-prevent-exit-status", "")
		set.Var(&c.forceExit, "restart-force-exit-status", "")
	case "status":
		set.BoolVar(&c.json, "json", false, "")
	case "probe":
		dur(&c.wait, "wait", "")
	}
	return set
}

// applyEnv records which flags were given and fills the others from their
// variables.
func (c *config) applyEnv(set flagSet) error {
	c.from = map[string]string{}
	set.Visit(func(f *flag.Flag) { c.from[f.Name] = "--" + f.Name })
	// A lock named on the command line, in either mode, beats one named in
	// the environment in either mode: --lock wins over GWLOCK_CONFIG.
	for _, naming := range []string{"config", "lock"} {
		if from, ok := c.from[naming]; ok {
			c.from["config"], c.from["lock"] = from, from
		}
	}
	// A variable only fills what no flag gave, so a flag wins even over a
	// malformed variable.
	for name, env := range set.envOf {
		if _, ok := c.from[name]; ok || env == "" {
			continue
		}
		if v, ok := os.LookupEnv(env); ok && v != "" {
			if err := set.Set(name, v); err != nil {
				return usagef("bad %s=%q: %v", env, v, err)
			}
			c.from[name] = env
		}
	}
	return nil
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
		if err := c.validateRun(); err != nil {
			return err
		}
	default:
		if sawDashes {
			return usagef("%s takes no command after --", cmd)
		}
	}
	if c.configPath != "" && c.lockPath != "" {
		if c.from["config"] == "--config" {
			return usagef("--config and --lock both given: name the lock one way")
		}
		return usagef("GWLOCK_CONFIG and GWLOCK_LOCK both set: name the lock one way (hint: unset one, or give --config or --lock, which wins)")
	}
	if c.configPath == "" && c.lockPath == "" && c.etcd.LockName == "" {
		return usagef("%s needs --config PATH or --lock FILE", cmd)
	}
	// Below a millisecond, polling burns a core and the heartbeat (--stale/3)
	// would tick at nanoseconds; a zero tick panics.
	if c.poll < time.Millisecond {
		return usagef("bad %s %s: under the 1ms minimum", c.source("poll"), c.poll)
	}
	if c.stale < time.Millisecond {
		return usagef("bad %s %s: under the 1ms minimum", c.source("stale"), c.stale)
	}
	return nil
}

// validateRun checks run's own flags.
func (c *config) validateRun() error {
	if c.restart != "no" && c.restart != "on-failure" && c.restart != "always" {
		return usagef("bad --restart %q: want no, on-failure or always", c.restart)
	}
	if c.ifRunning != "fail" && c.ifRunning != "ok" {
		return usagef("bad --if-running %q: want fail or ok", c.ifRunning)
	}
	if c.readyURL != "" {
		if err := checkReadyURL(c.readyURL); err != nil {
			return usagef("bad --ready-url %q: %v", c.readyURL, err)
		}
	}
	sig, err := parseStopSignal(c.stopSignalName)
	if err != nil {
		return usagef("bad --stop-signal %q: %v", c.stopSignalName, err)
	}
	c.stopSignal = sig
	// Given empty, it is refused as --stop-signal "" is: the default is
	// had by leaving the flag out.
	if _, given := c.from["death-signal"]; given || c.deathSignalName != "" {
		if c.deathSignal, err = parseStopSignal(c.deathSignalName); err != nil {
			return usagef("bad --death-signal %q: %v", c.deathSignalName, err)
		}
	}
	for _, code := range c.forceExit {
		if c.preventExit.has(code) {
			return usagef("exit code %d is in both --restart-prevent-exit-status and --restart-force-exit-status: give it one meaning", code)
		}
	}
	return nil
}

// exitCodes is a list of exit codes, 0..255, given as "78" or "75,78" or
// "75 78" (systemd's lists are space separated); "" clears the list.
type exitCodes []int

func (e *exitCodes) String() string {
	parts := make([]string, len(*e))
	for i, code := range *e {
		parts[i] = strconv.Itoa(code)
	}
	return strings.Join(parts, ",")
}

func (e *exitCodes) Set(s string) error {
	var codes exitCodes
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 || n > 255 {
			return fmt.Errorf("%q is not an exit code (want 0..255, separated by commas)", f)
		}
		codes = append(codes, n)
	}
	*e = codes
	return nil
}

func (e exitCodes) has(code int) bool {
	for _, c := range e {
		if c == code {
			return true
		}
	}
	return false
}

// source names where a flag's value came from, for error lines.
func (c *config) source(name string) string {
	if from, ok := c.from[name]; ok {
		return from
	}
	return "--" + name
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
	if c.configPath == "" && c.etcd.LockName != "" {
		// --backend etcd --lock-name N: the local lock is named after N.
		return c.derivedTarget("lock-name:" + c.etcd.LockName)
	}
	cfg, err := configIdentity(c.configPath)
	// status still reports on the lock a missing config names, so a gateway
	// whose config was removed stays visible; run and unlock refuse (66).
	if err != nil && !(c.cmd == "status" && errors.Is(err, fs.ErrNotExist)) {
		var ne *noInputError
		if errors.As(err, &ne) {
			ne.flag = c.source("config")
		}
		return lockTarget{}, err
	}
	return c.derivedTarget(cfg)
}

// derivedTarget is the lock named name in --lock-dir or the default dir.
func (c *config) derivedTarget(name string) (lockTarget, error) {
	dir, explicit := c.lockDir, c.lockDir != ""
	if explicit {
		var err error
		if dir, err = filepath.Abs(dir); err != nil {
			return lockTarget{}, &fs.PathError{Op: "resolve --lock-dir", Path: c.lockDir, Err: err}
		}
	} else {
		dir = defaultLockDir()
	}
	return lockTarget{path: filepath.Join(dir, derivedLockName(name)), dir: dir, name: name, explicit: explicit}, nil
}

// configIdentity is the name of a config that names its lock: the absolute
// path with its directory resolved as the kernel walks it (symlinks first,
// then "..", so nothing is cleaned before it is resolved) and its last
// component kept as named. A config swapped by re-pointing a symlink, as
// Kubernetes does with config.json -> ..data/config.json and an atomic
// rename of ..data, keeps its name and so its lock. The identity is returned
// even with an error, for a config that does not exist or is a directory.
func configIdentity(path string) (string, error) {
	abs, err := absUncleaned(path)
	if err != nil {
		return "", &fs.PathError{Op: "resolve config", Path: path, Err: err}
	}
	dir, base := filepath.Split(abs)
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		resolved = filepath.Clean(dir) // nothing there to resolve
	}
	id := filepath.Join(resolved, base)
	st, err := os.Stat(abs)
	switch {
	case err != nil:
		return id, &noInputError{path: abs, err: err}
	case st.IsDir():
		return id, &noInputError{path: abs, err: errIsDir}
	case !st.Mode().IsRegular():
		return id, &noInputError{path: abs, err: errNotRegular}
	case perProcess(filepath.ToSlash(resolved)):
		return id, &noInputError{path: abs, err: errPerProcess}
	}
	return id, nil
}

// perProcess says dir names something through a process's own descriptors
// (/dev/fd/N resolves to /proc/<pid>/fd/N): every starter would get a name,
// and so a lock, of its own.
func perProcess(dir string) bool {
	return dir == "/dev/fd" || strings.HasPrefix(dir+"/", "/dev/fd/") || strings.HasPrefix(dir, "/proc/")
}

var (
	errNotRegular = errors.New("not a regular file (a pipe, device or socket, <(...) or /dev/stdin, names no stable config)")
	errPerProcess = errors.New("a per-process name (/dev/fd/N, /proc/<pid>/...), different for every starter")
)

// absUncleaned makes path absolute without cleaning it: on POSIX "link/.."
// is the parent of the link's target, not the directory holding the link.
// Win32 itself removes ".." by text before any link is followed, so
// Windows cleans first, as filepath.Abs does.
func absUncleaned(path string) (string, error) {
	switch {
	case runtime.GOOS == "windows":
		return filepath.Abs(path)
	case filepath.IsAbs(path):
		return path, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return wd + string(filepath.Separator) + path, nil
}

var errIsDir = errors.New("is a directory, not a file")

// noInputError is a config that names no file (exit 66, EX_NOINPUT): hashed
// anyway, a typo would name a lock of its own and start a second gateway.
type noInputError struct {
	path, flag string // flag: where the path came from, --config or GWLOCK_CONFIG
	err        error
}

func (e *noInputError) Error() string {
	why := e.err
	var pe *fs.PathError
	if errors.As(why, &pe) {
		why = pe.Err
	}
	flag := e.flag
	if flag == "" {
		flag = "--config"
	}
	return fmt.Sprintf("config %s: %v (hint: %s must name the gateway's config file; a wrong name would be another lock)", e.path, why, flag)
}

func (e *noInputError) Unwrap() error { return e.err }

// maxDuration bounds every duration: a wait or grace of more than a year is a
// typo, not a setting, and the bound keeps sums and small multiples of any
// duration (deadlines, backoffs, heartbeats) far from int64 overflow.
const maxDuration = 365 * 24 * time.Hour

// durationFlag is a time.Duration that also takes bare seconds ("5" = 5s):
// finite, not negative, not signed, at most maxDuration.
type durationFlag time.Duration

func (d *durationFlag) String() string { return time.Duration(*d).String() }
func (d *durationFlag) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationFlag(v)
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	// "-0" is refused with the negatives: a sign on a duration is a slip
	// (a lost digit, a shell variable gone wrong), never a setting.
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("negative duration (want 0 or more, without a sign)")
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case math.IsNaN(n) || (math.IsInf(n, 0) && err == nil):
			return 0, errors.New("not a finite duration (want e.g. 5s, 250ms, 0)")
		case n > maxDuration.Seconds(): // 1e400 parses as +Inf with ErrRange
			return 0, fmt.Errorf("out of range (at most %s)", maxDuration)
		}
		return time.Duration(math.Round(n * float64(time.Second))), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// ParseDuration says "invalid" for overflow as for bad syntax.
		return 0, fmt.Errorf("not a duration or out of range (want e.g. 5s, 250ms, 0; at most %s)", maxDuration)
	}
	if v > maxDuration {
		return 0, fmt.Errorf("out of range (at most %s)", maxDuration)
	}
	return v, nil
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
