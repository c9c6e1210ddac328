package main

import (
	"fmt"
	"io"
	"strings"
)

// The reference manual, one page per command. `gwlock help CMD` prints a
// page; the man page gwlock.1 is rendered from the same pages by `make man`
// (manual_test.go), and a test fails when the committed gwlock.1 is out of
// date, so the two cannot disagree.

// manualPage is one command's reference.
type manualPage struct {
	name     string
	synopsis string
	summary  string
	sections []manualSection
}

// manualSection is a titled run of paragraphs, term/definition items and
// lines shown verbatim. Text is unwrapped: each renderer wraps it for its medium.
type manualSection struct {
	title string
	paras []string
	items []manualItem
	code  []string
}

type manualItem struct{ term, text string }

// Flags shared by run, status and unlock: written once.
var lockFlagItems = []manualItem{
	{"--config PATH", "The gateway's config file; its path names the lock. The file must exist, but its contents are never read: its absolute path (directories resolved, the last component kept as named) names the lock gateway.<first 8 hex digits of sha256(path)>.lock in the lock dir, so every starter naming the same file contends for the same lock. A config swapped by re-pointing a symlink (a Kubernetes ConfigMap's config.json -> ..data/config.json) keeps its lock; a bind mount or hard link of it is another name and so another lock. Not a file (missing, a directory, a pipe such as /dev/stdin, a per-process name such as /dev/fd/N): exit 66, since each would name no stable lock; status still reports on the lock a missing config names. [GWLOCK_CONFIG]"},
	{"--lock FILE", "An explicit lock file instead of one derived from --config. Give one of --config and --lock. [GWLOCK_LOCK]"},
	{"--lock-dir DIR", "Where derived locks live. The default depends on the uid alone so that every context finds the same lock: /run/gwlock for root (/var/run/gwlock where there is no /run), /tmp/gwlock-<uid> for others (created 0700, refused with exit 77 if another user owns it); on Windows %LOCALAPPDATA%\\gwlock. A directory named here is never created or chmodded: it must be owned by us or root, and carry the sticky bit if others can write it, else exit 77. The default never depends on XDG_RUNTIME_DIR or TMPDIR, so a shell, cron, a unit and sudo find the same lock as the same user; a non-root unit with PrivateTmp=yes has a /tmp of its own and needs --lock-dir. [GWLOCK_LOCK_DIR]"},
	{"--port N", "The gateway's TCP port. It is recorded in the lock and probed for readiness and for conflicts. [GWLOCK_PORT]"},
	{"--host H", "The host to probe (default 127.0.0.1). [GWLOCK_HOST]"},
	{"--timeout D", "How long to wait for a lock a live owner holds (default 5s, 0 tries once). [GWLOCK_TIMEOUT]"},
	{"--poll D", "The longest pause between retries that cannot wait on the kernel (default 100ms)."},
	{"--stale D", "The age after which an unjudgeable owner's lock may be reclaimed (default 30s). A lock whose owner is known dead is reclaimed at once; --stale only matters for an owner on another host or a file without a kernel lock, and only while its port is silent. [GWLOCK_STALE]"},
	{"--log-format F", "Telemetry format on stderr: text (logfmt, the default) or json. Either way one line per event. [GWLOCK_LOG_FORMAT]"},
	{"-q, --quiet", "Only warnings and errors."},
}

// The etcd backend's flags (run and status).
var etcdFlagItems = []manualItem{
	{"--backend file|etcd", "file (the default) or etcd. file is the single-host lock; etcd keeps one active gateway across hosts: run takes the local file lock, then a lease-backed key in etcd, and stops the gateway on a local deadline before its lease can expire. [GWLOCK_BACKEND]"},
	{"--etcd-endpoints URLS", "Comma-separated etcd client URLs, https://host:2379,... (http:// works, with a warning line). [GWLOCK_ETCD_ENDPOINTS]"},
	{"--etcd-prefix P", "The key prefix, starting with / (default /gwlock). The key is P/v1/<lock name>. [GWLOCK_ETCD_PREFIX]"},
	{"--etcd-cacert FILE, --etcd-cert FILE, --etcd-key FILE", "PEM files for TLS and mutual TLS. The CA that signed etcd's certificate, and a client certificate and key."},
	{"--etcd-user NAME, --etcd-password-file FILE", "etcd RBAC; the password is read from the file, never from argv. Authentication goes through /v3/auth/authenticate."},
	{"--lock-name NAME", "The key's last part (default: a hash of the config file's contents). Set it when the hosts' configs differ. [GWLOCK_LOCK_NAME]"},
	{"--lease-ttl D", "The lease's TTL in whole seconds (default 20s). It must be at least 3 times the stop budget B = --stop-timeout + 0.5s + --lease-margin, and TTL - TTL/3 - B must cover an etcd leader election (3s) plus one request attempt (TTL/3, at most 2s), so a holder keeps renewing through it (exit 2 otherwise, naming the smallest TTL that fits); --stop-timeout defaults to 5s under etcd."},
	{"--lease-margin D", "How long gwlock itself may be frozen without the stop rule failing (default 1s). A paused VM or a stopped process is such a freeze."},
	{"--takeover-delay auto|D", "How long a new holder waits before starting its gateway after the last holder's key was deleted, or its lease revoked, before the lease could expire: auto (the default) waits that holder's own stop budget; a duration replaces it, 0 for none. After the lease expired nothing waits: that holder's stop deadline has passed. [GWLOCK_TAKEOVER_DELAY]"},
}

var durationNote = "Durations take Go syntax (250ms, 5s, 1m) or bare seconds. Every flag that names an environment variable also reads it; the flag wins."

// manualPages builds the pages when asked: as a package variable they were
// built (appends and all) at every start of every command.
func manualPages() []manualPage {
	return []manualPage{runPage(), statusPage(), probePage(), unlockPage()}
}

func runPage() manualPage {
	return manualPage{
		name:     "run",
		synopsis: "gwlock run [flags] -- COMMAND [ARG...]",
		summary:  "take the lock, run the gateway, hold the lock until it is gone",
		sections: []manualSection{
			{title: "DESCRIPTION", paras: []string{
				"run takes the lock named by --config (or --lock), then starts COMMAND directly, with no shell, passing the environment through plus GWLOCK_LOCK_PATH, the lock file's path, and GWLOCK_LOCK_TOKEN, this holding's token, by which a judge finds the gateway's processes if its launcher died before recording them. The gateway inherits the lock's descriptor as fd 3 and, on Linux, after it the read end of the pipe that carries its death signal (fd 4; fd 3 without a lock): it may close it, and must not read it. run holds the lock until the gateway and all its descendants are gone (a gateway that daemonizes keeps the lock through its daemon: on Linux and FreeBSD run is a subreaper and waits for the whole tree, elsewhere for every process that shares the lock), removes the lock file, and exits with the gateway's code.",
				"A lock whose owner is dead is reclaimed at once; one whose owner cannot be judged (another host, no kernel lock) only after --stale. A live owner's lock is never taken: run waits up to --timeout, then exits 75; with --if-running ok it exits 0 as soon as a live owner is established.",
				"With --port, run refuses to start when another process already serves the port (exit 69; on the default loopback host both 127.0.0.1 and ::1 are checked). gateway-ready is reported once every configured check has passed: the HTTP probe of --ready-url if given, else a TCP connect to --port; and with --ready-notify, the gateway's own READY=1. With NOTIFY_SOCKET set, run tells systemd READY=1 and MAINPID then, and STOPPING=1 on stop.",
				"The gateway is a supervised child, not the unit's main process: run does not pass it NOTIFY_SOCKET, WATCHDOG_PID, WATCHDOG_USEC, LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES, INVOCATION_ID, SYSTEMD_EXEC_PID, JOURNAL_STREAM or MANAGERPID (they name gwlock, or make a gateway believe that systemd restarts it directly). Instead the gateway gets a NOTIFY_SOCKET of its own, <lock file>.notify in the lock dir (POSIX), removed when run exits: READY=1 there is gwlock's readiness (with --ready-notify), STATUS= and EXTEND_TIMEOUT_USEC= are passed on to systemd, anything else (MAINPID=, WATCHDOG=) is dropped.",
				"SIGTERM and SIGQUIT stop the gateway with --stop-signal (SIGQUIT is not passed on: it kills a Node gateway at once, in the middle of its drain); SIGINT stops it with SIGINT. SIGUSR1, SIGUSR2 and SIGWINCH are forwarded to it; SIGHUP restarts it while the lock stays held. A stop sends the signal to the gateway's process group, logs stop (the signal, the reason: signal, restart, lock-lost or ready-timeout, and which signal asked), waits --stop-timeout, then sends SIGKILL and logs stop-escalated. If gwlock itself is killed, the kernel sends the gateway --death-signal once: on Linux to each process of its process group, as a stop does, through a pipe whose last writer was gwlock, so also after the gateway changed uid (setuid(), setpriv, su, runuser, a set-user-ID program); on FreeBSD to its main process, as a parent-death signal; on Windows a job object kills it. macOS sends nothing. A gateway that outlives its launcher anyway (macOS, or one that ignores the signal) keeps the lock through fd 3 until it exits, and status reports it as orphaned.",
				"A stop signal during a restart backoff ends run at once with 128+N for that signal. While a backoff runs, status says restarting, with the last exit code and when the next start comes.",
				"Every --stale/3, run checks that the lock path still names its file; if someone removed or replaced it, it reports lock-lost, stops the gateway and exits 1. As PID 1 (a container's entrypoint) run reaps every zombie re-parented to it.",
			}},
			{title: "OPTIONS", paras: []string{durationNote}, items: append(append([]manualItem{}, lockFlagItems...),
				manualItem{"--ready-url URL", "Ready when a GET of http://HOST:PORT/PATH answers 2xx, not when --port accepts a connection. Like a Kubernetes httpGet probe, each try is bounded to 1s. Plain HTTP only."},
				manualItem{"--ready-notify", "Ready also needs the gateway's own READY=1. run waits for READY=1 on the NOTIFY_SOCKET run gives it. POSIX only, and not with GWLOCK_ALLOW_MULTI=1 (exit 2)."},
				manualItem{"--ready-timeout D", "Stop a gateway not ready within D of its start (default 0: wait forever). run logs ready-timeout and stops it; that life ends with code 124, to which the restart policy applies (with --restart no, run exits 124)."},
				manualItem{"--stop-signal SIG", "The gateway's graceful stop signal (default SIGTERM). Like systemd's KillSignal= or Docker's STOPSIGNAL, given as SIGTERM, TERM or 15; only a signal that ends a process by default (not SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT, SIGCHLD, SIGWINCH, SIGURG). Also its death signal on one host, unless --death-signal says otherwise. Windows: CTRL_BREAK_EVENT only."},
				manualItem{"--death-signal SIG", "What the kernel sends the gateway, once, when gwlock dies (SIGKILL, an OOM kill): default --stop-signal, or SIGKILL under --backend etcd, where a standby may start once the lease expires and no launcher is left to escalate. Same forms and limits as --stop-signal. A stop that already sent the gateway this signal (SIGTERM, or SIGHUP's restart, with the defaults) mutes it: a gwlock killed during that drain sends nothing more. Linux sends it to the gateway's process group, as a stop does (a process that left the group, a daemon, gets none), FreeBSD to its main process alone; macOS has no such signal, and Windows kills the gateway's job object."},
				manualItem{"--stop-timeout D", "The grace between the stop signal and SIGKILL (default 10s). Size it to the gateway's whole drain, and keep systemd's TimeoutStopSec= (or docker stop's timeout) above it."},
				manualItem{"--restart no|on-failure|always", "When to restart the gateway after it exits (default no). on-failure restarts it after a non-zero code or a signal, always after any exit; the backoff is 1s doubling to 30s and resets after 60s of uptime. The lock stays held across restarts."},
				manualItem{"--restart-prevent-exit-status CODES", "Exit codes never restarted, whatever --restart says (default 78). Like systemd's RestartPreventExitStatus=; 78 is EX_CONFIG, a gateway saying its configuration is wrong. Logged as restart-prevented; run exits with the code. Comma-separated; empty clears the list."},
				manualItem{"--restart-force-exit-status CODES", "Exit codes always restarted, even under --restart no (default none). Like systemd's RestartForceExitStatus=."},
				manualItem{"--if-running fail|ok", "What to do when a live owner holds the lock: fail (exit 75, the default) or ok (exit 0). fail waits up to --timeout, then exits 75; ok exits 0 at once, for idempotent scripts. An owner that cannot be judged is no proof that a gateway runs: ok then waits and exits 75 like fail."},
				manualItem{"--subreaper", "Fail if run cannot become a subreaper. run is one by default on Linux and FreeBSD, where it adopts the gateway's orphaned descendants; the flag is kept for compatibility."},
			)},
			{title: "ETCD BACKEND", paras: []string{"Under --backend etcd the gateway also gets GWLOCK_FENCE (the key's create revision, increasing across holders), GWLOCK_BACKEND and GWLOCK_LOCK_KEY. A holder that loses the lock (keepalive deadline, lease expired, key deleted) logs lock-lost, stops the gateway and exits 1: let the service manager restart it as a standby."}, items: etcdFlagItems},
			{title: "EXIT STATUS", items: []manualItem{
				{"N", "The gateway exited by itself with code N; 128+N if signal N killed it; 128+N also when signal N stopped run during a restart backoff."},
				{"78", "The gateway exited 78 (EX_CONFIG) under --restart on-failure or always: not restarted (--restart-prevent-exit-status)."},
				{"124", "--ready-timeout passed before the gateway was ready, and the restart policy did not restart it."},
				{"0", "Success; or --if-running ok and a live owner (alive or orphaned) holds the lock."},
				{"1", "Launcher failure: an I/O error on the lock, the lock lost, the supervisor could not start."},
				{"2", "Usage error: a bad flag, no -- COMMAND, both --config and --lock."},
				{"66", "--config names no file, a directory, no regular file (a pipe, a device, /dev/stdin) or a per-process name (/dev/fd/N): each would name no stable lock."},
				{"69", "--port is already served by a process that does not hold the lock."},
				{"75", "A live owner still holds the lock after --timeout. The last line names the holder and hints at gwlock status and, when a gateway is known to run, --if-running ok."},
				{"71", "The OS refused gwlock a process, thread, descriptor or memory (EX_OSERR): the gateway could not be forked (ulimit -u, ulimit -n), or too few processes are left for gwlock's own threads under ulimit -u or the cgroup's pids.max (systemd's TasksMax); the line names the step and the limit to raise. Nothing is left behind: no lock, no gateway."},
				{"77", "Unsafe lock directory or lock file: another user's, writable by others, a symlink, not a regular file."},
				{"126, 127", "COMMAND is not executable, or not found (a fork the OS refused is 71)."},
			}},
			{title: "EXAMPLE", code: []string{
				"gwlock run --config /etc/gateway/config.json --port 18789 -- \\",
				"    gateway-server --port 18789",
			}},
		},
	}
}

func statusPage() manualPage {
	return manualPage{
		name:     "status",
		synopsis: "gwlock status [flags] [--json]",
		summary:  "who holds the lock, is it alive, is its port listening",
		sections: []manualSection{
			{title: "DESCRIPTION", paras: []string{
				"status reads the lock named by --config (or --lock) and prints one line: the lock path, its state, the reason, the owner's pid, its gateway's pid, its port and whether the port is listening. It only reads: it never keeps a lock it found free, and never removes a file. A value holding a space, '=', '\"', a control character or bytes that are not UTF-8 is quoted as in the telemetry lines (Go's strconv.Quote), so no path can forge a line or a key.",
				"States: running (a live launcher holds the lock and a process of its gateway's tree is known to live; for a tree status cannot see, another host's or another PID namespace's, its port listens), restarting (a live launcher waits out a restart backoff: last_exit is the last gateway's code, restart_at when the next one starts, and no gateway pid is named; or its gateway just exited), starting (a live launcher that has recorded no gateway yet), stopped (a signal stopped the launcher, launcher=stopped, and no process of its gateway's tree lives, in a restart backoff too), orphaned (the launcher is dead but its gateway, or the gateway's descendants, still hold the lock: their pids are named), dead (a lock file left by a dead owner, with the reason: owner-dead, pid-reused, host-rebooted, stale-unknown-owner), not-running (no lock file), unknown (an owner that cannot be judged, such as one on another host or in another PID namespace whose tree cannot be seen, a tree that ran as more uids than its payload records, a fact that could not be read, with unknown_reason naming the read that failed, or a lock that could not be read). Only a positive fact proves an owner dead; one gwlock cannot read (too many open files, permission denied, a hidden or missing /proc) never does. The payload is shown without its token.",
			}},
			{title: "OPTIONS", paras: []string{durationNote}, items: append(append([]manualItem{}, lockFlagItems...),
				manualItem{"--json", "Print the report as one JSON object, the owner's payload included. A string gwlock does not choose (a path, the payload's strings, an error) that holds an unprintable rune or a byte that is not UTF-8, or begins with '\"', is Go-quoted inside its JSON string (read it back with strconv.Unquote), so no two paths print the same."},
			)},
			{title: "ETCD BACKEND", paras: []string{"With --backend etcd, status prints the key's holder: its host, pid, fence, gateway pid and the lease's TTL left; exit 0 held, 3 not held, 4 unknown or unreachable."}, items: etcdFlagItems},
			{title: "EXIT STATUS", paras: []string{"The LSB init-script codes."}, items: []manualItem{
				{"0", "Running, restarting, starting or orphaned: a gateway holds the lock, or its launcher does between two gateways."},
				{"1", "A lock file left by a dead owner."},
				{"3", "Not running: no lock file, or a stopped launcher whose gateway is gone."},
				{"4", "Unknown: the owner cannot be judged, or the lock could not be read."},
			}},
		},
	}
}

func probePage() manualPage {
	return manualPage{
		name:     "probe",
		synopsis: "gwlock probe --port N [--host H] [--wait D]",
		summary:  "TCP connect probe; with --wait, poll until ready or D passes",
		sections: []manualSection{
			{title: "DESCRIPTION", paras: []string{
				"probe connects to H:N over TCP and closes the connection at once. It tells whether something listens, not whether it is the gateway. Every attempt is bounded, so an unreachable host cannot block it.",
			}},
			{title: "OPTIONS", paras: []string{durationNote}, items: []manualItem{
				{"--port N", "The port to probe (required). [GWLOCK_PORT]"},
				{"--host H", "The host to probe (default 127.0.0.1). [GWLOCK_HOST]"},
				{"--wait D", "Poll until the port accepts a connection or D passes (default: one attempt)."},
			}},
			{title: "EXIT STATUS", items: []manualItem{
				{"0", "Listening."},
				{"1", "Not listening (after --wait, if given)."},
				{"2", "Usage error."},
			}},
		},
	}
}

func unlockPage() manualPage {
	return manualPage{
		name:     "unlock",
		synopsis: "gwlock unlock [flags]",
		summary:  "remove a lock whose owner is provably gone; never a live one",
		sections: []manualSection{
			{title: "DESCRIPTION", paras: []string{
				"unlock removes the lock file named by --config (or --lock) only when its owner is provably gone (owner-dead, pid-reused, host-rebooted), while holding the file's kernel lock and after checking that the path still names that file. It refuses a live owner and an owner that cannot be judged: a stale lock of unknown ownership is left to run, which reclaims it after --stale. run never needs unlock: it reclaims a dead owner's lock by itself.",
				"unlock says what it did in one line on stderr: the stale-lock-recovered event naming the removed owner's pid and why it is gone, that there was nothing to remove, or why it refused.",
			}},
			{title: "OPTIONS", paras: []string{durationNote}, items: lockFlagItems},
			{title: "EXIT STATUS", items: []manualItem{
				{"0", "Removed, or there was nothing to remove."},
				{"1", "Refused: the owner is alive or cannot be proven gone; or an I/O error."},
				{"2", "Usage error."},
				{"77", "Unsafe lock directory or lock file."},
			}},
		},
	}
}

// cmdHelp is `gwlock help [COMMAND]`: the usage summary, or one command's page.
func cmdHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usageText())
		return exitOK
	}
	for _, p := range manualPages() {
		if len(args) == 1 && p.name == args[0] {
			writeManualText(stdout, p)
			return exitOK
		}
	}
	return fail(stderr, usagef("no manual for %q (hint: gwlock help run|status|probe|unlock)", strings.Join(args, " ")))
}

// helpRequested reports whether gwlock's own flags (those before any --) ask
// for help, so `gwlock run --help` prints run's page instead of a usage error.
func helpRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// writeManualText renders a page for a terminal, wrapped at 78 columns.
func writeManualText(w io.Writer, p manualPage) {
	fmt.Fprintf(w, "gwlock %s: %s\n\nusage: %s\n", p.name, p.summary, p.synopsis)
	for _, s := range p.sections {
		fmt.Fprintf(w, "\n%s\n", s.title)
		for i, para := range s.paras {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprint(w, wrapText(para, "  ", "  ", 78))
		}
		if len(s.paras) > 0 && len(s.items) > 0 {
			fmt.Fprintln(w)
		}
		for _, it := range s.items {
			// Like man's .TP: a short term shares its first line with the text.
			const indent = "          "
			first := "  " + it.term + "\n" + indent
			if len(it.term)+3 <= len(indent) {
				first = "  " + it.term + indent[len(it.term)+2:]
			}
			fmt.Fprint(w, wrapText(it.text, first, indent, 78))
		}
		for _, line := range s.code {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
}

// wrapText fills words into lines of at most width columns: the first line
// starts with first (whose last line counts), the others with indent.
func wrapText(text, first, indent string, width int) string {
	var b strings.Builder
	start := first[strings.LastIndexByte(first, '\n')+1:]
	b.WriteString(first[:len(first)-len(start)])
	line, empty := start, true
	for _, word := range strings.Fields(text) {
		if !empty && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line, empty = indent, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	b.WriteString(line + "\n")
	return b.String()
}

// usageText is what `gwlock -h` prints: each command's synopsis and summary,
// then each flag with the first sentence of its manual text, so that the
// short help is the start of the long one and the two cannot disagree.
func usageText() string {
	var b strings.Builder
	b.WriteString("usage:\n")
	pages := manualPages()
	for _, p := range pages {
		b.WriteString(wrapText(p.summary, "  "+p.synopsis+"\n      ", "      ", 78))
	}
	b.WriteString("  gwlock version\n  gwlock help COMMAND\n      the full reference for one command\n")
	writeFlagBriefs(&b, "lock flags (run, status, unlock)", lockFlagItems)
	for _, p := range pages {
		writeFlagBriefs(&b, p.name+" flags", ownFlagItems(p))
	}
	writeFlagBriefs(&b, "etcd backend flags (run, status)", etcdFlagItems)
	b.WriteString("\n" + wrapText(durationNote, "", "", 78))
	return b.String()
}

// ownFlagItems is the flags a page documents beyond the shared lock and etcd
// flags.
func ownFlagItems(p manualPage) []manualItem {
	shared := map[manualItem]bool{}
	for _, it := range append(append([]manualItem{}, lockFlagItems...), etcdFlagItems...) {
		shared[it] = true
	}
	var own []manualItem
	for _, s := range p.sections {
		if s.title != "OPTIONS" {
			continue
		}
		for _, it := range s.items {
			if !shared[it] {
				own = append(own, it)
			}
		}
	}
	return own
}

// writeFlagBriefs writes a titled list of flags, each with its brief.
func writeFlagBriefs(w io.Writer, title string, items []manualItem) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, it := range items {
		const indent = "                        "
		first := "  " + it.term + "\n" + indent
		if len(it.term)+4 <= len(indent) {
			first = "  " + it.term + indent[len(it.term)+2:]
		}
		brief, env := flagBrief(it.text)
		if env != "" {
			brief += " [" + env + "]"
		}
		fmt.Fprint(w, wrapText(brief, first, indent, 78))
	}
}

// flagBrief is the first sentence of a flag's manual text and the
// environment variable the text names in its closing [VAR], if any.
func flagBrief(text string) (brief, env string) {
	if i := strings.LastIndex(text, " ["); i >= 0 && strings.HasSuffix(text, "]") {
		text, env = text[:i], text[i+2:len(text)-1]
	}
	if i := strings.Index(text, ". "); i >= 0 {
		text = text[:i+1]
	}
	return text, env
}
