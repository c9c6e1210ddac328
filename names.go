package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// sweepTemps removes temp files that acquisitions killed before publishing
// left in dir. Each creator flocks its temp file from birth, so a temp file
// whose kernel lock we can take belongs to a dead process; without kernel
// locks, age decides. Only names of this lock's own pattern are touched, and
// each only after checking that the name still denotes the file we judged.
func sweepTemps(dir *checkedDir, base string, stale time.Duration) {
	names, err := dir.names()
	if err != nil {
		return
	}
	prefix := "." + base + "."
	for _, name := range names {
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, tempSuffix) {
			continue
		}
		f, err := openExisting(dir, name)
		if err != nil {
			continue
		}
		// A creator flocks its temp file a few syscalls after creating it, so
		// a free kernel lock alone proves nothing for a young file: its
		// creator, named in the file name, must also be gone.
		_, mtime, rerr := f.readPayload()
		got, _ := f.tryLock()
		if !f.kernel {
			got = time.Since(mtime) > stale
		}
		if got && rerr == nil && (time.Since(mtime) > bornGrace || tempCreatorGone(name, prefix)) {
			if same, _ := f.namedBy(dir, name); same {
				_ = removeLockPath(dir, name)
			}
		}
		f.close()
	}
}

// tempSuffix ends every temp file gwlock makes beside a lock.
const tempSuffix = ".tmp"

// tempName is the one format of a temp file beside the lock base:
// .<base>.<tag>.<unique>.tmp, which sweepTemps matches. An acquisition's own
// file is tagged with its creator's pid (ownTempName), which tempCreatorGone
// reads back; a file renamed out of the way is tagged with why.
func tempName(base, tag string) string {
	return "." + base + "." + tag + "." + uniqueSuffix() + tempSuffix
}

// ownTempName names this process's new lock file before it is published.
func ownTempName(base string) string { return tempName(base, strconv.Itoa(os.Getpid())) }

// uniqueSuffix names temp files. It needs to be unlikely to collide, not
// secret (O_EXCL refuses a collision): crypto/rand would add half a megabyte.
func uniqueSuffix() string {
	n := tempCounter.Add(1)
	return strconv.FormatUint(uint64(time.Now().UnixNano())^(n<<48), 36)
}

var tempCounter atomic.Uint64

// tempCreatorGone reads the creator's PID from a temp name
// (.<lock>.<pid>.<random>.tmp) and reports whether that process is gone.
func tempCreatorGone(name, prefix string) bool {
	rest := strings.TrimPrefix(name, prefix)
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return false
	}
	pid, err := strconv.Atoi(rest[:dot])
	return err == nil && pid > 0 && pid != os.Getpid() && processProbe(pid) == pidAbsent
}

// derivedLockName is the seed's scheme: the first 8 hex digits of the SHA-256
// of the config's absolute path.
func derivedLockName(configPath string) string {
	sum := sha256.Sum256([]byte(configPath))
	return "gateway." + hex.EncodeToString(sum[:4]) + ".lock"
}
