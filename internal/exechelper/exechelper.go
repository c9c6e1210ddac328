// Package exechelper is a tiny static Linux program that executes a
// gateway once its launcher says the gateway's death signal is armed, and
// the means to run it without a file on disk.
//
// A launcher that wants its gateway signalled exactly once when it dies
// arms a pipe (O_ASYNC, F_SETOWN naming the gateway's process group), and
// F_SETOWN needs a process that exists. The helper is that process: forked
// with SIGKILL as its parent-death signal, it waits for one byte, 'g', on
// its report socket, gives up the parent-death signal, puts the gateway's
// stderr in place, marks its own descriptors close-on-exec, writes 'x' on
// the report socket and executes the gateway. If the exec fails it writes
// "\x00errno=N\n" after the 'x' and exits 126; if the report socket ends
// (or brings anything but 'g') before that, it exits 1 and executes
// nothing. It links no runtime, so it costs an execve and no more, where a
// second start of a Go program costs milliseconds.
//
// Its arguments are [name, n, path, argv...], n in decimal and at least 3,
// and it expects these descriptors: n the death pipe's read end (which the
// gateway keeps), n+1 its write end, n+2 the report socket, n+3 the
// gateway's stderr, n+4 the program itself (see Load). It is executed
// through /proc/self/fd/(n+4).
//
// Program has the machine code for linux/amd64 only; elsewhere it is nil
// and the caller needs another helper. testdata/helper_amd64.S is its
// source, and a test assembles it and compares.
package exechelper

import "encoding/binary"

// Program is the helper as a static ELF executable for this platform, nil
// where there is none.
func Program() []byte {
	if code == nil {
		return nil
	}
	return elf64(code, machine)
}

// base is where the program is loaded: the customary address of a static
// executable's first page.
const base = 0x400000

// elf64 wraps code in an ELF64 little-endian executable header with two
// program headers: one loadable segment, read and execute, holding the
// whole file with code at its end, and PT_GNU_STACK, so the stack is not
// executable.
func elf64(code []byte, machine uint16) []byte {
	const ehsize, phsize, phnum = 64, 56, 2
	hdr := ehsize + phsize*phnum
	b := make([]byte, hdr+len(code))
	le := binary.LittleEndian
	copy(b, "\x7fELF\x02\x01\x01") // 64-bit, little-endian, version 1, System V ABI
	le.PutUint16(b[16:], 2)        // ET_EXEC
	le.PutUint16(b[18:], machine)
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], base+uint64(hdr)) // entry
	le.PutUint64(b[32:], ehsize)           // program headers follow the header
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phsize)
	le.PutUint16(b[56:], phnum)
	load := b[ehsize:]
	le.PutUint32(load[0:], 1) // PT_LOAD
	le.PutUint32(load[4:], 5) // PF_R | PF_X
	le.PutUint64(load[16:], base)
	le.PutUint64(load[24:], base)
	le.PutUint64(load[32:], uint64(len(b)))
	le.PutUint64(load[40:], uint64(len(b)))
	le.PutUint64(load[48:], 0x1000)
	stack := b[ehsize+phsize:]
	le.PutUint32(stack[0:], 0x6474e551) // PT_GNU_STACK
	le.PutUint32(stack[4:], 6)          // PF_R | PF_W
	le.PutUint64(stack[48:], 16)
	copy(b[hdr:], code)
	return b
}
