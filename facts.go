package main

import (
	"encoding/json"
	"gwlock/internal/proc"
	"os"
	"strconv"
	"sync"
)

// pidState is what the kernel says of a pid: unknown, absent (an exited
// process awaiting its reaper included) or present.
type pidState = proc.State

const (
	pidUnknown = proc.Unknown
	pidAbsent  = proc.Absent
	pidPresent = proc.Present
)

// hostFacts is what the judgement needs to know about this host. It is an
// interface so the judgement stays a pure function that tests and fuzzers
// drive. Every fact that can fail to be learnt says why with an error; its
// other results are then no answer.
type hostFacts interface {
	hostname() string
	bootID() string
	selfPID() int
	selfStartTime() string
	// probe may say present together with an error: the pid exists, but
	// whether it has exited could not be read (see proc.Probe).
	probe(pid int) (pidState, error)
	startTime(pid int) (string, error)
	listening(port int) bool
	// pidNS is our PID namespace ("" where there are none).
	pidNS() string
	// timeNS is our time namespace ("" where there are none): start times
	// read in another one may be offset.
	timeNS() string
	// survivor names a live process of a gateway's tree (see
	// proc.Survivor): one of session q.Session left in a process group of
	// q.Groups (the group's number is returned), or one, not us, running
	// as one of q.UIDs (its real uid) whose environment carries q.Token
	// (the GWLOCK_LOCK_TOKEN a launcher gave its gateway). A process that
	// started before q.BornAfter (the launcher's start time, "" if
	// unknown) is not of the tree. 0 and no error: none lives.
	survivor(q proc.TreeQuery) (int, error)
	// selfUID is our effective uid: the owner of every lock file we judge.
	selfUID() int
	// stopped says a live process is stopped by a signal.
	stopped(pid int) (bool, error)
	// lockCreator names the process that took the kernel lock now held on
	// file (inherited descriptors keep the creator's pid); 0 and no error:
	// no kernel lock is held on it now.
	lockCreator(file fileID) (int, error)
}

// fileID identifies a file whatever its name: (dev, inode) on POSIX.
type fileID struct{ a, b uint64 }

// self is this process's own identity, computed once.
type self struct {
	pid           int
	sessionID     int
	hostname      string
	bootID        string
	startTime     string
	startTimeJSON json.RawMessage
	pidNS         string
	timeNS        string
}

// selfOnce learns our identity. A fact that cannot be read stays empty,
// which the judgement reads as "not recorded", never as a mismatch.
var selfOnce = sync.OnceValue(func() self {
	s := self{pid: os.Getpid(), sessionID: sessionID()}
	s.pidNS, _ = proc.PIDNamespace()
	s.timeNS, _ = proc.TimeNamespace()
	s.hostname, _ = os.Hostname()
	s.bootID, _ = proc.BootID()
	if st, ok := processStartTime(s.pid); ok {
		s.startTime = st
		s.startTimeJSON = json.RawMessage(strconv.Quote(st))
	}
	return s
})

func selfFacts() self { return selfOnce() }

// hostProbe is hostFacts for this host.
type hostProbe struct{ probeHost string }

var localFacts hostFacts = hostProbe{probeHost: "127.0.0.1"}

func (hostProbe) hostname() string                       { return selfFacts().hostname }
func (hostProbe) bootID() string                         { return selfFacts().bootID }
func (hostProbe) pidNS() string                          { return selfFacts().pidNS }
func (hostProbe) timeNS() string                         { return selfFacts().timeNS }
func (hostProbe) selfPID() int                           { return selfFacts().pid }
func (hostProbe) selfStartTime() string                  { return selfFacts().startTime }
func (hostProbe) probe(pid int) (pidState, error)        { return proc.Probe(pid) }
func (hostProbe) startTime(pid int) (string, error)      { return proc.StartTime(pid) }
func (hostProbe) selfUID() int                           { return os.Geteuid() }
func (hostProbe) stopped(pid int) (bool, error)          { return proc.Stopped(pid) }
func (hostProbe) survivor(q proc.TreeQuery) (int, error) { return proc.Survivor(q) }
func (hostProbe) lockCreator(file fileID) (int, error) {
	return proc.FlockCreator(file.a, file.b)
}
func (h hostProbe) listening(port int) bool {
	return portListening(h.probeHost, port, probeTimeout)
}

// The process facts the launcher and the held lock use outside the
// judgement, where no owner is judged: each reads a fact it cannot learn
// as the cautious answer for its caller (a process whose state cannot be
// read counts as present; a start time, a uid, a tree or a group that
// cannot be read is simply not recorded).

// processProbe says whether pid names a process that has not exited.
func processProbe(pid int) pidState {
	st, _ := proc.Probe(pid)
	return st
}

// processStartTime is pid's start time, false when it cannot be read.
func processStartTime(pid int) (string, bool) {
	st, err := proc.StartTime(pid)
	return st, err == nil
}

// processGroupAlive says a live process of session sid is in group pgid.
func processGroupAlive(pgid, sid int) bool {
	alive, _ := proc.GroupAlive(pgid, sid)
	return alive
}

// processUID is the real uid pid runs as, false where it cannot be read.
func processUID(pid int) (int, bool) {
	uid, err := proc.UID(pid)
	return uid, err == nil
}

// descendantPIDs lists this process's live descendants where the OS can.
func descendantPIDs() []int {
	pids, _ := proc.Descendants()
	return pids
}

// flockHolders lists the processes other than us that share the kernel
// lock now held on file (named base), where the OS can tell.
func flockHolders(file fileID, base string) []int {
	pids, _ := proc.FlockHolders(file.a, file.b, base)
	return pids
}

// sessionID is this process's session: the gateway's process group is made
// in it, and no other user's process can make a group there. 0 off POSIX.
func sessionID() int {
	sid, _ := proc.SessionID()
	return sid
}
