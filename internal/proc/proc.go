// Package proc reads facts about the processes of this host: whether a pid
// names a live process, when a process started, which processes descend from
// this one, which hold a flock on a file, which carry a given environment
// variable, whether a process group has members, and which PID namespace
// and boot this is.
//
// Every fact may be unknowable: the OS may not offer it (errors.Is(err,
// errors.ErrUnsupported)), a process may hide it (another user's, a
// non-dumpable one, /proc mounted with hidepid), or reading it may fail
// (EMFILE, ENFILE, ENOMEM, EACCES, no /proc in a chroot). Each function then
// returns an error saying which read failed, and its other results are not
// an answer: a caller must not read "could not tell" as "dead" or "absent".
// Probe is the one function whose answer and error may come together (see
// there).
//
// Nothing here signals, waits for or changes a process. Each OS's file
// defines the same unexported functions; this file holds the contract.
package proc

import (
	"errors"
	"fmt"
)

// State is what the kernel says of a pid.
type State int

const (
	Unknown State = iota // the kernel would not say
	Absent               // no such process, or one that has exited and awaits its reaper
	Present              // a process that has not exited
)

func (s State) String() string {
	switch s {
	case Absent:
		return "absent"
	case Present:
		return "present"
	}
	return "unknown"
}

// Probe says whether pid names a process that has not exited, without
// signalling it. A zombie (exited, awaiting its reaper, often init reaping
// at leisure) is Absent: it holds nothing. A process whose main thread
// exited while other threads run on is Present.
//
// Unknown comes with the reason. Present may also come with an error: the
// pid exists, but whether it has exited could not be read (Linux reads
// /proc/<pid>/stat for that; other Unix systems cannot tell a zombie, and
// say Present). pid <= 0 is Unknown: kill(0) and kill(-1) address groups.
func Probe(pid int) (State, error) {
	if pid <= 0 {
		return Unknown, fmt.Errorf("probe pid %d: not a process id", pid)
	}
	return probe(pid)
}

// StartTime is when process pid started, as text that stays the same for
// the life of the process and differs for a later process given the same
// pid: Linux's clock ticks after boot (field 22 of /proc/<pid>/stat), the
// BSDs' "seconds.microseconds", Windows' FILETIME count. Its format is
// unspecified beyond that; compare it only with another StartTime of this
// OS. A process that has exited has none (an error).
func StartTime(pid int) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("start time of pid %d: not a process id", pid)
	}
	return startTime(pid)
}

// BootID names this boot of the host, where the clock cannot move it (Linux
// /proc/sys/kernel/random/boot_id). Elsewhere it is unsupported: a boot time
// moves when the clock is set, and a false "rebooted" would take a live
// owner's lock.
func BootID() (string, error) { return bootID() }

// PIDNamespace names this process's PID namespace, as "pid:[4026531836]";
// unsupported off Linux, which has none.
func PIDNamespace() (string, error) { return pidNamespace() }

// TimeNamespace names this process's time namespace, as
// "time:[4026531834]": start times (StartTime) read in two time namespaces
// with different boot-time offsets differ for the same process. An error
// off Linux and before Linux 5.6, which have none.
func TimeNamespace() (string, error) { return timeNamespace() }

// SessionID is this process's session (getsid(0)): a process group made in
// it cannot be made by another user's process.
func SessionID() (int, error) { return sessionID() }

// Descendants lists every live descendant of this process, found by the
// parent links of the whole process table: a worker that left its process
// group (setsid) and closed its descriptors included. It reads every
// process's stat (about a millisecond for a hundred), so call it on a
// schedule, not in a hot path. Only Linux can list them without privilege.
func Descendants() ([]int, error) { return descendants() }

// GroupAlive says a process that has not exited, of session sid, is in
// process group pgid. The session is what makes the group the one that was
// meant: once the group emptied, anyone given the same number can lead a
// group of it, but only in a session of their own (setsid). Session 0 is
// what the kernel shows for a session whose leader lives outside this PID
// namespace (a process started by `docker exec` or `unshare --pid`): such a
// session is still matched, though every session led from outside shows as
// 0, so there it tells less. Off Linux neither the session nor a zombie can
// be told, so any member counts.
func GroupAlive(pgid, sid int) (bool, error) {
	if pgid <= 0 || sid < 0 {
		return false, fmt.Errorf("process group %d of session %d: not a group", pgid, sid)
	}
	return groupAlive(pgid, sid)
}

// FlockHolders lists the processes other than this one with a descriptor
// that holds the flock now on the file (dev, ino), named base in its
// directory: the processes that share the lock's open file description by
// inheritance. A process that merely has the file open is not listed.
// Nothing is stat'ed, so a process with a file on a hung mount cannot stall
// the scan. Linux only.
func FlockHolders(dev, ino uint64, base string) ([]int, error) {
	return flockHolders(dev, ino, base)
}

// FlockCreator names the process that took the flock now held on the file
// (dev, ino): the kernel keeps the creator's pid for the lock's whole life,
// also once that process is dead and its descendants hold the lock. 0 and
// no error: no flock is held on the file now. Linux only.
func FlockCreator(dev, ino uint64) (int, error) { return flockCreator(dev, ino) }

// TokenVar is the environment variable Tagged looks for.
const TokenVar = "GWLOCK_LOCK_TOKEN"

// Tagged names a live process other than this one whose initial
// environment holds TokenVar=token and whose real uid is one of uids: a
// process of the tree that was given the token. Anyone can put the
// variable in an environment, so the uid is what makes a carrier count,
// and it is the real uid from /proc/<pid>/status, never the owner of the
// process's /proc files: those are root's for a process that made itself
// non-dumpable, whoever runs it. Only processes whose /proc directory is
// owned by one of uids are read at all, so a judge running as root reads
// no other user's environment. A zombie's environment is empty.
//
// bornAfter, if not "", is the StartTime of the process that handed the
// token out (the launcher): a process started before it is none of the
// tree the launcher forked, so it is passed over on one read of its stat,
// its environment unread, readable or not (PID 1 of a container, a process
// with capabilities we lack).
//
// 0 and no error: the whole table was read and no process carries it. 0
// and an error: none was found, but some process that might have carried
// it could not be read for a reason other than being gone. The search
// remembers the last process it found, and checks it first next time.
func Tagged(token string, uids []int, bornAfter string) (int, error) {
	if token == "" {
		return 0, errors.New("search for a token: empty token")
	}
	if len(uids) == 0 {
		return 0, errors.New("search for a token: no uid to search")
	}
	return tagged(token, uids, bornAfter)
}

// TreeQuery asks Survivor for any process of a gateway's tree that lives.
type TreeQuery struct {
	// Groups are process groups the tree's processes led, in session
	// Session: a process of the session that has not exited and is in one
	// of them is of the tree (see GroupAlive).
	Groups  []int
	Session int
	// Token, UIDs and BornAfter are Tagged's: a process of one of UIDs
	// that carries Token and started no earlier than BornAfter is of the
	// tree. No Token: no token search.
	Token     string
	UIDs      []int
	BornAfter string
}

// Survivor names a live process of the tree q describes: the number of a
// group that lives on, or a token carrier's pid; 0 and no error when the
// whole table was read and there is none. It answers GroupAlive and Tagged
// together in one pass over the process table, where each would read every
// process's stat: a judgement asks both, and a starter waiting to take a
// dead owner's lock waits for the pass. Errors are Tagged's and
// GroupAlive's; off Linux groups are probed as GroupAlive does there, and
// a token is unsupported (errors.ErrUnsupported when no group lives).
func Survivor(q TreeQuery) (int, error) { return survivor(q) }

// UID is the real uid process pid runs as. Linux only.
func UID(pid int) (int, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("uid of pid %d: not a process id", pid)
	}
	return uid(pid)
}

// Stopped says process pid is stopped by a signal (SIGSTOP, SIGTSTP, a
// tracer): it runs nothing until continued. Linux only.
func Stopped(pid int) (bool, error) {
	if pid <= 0 {
		return false, fmt.Errorf("state of pid %d: not a process id", pid)
	}
	return stopped(pid)
}

// unsupported is the error of a fact this OS does not offer.
func unsupported(what string) error {
	return fmt.Errorf("%s: %w on this OS", what, errors.ErrUnsupported)
}
