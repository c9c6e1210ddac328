package proc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
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
	st, start, err := scanStat(b)
	if start != nil {
		st.StartTime = string(start)
	}
	return st, err
}

// scanStat is ParseStat without a copy of the start time, which it returns
// as a slice of b: a scan of the process table parses every process's line
// and needs no start time, so nothing of it is allocated per process.
func scanStat(b []byte) (Stat, []byte, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, nil, errStatLine
	}
	var st Stat
	var ids [3]int // fields 4 to 6: parent, group, session
	var start []byte
	rest, n := b[i+1:], 3 // field 3, the state, comes first
	for ; n <= 22; n++ {
		var f []byte
		if f, rest = nextField(rest); f == nil {
			break
		}
		switch n {
		case 3:
			if len(f) != 1 {
				return Stat{}, nil, errStatLine
			}
			st.State = f[0]
		case 4, 5, 6:
			v, err := strconv.Atoi(string(f))
			if err != nil {
				return Stat{}, nil, errStatLine
			}
			ids[n-4] = v
		case 20:
			st.Threads, _ = strconv.Atoi(string(f))
		case 22:
			if _, err := strconv.ParseUint(string(f), 10, 64); err == nil {
				start = f
			}
		}
	}
	if n <= 6 {
		return Stat{}, nil, errStatLine
	}
	st.PPID, st.Group, st.Session = ids[0], ids[1], ids[2]
	return st, start, nil
}

// nextField splits the first field off b as bytes.Fields would, without
// making the slice of all of them.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += size
	}
	j := i
	for j < len(b) {
		r, size := utf8.DecodeRune(b[j:])
		if unicode.IsSpace(r) {
			break
		}
		j += size
	}
	if i == j {
		return nil, nil
	}
	return b[i:j], b[j:]
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
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		f, _ := nextField(rest)
		if f == nil {
			break
		}
		uid, err := strconv.ParseUint(string(f), 10, 32)
		if err != nil {
			break
		}
		return int(uid), nil
	}
	return 0, errStatusUID
}
