package main

import (
	"bytes"
	"os"
	"reflect"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// dropProgramPages lets go, once per launcher, of this process's resident
// pages of its own program file: code and read-only data, which starting
// touched nearly all of (the runtime walks its function table at start, and
// the kernel maps neighbouring pages with each fault), about 5.6 MiB of a
// launcher's 7.4. A supervising launcher runs a small part of that code
// again; the rest would stay resident for its whole life. These pages are
// clean copies of the file, still in the page cache: dropping them
// (MADV_DONTNEED) loses nothing, and a page used again is mapped again on
// its next touch. A mapping is dropped only when smaps shows it holds no
// page of its own (Anonymous: 0 kB): a read-only mapping that was written
// before it was made read-only (a relocated segment of a dynamically
// linked build) holds the only copy of what was written.
var dropProgramPages = sync.OnceFunc(dropProgram)

func dropProgram() {
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return
	}
	ms := mappings(smaps)
	program := mappedFile(ms, uint64(reflect.ValueOf(mappedFile).Pointer()))
	if program == "" {
		return
	}
	for _, m := range ms {
		if m.path == program && m.perms[1] != 'w' && m.anonymous == 0 {
			_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED)
		}
	}
}

// mapping is one entry of /proc/self/smaps.
type mapping struct {
	start, end uint64
	perms      []byte
	path       string
	anonymous  int64 // kB of the mapping's own pages (copies written or made anonymous)
}

// mappings parses smaps: a header line per mapping ("start-end perms offset
// dev inode path"), then "Key: value" lines.
func mappings(smaps []byte) []mapping {
	var out []mapping
	for _, line := range bytes.Split(smaps, []byte("\n")) {
		if m, ok := parseMapsLine(line); ok {
			out = append(out, m)
			continue
		}
		if rest, ok := bytes.CutPrefix(line, []byte("Anonymous:")); ok && len(out) > 0 {
			kb := int64(-1) // unreadable: the mapping's pages are kept
			if f := bytes.Fields(rest); len(f) > 0 {
				if n, err := strconv.ParseInt(string(f[0]), 10, 64); err == nil {
					kb = n
				}
			}
			out[len(out)-1].anonymous = kb
		}
	}
	return out
}

// mappedFile is the path of the file mapped at address pc, "" if none.
func mappedFile(ms []mapping, pc uint64) string {
	for _, m := range ms {
		if m.start <= pc && pc < m.end {
			return m.path
		}
	}
	return ""
}

// parseMapsLine reads a mapping's header line; a "Key: value" line is none.
func parseMapsLine(line []byte) (mapping, bool) {
	f := bytes.Fields(line)
	if len(f) < 5 || len(f[1]) != 4 {
		return mapping{}, false
	}
	lo, hi, found := bytes.Cut(f[0], []byte("-"))
	if !found {
		return mapping{}, false
	}
	start, err1 := strconv.ParseUint(string(lo), 16, 64)
	end, err2 := strconv.ParseUint(string(hi), 16, 64)
	if err1 != nil || err2 != nil || end <= start {
		return mapping{}, false
	}
	m := mapping{start: start, end: end, perms: f[1], anonymous: -1}
	if len(f) >= 6 {
		// The path is the rest of the line: it may hold spaces.
		m.path = string(bytes.TrimSpace(line[bytes.Index(line, f[5]):]))
	}
	return m, true
}
