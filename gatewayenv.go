package main

import (
	"runtime"
	"sort"
	"strings"
)

// The gateway's environment is gwlock's own (os.Environ, taken by
// supervisor.start), less unitEnv, what systemd meant for gwlock alone, plus
// what the lock's holder tells the gateway about its lock, each replacing
// any inherited value: GWLOCK_LOCK_PATH and GWLOCK_LOCK_TOKEN from the file
// lock (fileHold.gatewayEnv, backend.go); GWLOCK_FENCE, GWLOCK_BACKEND and
// GWLOCK_LOCK_KEY from the etcd lock (backend_etcd.go); NOTIFY_SOCKET, the
// relay's socket, when gwlock relays readiness (notify.go).

// unitEnv are the variables systemd gives the unit's main process, gwlock,
// that are false or harmful in the gateway, a supervised child:
// NOTIFY_SOCKET, WATCHDOG_* and LISTEN_* name gwlock's pid or its channel to
// systemd (gwlock gives the gateway its own NOTIFY_SOCKET); INVOCATION_ID,
// SYSTEMD_EXEC_PID, JOURNAL_STREAM and MANAGERPID make a gateway such as
// openclaw conclude that systemd restarts it directly, so on a respawn
// request it exits 0 expecting a restart that --restart on-failure never
// gives. The gateway's stderr still reaches the journal: it is gwlock's.
var unitEnv = map[string]string{
	"NOTIFY_SOCKET": "", "WATCHDOG_PID": "", "WATCHDOG_USEC": "",
	"LISTEN_PID": "", "LISTEN_FDS": "", "LISTEN_FDNAMES": "",
	"INVOCATION_ID": "", "SYSTEMD_EXEC_PID": "", "JOURNAL_STREAM": "", "MANAGERPID": "",
}

// gatewayEnv is base without unitEnv, with every variable in set replaced,
// not appended: with duplicates, Go's os.Getenv and most C runtimes return
// the first entry, so a GWLOCK_LOCK_PATH inherited from an outer gwlock
// would win over ours.
func gatewayEnv(base []string, set map[string]string) []string {
	env := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		if name := envName(kv); !envSets(set, name) && !envSets(unitEnv, name) {
			env = append(env, kv)
		}
	}
	names := make([]string, 0, len(set))
	for name := range set {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		env = append(env, name+"="+set[name])
	}
	return env
}

// envName is the name in a NAME=value entry. Windows keeps per-drive
// directories as "=C:=C:\\dir": a leading '=' belongs to the name.
func envName(kv string) string {
	if kv == "" {
		return ""
	}
	if i := strings.IndexByte(kv[1:], '='); i >= 0 {
		return kv[:i+1]
	}
	return kv
}

// envSets reports whether set names the variable name; Windows names are
// case-insensitive, so Gwlock_Lock_Path is the same variable there.
func envSets(set map[string]string, name string) bool {
	if _, ok := set[name]; ok || runtime.GOOS != "windows" {
		return ok
	}
	for k := range set {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}
