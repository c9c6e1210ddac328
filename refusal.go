package main

import "fmt"

// unsafeError is a lock directory or lock path that gwlock refuses to touch
// (exit 77): another user's, writable by others, a symlink, not a regular file.
type unsafeError struct {
	What, Path, Why, Hint string
}

func (e *unsafeError) Error() string {
	return fmt.Sprintf("%s %s: %s", e.What, e.Path, e.Why)
}

// refusal is one kind of refusal (exit 77): what is refused, and the hint
// that says what to do instead. Each kind is declared once, below or (where
// only one OS meets it) in its OS file, and every refusal is made by of.
type refusal struct{ what, hint string }

func (r refusal) of(path, why string) error {
	return &unsafeError{What: r.what, Path: path, Why: why, Hint: r.hint}
}

var (
	notRegularLockPath = refusal{"lock path", "remove it or choose another --lock"}
	foreignLockFile    = refusal{"lock file", "another user holds this path; use a lock dir of your own"}
	foreignLockDir     = refusal{"lock dir", "use a directory you own"}
	notDirLockDir      = refusal{"lock dir", "remove it or choose another --lock-dir"}
	looseLockDir       = refusal{"lock dir", "chmod go-w or chmod +t it, or choose another --lock-dir"}
	unrealLockDir      = refusal{"lock dir", "name the real directory with --lock-dir or --lock"} // reached through a link not followed
	squattedLockDir    = refusal{"lock dir", "remove it, or pass --lock-dir naming a directory of your own"}
)

// whyDirNotFile is the refusal of a directory at the lock path.
const whyDirNotFile = "is a directory, not a regular file"
