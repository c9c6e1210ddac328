//go:build !linux

package exechelper

import (
	"errors"
	"os"
)

// Load: there is no memfd, and no program, off Linux.
func Load() (*os.File, error) { return nil, errors.ErrUnsupported }
