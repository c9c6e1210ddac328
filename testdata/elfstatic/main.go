// Elfstatic fails unless every ELF file named on its command line is
// statically linked: no program interpreter (PT_INTERP) and no dynamic
// section. Such a binary starts in an empty (FROM scratch) container. A
// plain `go build` with cgo available links net's cgo resolver and libc
// dynamically; `make static-check` catches that regression.
package main

import (
	"debug/elf"
	"fmt"
	"os"
)

func main() {
	failed := false
	for _, path := range os.Args[1:] {
		if err := checkStatic(path); err != nil {
			fmt.Fprintf(os.Stderr, "elfstatic: %s: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("%s: static\n", path)
	}
	if failed || len(os.Args) < 2 {
		os.Exit(1)
	}
}

func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			return fmt.Errorf("dynamically linked (has a program interpreter)")
		case elf.PT_DYNAMIC:
			return fmt.Errorf("dynamically linked (has a dynamic segment)")
		}
	}
	if f.Section(".dynamic") != nil {
		return fmt.Errorf("dynamically linked (has a .dynamic section)")
	}
	return nil
}
