package main

import "errors"

// Exit codes: every code gwlock decides is named here, and every error type
// that ends a command maps to its code in exitCode. A gateway's own code
// passes through unchanged; a gateway killed by signal N, or a run stopped by
// signal N before any gateway ran, ends with signalExit(N), as a shell and
// tini report it.
//
// Where codes are produced: exitCode below, for the error that ends any
// command; exitOf (run_posix.go) for a reaped gateway's 128+N; cmdRun
// (run.go) and the supervisor's onSignal (stop.go) for a run stopped by a
// signal before or between gateways; killedExit for Windows' job
// termination (run_windows.go); exitEXConfig for the restart policy's
// default exception.
const (
	exitOK            = 0
	exitFailure       = 1   // the launcher failed; a lock lost under the gateway
	exitUsage         = 2   // bad flags or arguments
	exitNoInput       = 66  // --config names no file
	exitPortConflict  = 69  // the port is served by a process that does not hold the lock
	exitOSErr         = 71  // the OS refused a process, thread, descriptor or memory: EX_OSERR
	exitBusy          = 75  // a live owner holds the lock after --timeout
	exitUnsafe        = 77  // unsafe lock directory or path
	exitReadyTimeout  = 124 // not ready within --ready-timeout: timeout(1)'s code
	exitNotExecutable = 126 // COMMAND cannot run
	exitNotFound      = 127 // COMMAND is not there

	// status answers with the LSB init-script codes.
	statusRunning    = 0
	statusDeadFile   = 1
	statusNotRunning = 3
	statusUnknown    = 4
)

// signalExit is the code of a process ended by signal n: 128+n.
func signalExit(n int) int { return 128 + n }

// killedExit is the code of a gateway ended by the stop's escalation: SIGKILL's
// on every OS, so a Windows job terminated past --stop-timeout reports what a
// POSIX process group killed past it does.
var killedExit = signalExit(9)

// exitCode is the code for err, the error that ended a command.
func exitCode(err error) int {
	var (
		ue *usageError
		se *unsafeError
		be *busyError
		ce *commandError
		pe *portConflictError
		ne *noInputError
		re *resourceError
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
	case errors.As(err, &ne):
		return exitNoInput
	case errors.As(err, &re):
		return exitOSErr
	case errors.As(err, &ce):
		return ce.code
	}
	return exitFailure
}

// exitEXConfig is EX_CONFIG (sysexits.h): a gateway that says its
// configuration is wrong; restarting it cannot help.
const exitEXConfig = 78
