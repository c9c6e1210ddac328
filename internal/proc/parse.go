package proc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// The parsers of what the OSes report, free of build tags so that every
// platform's parser is tested on every platform.

// Stat is what a /proc/<pid>/stat line says of a process: fields 3 to 6, 20
// and 22.
type Stat struct {
	State                byte // R, S, D, Z, X, ...: its main thread's
	PPID, Group, Session int
	Threads              int    // 0 when the line is too short to say
	StartTime            string // "" when the line is too short to say
}

// Exited says the process is over: a zombie waiting for its reaper, or
// dead. The state letter is its main thread's: a main thread that called
// pthread_exit is a zombie while the process's other threads run on.
func (st Stat) Exited() bool {
	return (st.State == 'Z' || st.State == 'X') && st.Threads <= 1
}

var errStatLine = errors.New("malformed /proc/<pid>/stat line")

// ParseStat reads a /proc/<pid>/stat line. The command name (field 2) may
// hold spaces and parentheses, so fields count from after the last ')'. The
// state, parent, group and session are required; the thread count and start
// time are read when the line reaches them (StartTime stays "" unless field
// 22 is a number).
func ParseStat(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, errStatLine
	}
	// f[0] is field 3 (state), so field N is f[N-3].
	f := bytes.Fields(b[i+1:])
	if len(f) < 4 || len(f[0]) != 1 {
		return Stat{}, errStatLine
	}
	var n [3]int
	for k := range n {
		v, err := strconv.Atoi(string(f[k+1]))
		if err != nil {
			return Stat{}, errStatLine
		}
		n[k] = v
	}
	st := Stat{State: f[0][0], PPID: n[0], Group: n[1], Session: n[2]}
	if len(f) > 17 {
		st.Threads, _ = strconv.Atoi(string(f[17]))
	}
	if len(f) > 19 {
		if _, err := strconv.ParseUint(string(f[19]), 10, 64); err == nil {
			st.StartTime = string(f[19])
		}
	}
	return st, nil
}

// Offsets into FreeBSD's struct kinfo_proc (sys/user.h) on 64-bit platforms:
// x/sys has no Go type for it. The size and pid fields are checked before the
// start time is trusted, so a layout change yields an error, never a wrong value.
const (
	kinfoProcSize64   = 1088
	kinfoOffPID       = 72
	kinfoOffStartSec  = 336
	kinfoOffStartUsec = 344
)

// ParseKinfoProc reads ki_start from a FreeBSD kinfo_proc of process pid, as
// "sec.usec".
func ParseKinfoProc(b []byte, pid int) (string, error) {
	if len(b) < kinfoProcSize64 || binary.LittleEndian.Uint32(b[0:]) != kinfoProcSize64 {
		return "", fmt.Errorf("kinfo_proc of %d bytes: not the 64-bit layout of %d", len(b), kinfoProcSize64)
	}
	if got := int(int32(binary.LittleEndian.Uint32(b[kinfoOffPID:]))); got != pid {
		return "", fmt.Errorf("kinfo_proc names pid %d, not %d", got, pid)
	}
	sec := int64(binary.LittleEndian.Uint64(b[kinfoOffStartSec:]))
	usec := int64(binary.LittleEndian.Uint64(b[kinfoOffStartUsec:]))
	return formatTimeval(sec, usec), nil
}

func formatTimeval(sec, usec int64) string {
	return strconv.FormatInt(sec, 10) + "." + strconv.FormatInt(usec, 10)
}

// Stopped says the process is stopped by a signal (T) or by a tracer (t).
func (st Stat) Stopped() bool { return st.State == 'T' || st.State == 't' }

var errStatusUID = errors.New("no Uid line in /proc/<pid>/status")

// ParseStatusUID reads the real uid from a /proc/<pid>/status file: the
// first of the four numbers of its "Uid:" line (real, effective, saved, fs).
func ParseStatusUID(b []byte) (int, error) {
	for _, line := range bytes.Split(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			break
		}
		uid, err := strconv.ParseUint(string(f[0]), 10, 32)
		if err != nil {
			break
		}
		return int(uid), nil
	}
	return 0, errStatusUID
}
