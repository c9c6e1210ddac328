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
// Most flags also read an environment variable (GWLOCK_CONFIG, GWLOCK_LOCK,
// GWLOCK_LOCK_DIR, GWLOCK_PORT, GWLOCK_HOST, GWLOCK_TIMEOUT, GWLOCK_STALE,
// GWLOCK_LOG_FORMAT, ...); the flag wins. GWLOCK_ALLOW_MULTI=1 skips the lock.
//
// Exit codes: the gateway's own code (128+N if signal N killed it), or one of
// gwlock's own; every code and where each is produced is in exitcode.go.
//
// The reference for each command is `gwlock help CMD` (manual.go, also
// rendered as gwlock.1); the protocol, the telemetry events and the payload
// are in docs/contract.md.
package main

import (
	"errors"
	"fmt"
	"gwlock/internal/telemetry"
	"io"
	"os"
	"runtime"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// init starts run's background preparation before main, so that it overlaps
// even the runtime's and flag parsing's work (about 3% of `run -- true`).
func init() {
	if len(os.Args) > 1 && os.Args[1] == "run" {
		runStartup()
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

// cli runs one gwlock command and returns its exit code. Everything it says
// on stderr, telemetry and the final error line alike, goes through one
// telemetry.Queue, so a stalled log reader can delay neither a decision nor
// the exit.
func cli(args []string, stdout, stderr io.Writer) int {
	errOut := telemetry.NewQueue(stderr)
	defer errOut.Flush()
	return dispatch(args, stdout, errOut)
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText())
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	if cmd == "run" {
		runStartup() // already under way when called from main
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
	log := telemetry.New(stderr, c.logFormat, c.quiet)
	switch cmd {
	case "run":
		return cmdRun(c, log, stderr)
	case "probe":
		return cmdProbe(c, stderr)
	}
	b, err := backendFor(c, log)
	if err != nil {
		return fail(stderr, err)
	}
	if cmd == "status" {
		return b.status(stdout, stderr, c.json)
	}
	return b.unlock(log, stderr)
}

// fail prints the one line that explains err and returns its exit code.
func fail(stderr io.Writer, err error) int {
	code := exitCode(err)
	var hint string
	var (
		ue *unsafeError
		be *busyError
	)
	switch {
	case errors.As(err, &ue):
		hint = ue.Hint
	case errors.As(err, &be):
		hint = busyHint(be)
	}
	line := "gwlock: " + err.Error()
	if hint != "" {
		line += " (hint: " + hint + ")"
	}
	printLine(stderr, "%s", line)
	return code
}

// printLine writes one line of gwlock's own, not an event line: whatever
// its arguments hold (a path, a key, an OS error) is escaped, so the line
// can neither end early nor let a forged line follow (telemetry.Printable).
func printLine(w io.Writer, format string, args ...any) {
	_, _ = io.WriteString(w, telemetry.Printable(fmt.Sprintf(format, args...))+"\n")
}

// busyHint says where to look next when a holder keeps the lock (exit 75),
// and, when a gateway is known to run, how to make that a success instead.
func busyHint(be *busyError) string {
	hint := "gwlock status with the same flags shows the owner"
	if be.Status.established() {
		hint += "; --if-running ok exits 0 when a gateway already runs"
	}
	return hint
}
