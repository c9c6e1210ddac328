package main

import (
	"bytes"
	"encoding/binary"
	"strconv"
)

// Parsers of the process start times the OSes report, kept free of build
// tags so that every platform's parser is tested on every platform.

// parseProcStat finds field 22 of a /proc/<pid>/stat line. The command name
// (field 2) may hold spaces and parentheses, so counting starts after the last ')'.
func parseProcStat(b []byte) (string, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", false
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return "", false
	}
	v := fields[19]
	if _, err := strconv.ParseUint(string(v), 10, 64); err != nil {
		return "", false
	}
	return string(v), true
}

// procStatus is what the process table says of a process beyond its start
// time: fields 3 to 6 and 20 of /proc/<pid>/stat.
type procStatus struct {
	state                byte
	ppid, group, session int
	threads              int // 0 when the line is too short to say
}

// exited says the process is over: a zombie waiting for its reaper, or
// dead. The state letter is its main thread's: a main thread that called
// pthread_exit is a zombie while the process's other threads run on.
func (st procStatus) exited() bool {
	return (st.state == 'Z' || st.state == 'X') && st.threads <= 1
}

// parseProcStatus reads the state, parent, process group and session of a
// /proc/<pid>/stat line.
func parseProcStatus(b []byte) (procStatus, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStatus{}, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 4 || len(f[0]) != 1 {
		return procStatus{}, false
	}
	var n [3]int
	for k := range n {
		v, err := strconv.Atoi(string(f[k+1]))
		if err != nil {
			return procStatus{}, false
		}
		n[k] = v
	}
	st := procStatus{state: f[0][0], ppid: n[0], group: n[1], session: n[2]}
	if len(f) > 17 {
		st.threads, _ = strconv.Atoi(string(f[17]))
	}
	return st, true
}

// Offsets into FreeBSD's struct kinfo_proc (sys/user.h) on 64-bit platforms:
// x/sys has no Go type for it. The size and pid fields are checked before the
// start time is trusted, so a layout change yields "unknown", never a wrong value.
const (
	kinfoProcSize64   = 1088
	kinfoOffPID       = 72
	kinfoOffStartSec  = 336
	kinfoOffStartUsec = 344
)

// parseKinfoProc reads ki_start from a FreeBSD kinfo_proc as "sec.usec".
func parseKinfoProc(b []byte, pid int) (string, bool) {
	if len(b) < kinfoProcSize64 || binary.LittleEndian.Uint32(b[0:]) != kinfoProcSize64 ||
		int(int32(binary.LittleEndian.Uint32(b[kinfoOffPID:]))) != pid {
		return "", false
	}
	sec := int64(binary.LittleEndian.Uint64(b[kinfoOffStartSec:]))
	usec := int64(binary.LittleEndian.Uint64(b[kinfoOffStartUsec:]))
	return strconv.FormatInt(sec, 10) + "." + strconv.FormatInt(usec, 10), true
}
