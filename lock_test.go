package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"gwlock/internal/proc"
	"gwlock/internal/telemetry"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stormSize is the number of contending processes; STORM_PROCS makes it bigger.
func stormSize(t *testing.T, def int) int {
	if v, err := strconv.Atoi(os.Getenv("STORM_PROCS")); err == nil && v > 0 {
		return v
	}
	return def
}

// runContenders starts n storm helpers at once (they wait on a shared stdin
// that is closed when all are running) and returns their outputs.
func runContenders(t *testing.T, n int, args ...string) []string {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	outs := make([]*bytes.Buffer, n)
	cmds := make([]interface{ Wait() error }, n)
	for i := range outs {
		cmd := helperCmd(t, "storm", append([]string{"-wait-stdin"}, args...)...)
		outs[i] = new(bytes.Buffer)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = pr, outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	pw.Close() // the starting gun
	res := make([]string, n)
	for i, c := range cmds {
		_ = c.Wait()
		res[i] = strings.TrimSpace(outs[i].String())
	}
	return res
}

// tally counts contenders that finished cleanly and their stale recoveries.
func tally(t *testing.T, outs []string) (ok, recoveries int) {
	t.Helper()
	for _, o := range outs {
		var n int
		if _, err := fmt.Sscanf(o, "ok %d", &n); err != nil {
			t.Errorf("contender: %q", o)
			continue
		}
		ok++
		recoveries += n
	}
	return ok, recoveries
}

// TestStorm: many real processes contend for one lock; each checks inside its
// critical section that nobody else is inside.
func TestStorm(t *testing.T) {
	dir := lockDir(t)
	procs, iters := stormSize(t, 40), 5
	outs := runContenders(t, procs, "-lock", filepath.Join(dir, "storm.lock"),
		"-marker", filepath.Join(dir, "inside"), "-n", strconv.Itoa(iters), "-hold", "200us")
	ok, _ := tally(t, outs)
	if ok != procs {
		t.Fatalf("storm: %d of %d contenders finished cleanly", ok, procs)
	}
	t.Logf("storm: %d processes x %d acquisitions, 0 violations", procs, iters)
	assertOnlyLockFile(t, dir)
}

// TestStormDetectsViolation shows that the storm's check can fail: contenders
// that take different locks share the critical section and are caught.
func TestStormDetectsViolation(t *testing.T) {
	dir := lockDir(t)
	pr, pw, _ := os.Pipe()
	defer pr.Close()
	var outs []*bytes.Buffer
	var cmds []interface{ Wait() error }
	for i := 0; i < 8; i++ {
		cmd := helperCmd(t, "storm", "-wait-stdin", "-lock", filepath.Join(dir, fmt.Sprintf("own%d.lock", i)),
			"-marker", filepath.Join(dir, "inside"), "-n", "5", "-hold", "20ms")
		b := new(bytes.Buffer)
		cmd.Stdin, cmd.Stdout = pr, b
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		outs, cmds = append(outs, b), append(cmds, cmd)
	}
	pw.Close()
	violations := 0
	for i, c := range cmds {
		_ = c.Wait()
		if strings.HasPrefix(outs[i].String(), "VIOLATION") {
			violations++
		}
	}
	if violations == 0 {
		t.Fatal("8 processes on 8 different locks never overlapped: the storm's detector is blind")
	}
}

// TestConcurrentRecovery: a dead owner's lock and many processes judging it
// dead at once, with a pause injected between judging and removing, so every
// one of them tries to reclaim. Exactly one recovery, and no overlap.
func TestConcurrentRecovery(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload func(t *testing.T) []byte
	}{
		{"flock-payload", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": deadPID(t), "flock": true, "createdAt": "2026-01-01T00:00:00.000Z"})
		}},
		{"legacy-payload", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": deadPID(t), "createdAt": "2026-01-01T00:00:00.000Z", "configPath": "/etc/gw.json"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := lockDir(t)
			lock := filepath.Join(dir, "r.lock")
			writeLockFile(t, lock, tc.payload(t), 0)
			// Wine's CreateProcess fails now and then ("Internal error") with
			// about 100 processes alive at once; Linux runs 100.
			procs := stormSize(t, 100)
			if runtime.GOOS == "windows" && os.Getenv("STORM_PROCS") == "" {
				procs = 48
			}
			outs := runContenders(t, procs, "-lock", lock, "-marker", filepath.Join(dir, "inside"),
				"-n", "1", "-hold", "1ms", "-pause-reclaim", "20ms")
			ok, recoveries := tally(t, outs)
			if ok != procs {
				t.Fatalf("%d of %d contenders finished cleanly", ok, procs)
			}
			if recoveries != 1 {
				t.Fatalf("stale recoveries = %d, want 1 (a second recovery deleted a live successor's lock)", recoveries)
			}
			assertOnlyLockFile(t, dir)
		})
	}
}

// assertOnlyLockFile: after everything, the dir holds no temp files.
func assertOnlyLockFile(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), tempSuffix) {
			t.Errorf("litter left in lock dir: %s", e.Name())
		}
	}
}

type staleCase struct {
	name    string
	payload func(t *testing.T) []byte
	age     time.Duration
	stale   string
	reason  string // "" means: must not be reclaimed
}

// TestStaleReasons runs gwlock against lock files left in every state that
// matters and checks what it decides.
func TestStaleReasons(t *testing.T) {
	for _, tc := range staleCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkStaleCase(t, tc)
		})
	}
}

// staleCases are the lock files TestStaleReasons leaves, with what gwlock
// must decide about each.
func staleCases() []staleCase {
	self := selfFacts()
	cases := append(reclaimedStaleCases(self), keptStaleCases(self)...)
	if self.bootID != "" {
		cases = append(cases, staleCase{"host-rebooted", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": liveProcess(t), "hostname": self.hostname, "bootId": "00000000-0000-0000-0000-000000000000"})
		}, 0, "30s", reasonHostRebooted})
	}
	return cases
}

// garbagePayload is a lock file no judge can read.
func garbagePayload(*testing.T) []byte { return []byte("\x00\x01 not json {") }

// reclaimedStaleCases are the lock files gwlock must reclaim, each for its reason.
func reclaimedStaleCases(self self) []staleCase {
	garbage := garbagePayload
	return []staleCase{
		{"flock-owner-dead", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": deadPID(t), "flock": true, "hostname": self.hostname})
		}, 0, "30s", reasonOwnerDead},
		// The container case: PID 1 is alive (it is init, or us), yet the
		// kernel lock is free, so its holder is gone.
		{"flock-pid1-container", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": 1, "flock": true, "startTime": "1", "hostname": self.hostname})
		}, 0, "30s", reasonOwnerDead},
		{"legacy-owner-dead", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": deadPID(t), "createdAt": "2026-01-01T00:00:00Z", "configPath": "/x"})
		}, 0, "30s", reasonOwnerDead},
		{"pid-reused", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": liveProcess(t), "startTime": "1"})
		}, 0, "30s", reasonPIDReused},
		{"pid-reused-numeric-starttime", func(t *testing.T) []byte {
			return []byte(fmt.Sprintf(`{"pid":%d,"startTime":1}`, liveProcess(t)))
		}, 0, "30s", reasonPIDReused},
		{"stale-unknown-garbage", garbage, time.Hour, "3s", reasonStaleUnknown},
		{"stale-unknown-other-host", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": 4242, "hostname": "elsewhere.example", "port": freePort(t)})
		}, time.Hour, "3s", reasonStaleUnknown},
		{"stale-unknown-pid-out-of-range", func(t *testing.T) []byte {
			return []byte(`{"pid":4294967296}`)
		}, time.Hour, "3s", reasonStaleUnknown},
	}
}

// keptStaleCases are the lock files gwlock must leave alone.
func keptStaleCases(self self) []staleCase {
	garbage := garbagePayload
	return []staleCase{
		{"live-legacy-owner", func(t *testing.T) []byte {
			pid := liveProcess(t)
			st, _ := processStartTime(pid)
			return mustJSON(t, map[string]any{"pid": pid, "startTime": st, "hostname": self.hostname})
		}, time.Hour, "3s", ""},
		{"live-legacy-owner-seed-schema", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": liveProcess(t), "createdAt": "2026-01-01T00:00:00Z", "configPath": "/x"})
		}, time.Hour, "3s", ""},
		// A shared filesystem whose flock is local-only (NFS
		// local_lock): the kernel lock is free here, yet another host's owner
		// may be alive. It is unknown: kept while young or while its port answers.
		{"flock-other-host-young", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": 4242, "flock": true, "hostname": "elsewhere.example", "port": freePort(t)})
		}, 0, "30s", ""},
		{"flock-other-host-old-listening", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": 4242, "flock": true, "hostname": "elsewhere.example", "port": listeningPort(t)})
		}, time.Hour, "3s", ""},
		{"young-unparsable", garbage, 0, "1s", ""},
		{"unparsable-younger-than-stale", garbage, 5 * time.Second, "30s", ""},
		{"booting-owner-free-port", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": liveProcess(t), "port": freePort(t)})
		}, time.Hour, "3s", ""},
		{"listening-port-proves-life", func(t *testing.T) []byte {
			return mustJSON(t, map[string]any{"pid": 4242, "hostname": "elsewhere.example", "port": listeningPort(t)})
		}, time.Hour, "3s", ""},
		{"pid-zero-never-probed", func(t *testing.T) []byte { return []byte(`{"pid":0}`) }, 0, "30s", ""},
		{"pid-minus-one-never-probed", func(t *testing.T) []byte { return []byte(`{"pid":-1}`) }, 0, "30s", ""},
	}
}

// checkStaleCase runs gwlock against the lock file tc leaves.
func checkStaleCase(t *testing.T, tc staleCase) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "s.lock")
	before := tc.payload(t)
	writeLockFile(t, lock, before, tc.age)
	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "300ms", "--stale", tc.stale, "--", testBinary(t), "helper:gateway")
	if tc.reason == "" {
		if r.code != exitBusy {
			t.Fatalf("exit = %d, want %d (must not reclaim); stderr:\n%s", r.code, exitBusy, r.stderr)
		}
		if got, _ := os.ReadFile(lock); !bytes.Equal(got, before) {
			t.Fatalf("lock file changed: %q, want %q", got, before)
		}
		if len(findEvents(r.events(), "stale-lock-recovered")) != 0 {
			t.Fatalf("recovered a lock that must not be: %s", r.stderr)
		}
		return
	}
	ev := mustRecover(t, r, tc.reason)
	if w, _ := strconv.ParseFloat(ev["waited_ms"], 64); tc.age == 0 && w > 250 {
		t.Errorf("recovery waited %.1f ms; a provably dead owner needs no waiting", w)
	}
}

// TestLiveKernelHolderWins: a process that holds the kernel lock keeps the
// lock whatever its payload says, even a dead PID or garbage. The report
// never calls the dead PID alive, nor orphaned: no process of its tree is
// known to live, and the kernel lock is held by a process the payload does
// not name (Linux tells from /proc/locks) or by one no OS call can name
// (elsewhere), so the owner is unknown.
func TestLiveKernelHolderWins(t *testing.T) {
	dead := "unknown"
	for _, tc := range []struct{ payload, status string }{
		{fmt.Sprintf(`{"pid":%d,"flock":true}`, deadPID(t)), dead},
		{`{"pid":1,"flock":false,"startTime":"1"}`, dead},
		{`garbage`, "unknown"},
	} {
		payload := tc.payload
		dir := lockDir(t)
		lock := filepath.Join(dir, "h.lock")
		h := startHelper(t, "holder", nil, "-lock", lock, "-payload", payload)
		waitStdout(t, h, "held")
		r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "200ms", "--stale", "1ms", "--", testBinary(t), "helper:gateway")
		if r.code != exitBusy {
			t.Fatalf("payload %q: exit = %d, want %d; stderr:\n%s", payload, r.code, exitBusy, r.stderr)
		}
		ev := mustEvent(t, r.events(), "acquire-contention", "owner_status")
		if ev["owner_status"] != tc.status {
			t.Errorf("payload %q: owner_status = %s, want %s", payload, ev["owner_status"], tc.status)
		}
	}
}

func waitStdout(t *testing.T, b *background, want string) {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for time.Now().Before(deadline) {
		if strings.Contains(b.stdout.String(), want) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("helper never printed %q; stdout %q", want, b.stdout.String())
}

func listeningPort(t *testing.T) int {
	t.Helper()
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return portOf(l)
}

// TestReleaseNeverDeletesSuccessor: if the path was replaced under a holder,
// release leaves the new file alone and reports lock-lost.
func TestReleaseNeverDeletesSuccessor(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows refuses to replace a file another process holds open, so there is no successor to protect")
	}
	dir := lockDir(t)
	lock := filepath.Join(dir, "x.lock")
	var log bytes.Buffer
	l, err := acquire(lockOptions{Path: lock, Timeout: 0, Poll: time.Millisecond, Stale: time.Second, Log: telemetry.New(&log, "text", false)})
	if err != nil {
		t.Fatal(err)
	}
	successor := filepath.Join(dir, "successor")
	writeLockFile(t, successor, []byte(`{"pid":1}`), 0)
	if err := os.Rename(successor, lock); err != nil {
		t.Fatal(err)
	}
	if err := l.release(telemetry.New(&log, "text", false)); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(lock); err != nil || string(got) != `{"pid":1}` {
		t.Fatalf("successor's file after release = %q, %v; want it untouched", got, err)
	}
	mustEvent(t, parseLogfmt(log.String()), "lock-lost", "lock", "reason")
	if len(findEvents(parseLogfmt(log.String()), "lock-released")) != 0 {
		t.Fatal("lock-released reported for a lock that was not ours")
	}
}

// TestRecoveryNeverDeletesSuccessor: between judging a dead owner and removing
// its file, another starter recovers it and publishes its own lock. The late
// recoverer must see that the path names another file and leave it.
func TestRecoveryNeverDeletesSuccessor(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "y.lock")
	writeLockFile(t, lock, mustJSON(t, map[string]any{"pid": deadPID(t), "flock": true}), 0)
	var successor *heldLock
	var once sync.Once
	testHookBeforeReclaim = func() {
		once.Do(func() {
			// Removed the way a recoverer removes it (on Windows a plain
			// delete keeps the name until the last handle closes).
			if err := removeLockPath(mustOpenDir(t, dir), "y.lock"); err != nil {
				t.Error(err)
			}
			var err error
			if successor, err = acquire(lockOptions{Path: lock, Poll: time.Millisecond, Stale: time.Second}); err != nil {
				t.Error(err)
			}
		})
	}
	defer func() { testHookBeforeReclaim = nil }()
	_, err := acquire(lockOptions{Path: lock, Timeout: 0, Poll: time.Millisecond, Stale: time.Second})
	var busy *busyError
	if !errors.As(err, &busy) {
		t.Fatalf("late recoverer: err = %v, want busy (the successor holds the lock)", err)
	}
	if successor == nil {
		t.Fatal("successor did not acquire")
	}
	if same, _ := successor.f.namedBy(mustOpenDir(t, dir), "y.lock"); !same {
		t.Fatal("the successor's lock file was deleted or replaced by the late recoverer")
	}
	_ = successor.release(nil)
}

// TestPayloadReadableWhileHeld: the kernel lock never stops readers (on
// Windows, where locks are mandatory, it covers a byte past the payload).
func TestPayloadReadableWhileHeld(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "r.lock")
	h := startHelper(t, "holder", nil, "-lock", lock)
	waitStdout(t, h, "held")
	b, err := os.ReadFile(lock)
	if err != nil {
		t.Fatalf("reading a held lock file: %v", err)
	}
	p, err := parsePayload(b)
	if err != nil || p.PID != int64(h.cmd.Process.Pid) || !p.Flock {
		t.Fatalf("payload of a held lock = %+v, %v; want pid %d, flock true", p, err, h.cmd.Process.Pid)
	}
	if r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "0", "--", testBinary(t), "helper:gateway"); r.code != exitBusy {
		t.Fatalf("second process while the first holds the lock: exit %d, want %d", r.code, exitBusy)
	}
}

// TestTelemetryEvents: a contended, timed-out acquisition and a recovered one
// print every event with its keys, in text and in JSON.
func TestTelemetryEvents(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "t.lock")
	h := startHelper(t, "holder", nil, "-lock", lock)
	waitStdout(t, h, "held")

	r := runGwlock(t, nil, "run", "--lock", lock, "--timeout", "150ms", "--port", strconv.Itoa(freePort(t)), "--", "true")
	if r.code != exitBusy {
		t.Fatalf("exit = %d, want %d", r.code, exitBusy)
	}
	evs := r.events()
	mustEvent(t, evs, "acquire-start", "lock", "config", "timeout_ms", "poll_ms", "stale_ms", "pid", "port")
	mustEvent(t, evs, "acquire-contention", "lock", "owner_pid", "owner_status", "waited_ms", "attempt")
	mustEvent(t, evs, "acquire-timeout", "lock", "owner_pid", "waited_ms", "timeout_ms", "attempts")
	if n := len(findEvents(evs, "acquire-contention")); n != 1 {
		t.Errorf("acquire-contention printed %d times for one owner, want once", n)
	}
	if !strings.Contains(r.stderr, "gwlock: lock "+lock) {
		t.Errorf("no one-line explanation naming the lock in:\n%s", r.stderr)
	}

	_ = h.cmd.Process.Kill()
	_, _ = h.wait(t)
	r = runGwlock(t, nil, "run", "--lock", lock, "--log-format", "json", "--", testBinary(t), "helper:gateway")
	if r.code != 0 {
		t.Fatalf("exit = %d; stderr:\n%s", r.code, r.stderr)
	}
	want := []string{"acquire-start", "stale-lock-recovered", "acquire-success", "child-start", "child-exit", "lock-released"}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", line, err)
		}
		got = append(got, fmt.Sprint(m["event"]))
		if m["event"] == "acquire-success" {
			for _, k := range []string{"lock", "waited_ms", "attempts", "stale_recoveries"} {
				if _, ok := m[k]; !ok {
					t.Errorf("acquire-success lacks %s", k)
				}
			}
		}
		if m["event"] == "lock-released" {
			if _, ok := m["held_ms"]; !ok {
				t.Error("lock-released lacks held_ms")
			}
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events = %v, want %v", got, want)
	}

	r = runGwlock(t, nil, "run", "-q", "--lock", lock, "--", testBinary(t), "helper:gateway")
	if r.code != 0 || strings.TrimSpace(r.stderr) != "" {
		t.Fatalf("-q: exit %d, stderr %q; want 0 and silence", r.code, r.stderr)
	}
}

// TestBrokenStderr: a closed or broken stderr changes no decision.
func TestBrokenStderr(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "b.lock")
	pidfile := filepath.Join(dir, "pids")

	// A pipe whose reader is gone: every write gets EPIPE (and SIGPIPE).
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	cmd := helperCmd(t, "gwlock", "run", "--lock", lock, "--", testBinary(t), "helper:gateway", "-pidfile", pidfile, "-exit", "7")
	cmd.Stderr = pw
	err = cmd.Run()
	pw.Close()
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("with a broken stderr pipe: %v, want the gateway's exit code 7", err)
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Fatalf("lock file left behind: %v", err)
	}
	if n := strings.Count(string(waitFile(t, pidfile)), "\n"); n != 1 {
		t.Fatalf("gateway started %d times, want 1", n)
	}
	testClosedStderr(t, dir)
}

// FuzzParsePayload: the parser never panics, and what it accepts survives a
// round trip through encode.
func FuzzParsePayload(f *testing.F) {
	seeds := []string{
		`{"pid":123,"createdAt":"2026-01-01T00:00:00.000Z","configPath":"/etc/gw.json","startTime":"4567"}`,
		`{"pid":1,"flock":true,"bootId":"x","hostname":"h","port":18789,"childPid":9,"version":"1"}`,
		`{"pid":4294967296}`, `{"pid":-1}`, `{"pid":"12"}`, `{"startTime":{}}`, `{"pid":1}{"pid":2}`,
		``, `   `, `null`, `[]`, `{"pid":1e99}`, strings.Repeat("[", 100000),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePayload(b)
		if err != nil {
			return
		}
		mustMarshalAsJSON(t, p)
		if p.Port < 0 || p.Port > 65535 {
			t.Fatalf("port %d out of range accepted", p.Port)
		}
		enc, err := p.encode()
		if err != nil {
			return // too big to write back is fine; it was only read
		}
		q, err := parsePayload(enc)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", enc, err)
		}
		if q.PID != p.PID || q.Flock != p.Flock || q.Port != p.Port {
			t.Fatalf("round trip changed the payload: %+v -> %+v", p, q)
		}
	})
}

// fakeFacts is a host with chosen answers, recording which PIDs were probed.
type fakeFacts struct {
	taggedBorn  string
	timens      string
	host, boot  string
	self        int
	selfStart   string
	state       pidState
	start       string
	haveStart   bool
	listen      bool
	probedPIDs  []int
	probedPorts []int
	// others answer for particular PIDs (a gateway beside a dead launcher).
	others    map[int]fakeProcess
	groups    map[int]bool // process groups with a live member
	taggedPID int          // a live process carrying the payload's token in its environment
	pidns     string
	// taggedErr is the token search's failure; taggedUIDs the uids it was asked for.
	taggedErr   error
	taggedUIDs  []int
	stoppedPIDs map[int]bool
}

// errFakeUnknown is a fact fakeFacts was told it cannot learn.
var errFakeUnknown = errors.New("fact not known to this fake host")

func (f *fakeFacts) lockCreator(fileID) (int, error) { return 0, errFakeUnknown }

// survivor finds a group of f.groups in session 9, else the token's
// carrier f.taggedPID (or f.taggedErr).
func (f *fakeFacts) survivor(q proc.TreeQuery) (int, error) {
	for _, g := range q.Groups {
		if q.Session == 9 && f.groups[g] {
			return g, nil
		}
	}
	if q.Token == "" {
		return 0, nil
	}
	f.taggedUIDs, f.taggedBorn = q.UIDs, q.BornAfter
	return f.taggedPID, f.taggedErr
}
func (f *fakeFacts) selfUID() int { return 0 }
func (f *fakeFacts) stopped(pid int) (bool, error) {
	return f.stoppedPIDs[pid], nil
}

type fakeProcess struct {
	state pidState
	start string
}

func (f *fakeFacts) hostname() string      { return f.host }
func (f *fakeFacts) bootID() string        { return f.boot }
func (f *fakeFacts) pidNS() string         { return f.pidns }
func (f *fakeFacts) timeNS() string        { return f.timens }
func (f *fakeFacts) selfPID() int          { return f.self }
func (f *fakeFacts) selfStartTime() string { return f.selfStart }
func (f *fakeFacts) probe(pid int) (pidState, error) {
	f.probedPIDs = append(f.probedPIDs, pid)
	st := f.state
	if p, ok := f.others[pid]; ok {
		st = p.state
	}
	if st == pidUnknown {
		return st, errFakeUnknown
	}
	return st, nil
}
func (f *fakeFacts) startTime(pid int) (string, error) {
	if p, ok := f.others[pid]; ok {
		return knownIf(p.start, p.start != "")
	}
	return knownIf(f.start, f.haveStart)
}

func knownIf(start string, known bool) (string, error) {
	if !known {
		return "", errFakeUnknown
	}
	return start, nil
}

// judgeRaw judges raw as found in a file whose kernel lock we just took
// (free) or that has none.
func judgeRaw(raw []byte, age, stale time.Duration, free bool, h hostFacts) verdict {
	lock := kernelNone
	if free {
		lock = kernelFree
	}
	return judge(evidence{raw: raw, age: age, lock: lock}, stale, h)
}
func (f *fakeFacts) listening(port int) bool {
	f.probedPorts = append(f.probedPorts, port)
	return f.listen
}

// TestJudgeOtherPIDNamespace: a payload from another PID namespace of this
// host is judged by its token alone, else like a foreign host's: its pids
// are never probed, and a free kernel lock does not make it dead.
func TestJudgeOtherPIDNamespace(t *testing.T) {
	raw := []byte(`{"pid":4242,"flock":true,"hostname":"h","bootId":"b","childPid":4243,"childStartTime":"9","pidNs":"pid:[1]","token":"t"}`)
	facts := func() *fakeFacts {
		return &fakeFacts{host: "h", boot: "b", self: 100, state: pidAbsent, pidns: "pid:[2]"}
	}
	f := facts()
	if v := judgeRaw(raw, time.Second, time.Minute, true, f); v.status != ownerUnknown || v.reason != "" {
		t.Errorf("young lock from another PID namespace: %+v, want unknown and not reclaimable", v)
	}
	if len(f.probedPIDs) != 0 {
		t.Errorf("probed pids %v of another PID namespace", f.probedPIDs)
	}
	if v := judgeRaw(raw, 2*time.Minute, time.Minute, true, facts()); v.reason != reasonStaleUnknown {
		t.Errorf("old lock from another PID namespace: %+v, want %s", v, reasonStaleUnknown)
	}
	f = facts()
	f.taggedPID = 77
	if v := judgeRaw(raw, time.Second, time.Minute, true, f); v.status != ownerOrphaned || v.gatewayPID != 77 {
		t.Errorf("its token found here: %+v, want orphaned with gateway 77", v)
	}
	f = facts()
	f.pidns = "pid:[1]"
	if v := judgeRaw(raw, time.Second, time.Minute, true, f); v.reason != reasonOwnerDead {
		t.Errorf("same PID namespace, all dead: %+v, want %s", v, reasonOwnerDead)
	}
}

// judgeCase is one judgement TestJudgeOwner checks: a payload of an age, a
// kernel lock free or absent, and the facts of a host.
type judgeCase struct {
	name       string
	raw        string
	age        time.Duration
	kernelFree bool
	facts      func(*fakeFacts)
	want       ownerStatus
	reason     string
}

// judgeCases are decided against fakeFacts like judgeBase, changed by facts.
var judgeCases = []judgeCase{
	{"flock payload, kernel lock free", `{"pid":5,"flock":true,"startTime":"77","hostname":"h"}`, 0, true, nil, ownerDead, reasonOwnerDead},
	// The gateway closed its lock descriptor and outlived its launcher:
	// the kernel lock is free, yet the recorded gateway runs.
	{"flock payload, kernel lock free, recorded gateway alive", `{"pid":5,"flock":true,"hostname":"h","childPid":6,"childStartTime":"88"}`, 0, true,
		func(f *fakeFacts) { f.others = map[int]fakeProcess{5: {state: pidAbsent}, 6: {pidPresent, "88"}} }, ownerOrphaned, ""},
	{"flock payload, kernel lock free, recorded gateway pid reused", `{"pid":5,"flock":true,"hostname":"h","childPid":6,"childStartTime":"88"}`, 0, true,
		func(f *fakeFacts) { f.others = map[int]fakeProcess{5: {state: pidAbsent}, 6: {pidPresent, "89"}} }, ownerDead, reasonOwnerDead},
	{"flock payload, no kernel locks here", `{"pid":5,"flock":true,"startTime":"77","hostname":"h"}`, 0, false, nil, ownerAlive, ""},
	// A free kernel lock proves nothing about another host's
	// owner (NFS local_lock): it is unknown and follows the stale rule.
	{"flock payload from another host, kernel lock free", `{"pid":5,"flock":true,"hostname":"x"}`, 0, true, nil, ownerUnknown, ""},
	{"flock payload from another host, old, kernel lock free", `{"pid":5,"flock":true,"hostname":"x"}`, time.Hour, true, nil, ownerUnknown, reasonStaleUnknown},
	{"flock payload without hostname, kernel lock free, pid alive", `{"pid":5,"flock":true,"startTime":"77"}`, 0, true, nil, ownerAlive, ""},
	{"flock payload from a rebooted host", `{"pid":5,"flock":true,"hostname":"h","bootId":"old"}`, 0, true, nil, ownerDead, reasonHostRebooted},
	// Without a kernel lock, a dead launcher whose recorded
	// gateway still lives is an orphaned owner, never a dead one.
	{"launcher dead, gateway alive", `{"pid":5,"childPid":6,"childStartTime":"88"}`, time.Hour, false,
		func(f *fakeFacts) { f.others = map[int]fakeProcess{5: {state: pidAbsent}, 6: {pidPresent, "88"}} }, ownerOrphaned, ""},
	{"launcher pid reused, gateway alive", `{"pid":5,"startTime":"70","childPid":6,"childStartTime":"88"}`, 0, false,
		func(f *fakeFacts) { f.others = map[int]fakeProcess{6: {pidPresent, "88"}} }, ownerOrphaned, ""},
	{"launcher dead, gateway pid reused", `{"pid":5,"childPid":6,"childStartTime":"88"}`, 0, false,
		func(f *fakeFacts) { f.others = map[int]fakeProcess{5: {state: pidAbsent}, 6: {pidPresent, "99"}} }, ownerDead, reasonOwnerDead},
	{"launcher dead, gateway without start time", `{"pid":5,"childPid":6}`, 0, false,
		func(f *fakeFacts) { f.others = map[int]fakeProcess{5: {state: pidAbsent}, 6: {pidPresent, "88"}} }, ownerDead, reasonOwnerDead},
	// A wrapper's child left in the gateway's process group,
	// and a daemon recorded as a descendant, keep the tree alive.
	{"launcher and gateway dead, its group lives", `{"pid":5,"flock":true,"hostname":"h","childPid":6,"childStartTime":"88","sessionId":9}`, 0, true,
		func(f *fakeFacts) {
			f.others = map[int]fakeProcess{5: {state: pidAbsent}, 6: {state: pidAbsent}}
			f.groups = map[int]bool{6: true}
		}, ownerOrphaned, ""},
	{"launcher and gateway dead, recorded daemon alive", `{"pid":5,"flock":true,"hostname":"h","childPid":6,"childStartTime":"88","descendants":[{"pid":7,"startTime":"99"}]}`, 0, true,
		func(f *fakeFacts) {
			f.others = map[int]fakeProcess{5: {state: pidAbsent}, 6: {state: pidAbsent}, 7: {pidPresent, "99"}}
		}, ownerOrphaned, ""},
	{"launcher and gateway dead, recorded daemon reused", `{"pid":5,"flock":true,"hostname":"h","childPid":6,"childStartTime":"88","descendants":[{"pid":7,"startTime":"99"}]}`, 0, true,
		func(f *fakeFacts) {
			f.others = map[int]fakeProcess{5: {state: pidAbsent}, 6: {state: pidAbsent}, 7: {pidPresent, "98"}}
			f.groups = map[int]bool{7: true}
		}, ownerDead, reasonOwnerDead},
	{"launcher dead, gateway dead", `{"pid":5,"childPid":6,"childStartTime":"88"}`, 0, false,
		func(f *fakeFacts) { f.others = map[int]fakeProcess{5: {state: pidAbsent}, 6: {state: pidAbsent}} }, ownerDead, reasonOwnerDead},
	{"other host", `{"pid":5,"hostname":"x"}`, 0, true, nil, ownerUnknown, ""},
	{"other host, old", `{"pid":5,"hostname":"x"}`, time.Hour, true, nil, ownerUnknown, reasonStaleUnknown},
	{"other host, old, port listening", `{"pid":5,"hostname":"x","port":80}`, time.Hour, true, func(f *fakeFacts) { f.listen = true }, ownerAlive, ""},
	{"rebooted", `{"pid":5,"bootId":"old"}`, 0, true, nil, ownerDead, reasonHostRebooted},
	// The boot id names the kernel: a payload carrying ours was written
	// here whatever hostname it carries (a UTS namespace, a renamed host).
	{"our boot id, another hostname, kernel lock free", `{"pid":5,"flock":true,"hostname":"x","bootId":"b"}`, 0, true, nil, ownerDead, reasonOwnerDead},
	{"our boot id, another hostname, gateway alive", `{"pid":5,"flock":true,"hostname":"x","bootId":"b","childPid":6,"childStartTime":"88"}`, time.Hour, true,
		func(f *fakeFacts) { f.others = map[int]fakeProcess{5: {state: pidAbsent}, 6: {pidPresent, "88"}} }, ownerOrphaned, ""},
	{"our boot id, another hostname, launcher alive", `{"pid":5,"startTime":"77","hostname":"x","bootId":"b"}`, time.Hour, false, nil, ownerAlive, ""},
	{"another boot id, another hostname", `{"pid":5,"flock":true,"hostname":"x","bootId":"old"}`, 0, true, nil, ownerUnknown, ""},
	{"another boot id, another hostname, old", `{"pid":5,"flock":true,"hostname":"x","bootId":"old"}`, time.Hour, true, nil, ownerUnknown, reasonStaleUnknown},
	{"no boot id here, another hostname", `{"pid":5,"flock":true,"hostname":"x","bootId":"b"}`, 0, true, func(f *fakeFacts) { f.boot = "" }, ownerUnknown, ""},
	{"no such pid", `{"pid":5}`, 0, true, func(f *fakeFacts) { f.state = pidAbsent }, ownerDead, reasonOwnerDead},
	{"pid reused", `{"pid":5,"startTime":"76"}`, 0, true, nil, ownerDead, reasonPIDReused},
	{"pid alive, same start", `{"pid":5,"startTime":"77"}`, time.Hour, true, nil, ownerAlive, ""},
	// A start time that cannot be read cannot tell the launcher from a
	// process that reused its pid: unknown, and never reclaimed.
	{"pid alive, start unreadable", `{"pid":5,"startTime":"76"}`, time.Hour, true, func(f *fakeFacts) { f.haveStart = false }, ownerUnknown, ""},
	{"pid alive, port free", `{"pid":5,"port":80}`, time.Hour, true, nil, ownerAlive, ""},
	{"our own pid, not our start", `{"pid":100}`, 0, true, nil, ownerDead, reasonPIDReused},
	{"our own pid, our start", `{"pid":100,"startTime":"55"}`, 0, true, nil, ownerAlive, ""},
	{"pid unknown state, old", `{"pid":5}`, time.Hour, true, func(f *fakeFacts) { f.state = pidUnknown }, ownerUnknown, ""},
	{"garbage, young", `xx`, time.Second, true, nil, ownerUnknown, ""},
	{"garbage, old", `xx`, time.Hour, true, nil, ownerUnknown, reasonStaleUnknown},
	// The clock was set back after the file was written: its mtime is in
	// the future, and a negative age must never read as stale.
	{"garbage, mtime in the future", `xx`, -time.Hour, true, nil, ownerUnknown, ""},
	{"other host, mtime in the future", `{"pid":5,"hostname":"x"}`, -time.Hour, true, nil, ownerUnknown, ""},
	{"empty, tiny stale still waits birth grace", ``, time.Second, true, nil, ownerUnknown, ""},
	{"pid 0", `{"pid":0}`, 0, true, nil, ownerUnknown, ""},
	{"pid 2^32", `{"pid":4294967296}`, 0, true, nil, ownerUnknown, ""},
	{"wrong type", `{"pid":"5"}`, 0, true, nil, ownerUnknown, ""},
}

func judgeBase() *fakeFacts {
	return &fakeFacts{host: "h", boot: "b", self: 100, selfStart: "55", state: pidPresent, start: "77", haveStart: true}
}

func TestJudgeOwner(t *testing.T) {
	const stale = 30 * time.Second
	for _, tc := range judgeCases {
		f := judgeBase()
		if tc.facts != nil {
			tc.facts(f)
		}
		s := stale
		if tc.name == "empty, tiny stale still waits birth grace" {
			s = time.Millisecond
		}
		v := judgeRaw([]byte(tc.raw), tc.age, s, tc.kernelFree, f)
		if v.status != tc.want || v.reason != tc.reason {
			t.Errorf("%s: judgeOwner = (%s, %q), want (%s, %q)", tc.name, v.status, v.reason, tc.want, tc.reason)
		}
		for _, pid := range f.probedPIDs {
			if pid <= 0 {
				t.Errorf("%s: probed pid %d", tc.name, pid)
			}
		}
	}
}

// FuzzJudgeOwner: payload bytes plus process facts -> a decision that never
// probes an invalid PID, never reclaims an owner proven alive, and reclaims
// an unjudgeable owner only past --stale and the birth grace.
func FuzzJudgeOwner(f *testing.F) {
	f.Add([]byte(`{"pid":5,"startTime":"77"}`), int64(0), int64(30e9), true, uint8(pidPresent), true, false)
	f.Add([]byte(`{"pid":5,"flock":true,"hostname":"h"}`), int64(0), int64(30e9), true, uint8(pidPresent), true, false)
	f.Add([]byte(`{"pid":5,"flock":true,"hostname":"x"}`), int64(0), int64(30e9), true, uint8(pidAbsent), true, false)
	f.Add([]byte(`{"pid":5,"hostname":"x","port":80}`), int64(3600e9), int64(1e9), false, uint8(pidUnknown), false, true)
	f.Add([]byte(`{"pid":-1}`), int64(3600e9), int64(1e9), false, uint8(pidAbsent), false, false)
	f.Add([]byte(`garbage`), int64(1e9), int64(1), true, uint8(pidAbsent), false, false)
	f.Fuzz(func(t *testing.T, raw []byte, ageNS, staleNS int64, kernelFree bool, state uint8, haveStart, listen bool) {
		facts := &fakeFacts{host: "h", boot: "b", self: 100, selfStart: "55", state: pidState(state % 3), start: "77", haveStart: haveStart, listen: listen}
		age, stale := time.Duration(ageNS), time.Duration(staleNS)
		v := judgeRaw(raw, age, stale, kernelFree, facts)
		checkJudgedByRule(t, v, facts, age, stale, listen)
		checkJudgedByPayload(t, v, facts, raw, kernelFree)
	})
}

// checkJudgedByRule: whatever the payload, no invalid pid is probed, no
// owner judged alive is reclaimed, and an unknown one only past --stale and
// the birth grace with its port silent.
func checkJudgedByRule(t *testing.T, v verdict, facts *fakeFacts, age, stale time.Duration, listen bool) {
	t.Helper()
	for _, pid := range facts.probedPIDs {
		if pid <= 0 || pid > maxPID {
			t.Fatalf("probed pid %d", pid)
		}
	}
	if v.reason != "" && v.status == ownerAlive {
		t.Fatalf("reclaim of an owner judged alive: %+v", v)
	}
	if v.reason == reasonStaleUnknown && (age < stale || age < bornGrace) {
		t.Fatalf("stale-unknown-owner at age %v with stale %v", age, stale)
	}
	if v.reason == reasonStaleUnknown && listen && len(facts.probedPorts) > 0 {
		t.Fatalf("reclaimed an owner whose port listens")
	}
}

// checkJudgedByPayload: an unparsable payload or another host's is reclaimed
// only as stale, and this host's flock payload with a free kernel lock is
// dead or orphaned.
func checkJudgedByPayload(t *testing.T, v verdict, facts *fakeFacts, raw []byte, kernelFree bool) {
	t.Helper()
	p, err := parsePayload(raw)
	if err != nil && v.reason != "" && v.reason != reasonStaleUnknown {
		t.Fatalf("unparsable payload reclaimed as %s", v.reason)
	}
	if err != nil {
		return
	}
	// The boot id names the kernel; the hostname speaks only without one.
	sameKernel := p.BootID == facts.boot || (p.BootID == "" && p.Hostname == facts.host)
	if sameKernel && p.PIDNS == "" && p.Flock && kernelFree && v.reason != reasonOwnerDead && v.status != ownerOrphaned {
		t.Fatalf("this kernel's flock payload with a free kernel lock not owner-dead: %+v", v)
	}
	otherHost := p.Hostname != "" && p.Hostname != facts.host && p.BootID != facts.boot
	if otherHost && v.reason != "" && v.reason != reasonStaleUnknown {
		t.Fatalf("another host's owner reclaimed as %s: %+v", v.reason, v)
	}
}

func TestEncodeKeepsLength(t *testing.T) {
	p := ownerPayload{PID: 1, ConfigPath: "/c"}
	a, err := p.encode()
	if err != nil {
		t.Fatal(err)
	}
	p.ChildPID = 123456
	b, _ := p.encode()
	if len(a) != len(b) {
		t.Fatalf("len(encode) = %d then %d; an update must keep the length", len(a), len(b))
	}
	if _, err := parsePayload(b); err != nil {
		t.Fatalf("padded payload does not parse: %v", err)
	}
	var big ownerPayload
	big.ConfigPath = strings.Repeat("x", maxPayloadWrite)
	if _, err := big.encode(); err == nil {
		t.Fatal("payload over 4 KiB encoded")
	}
}

func TestDerivedLockName(t *testing.T) {
	// printf %s /etc/gateway/config.json | sha256sum
	if got, want := derivedLockName("/etc/gateway/config.json"), "gateway.894a0964.lock"; got != want {
		t.Fatalf("derivedLockName = %s, want %s", got, want)
	}
}

// TestPayloadFields: the payload of a running gwlock says what the payload's documentation
// promises, read from the lock file while it is held.
func TestPayloadFields(t *testing.T) {
	dir := lockDir(t)
	lock, pidfile := filepath.Join(dir, "f.lock"), filepath.Join(dir, "pid")
	port := freePort(t)
	g := startHelper(t, "gwlock", nil, "run", "--lock", lock, "--port", strconv.Itoa(port), "--",
		testBinary(t), "helper:gateway", "-pidfile", pidfile, "-listen", strconv.Itoa(port), "-sleep", "60s")
	g.waitEvent(t, "gateway-ready")
	b, err := os.ReadFile(lock)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePayload(b)
	if err != nil {
		t.Fatalf("payload %q: %v", b, err)
	}
	gw, _ := strconv.Atoi(strings.TrimSpace(string(waitFile(t, pidfile))))
	self := selfFacts()
	st, _ := processStartTime(g.cmd.Process.Pid)
	recorded, _ := startTimeText(p.StartTime)
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", p.CreatedAt); err != nil {
		t.Errorf("createdAt %q is not RFC 3339 UTC with milliseconds: %v", p.CreatedAt, err)
	}
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"pid", p.PID, int64(g.cmd.Process.Pid)},
		{"childPid", p.ChildPID, gw},
		{"port", p.Port, port},
		{"configPath", p.ConfigPath, lock},
		{"startTime", recorded, st},
		{"bootId", p.BootID, self.bootID},
		{"hostname", p.Hostname, self.hostname},
		{"flock", p.Flock, true},
		{"version", p.Version, version},
	} {
		if c.got != c.want {
			t.Errorf("payload %s = %v, want %v", c.field, c.got, c.want)
		}
	}
	if len(b) > maxPayloadWrite {
		t.Errorf("payload is %d bytes, over %d", len(b), maxPayloadWrite)
	}
}

// TestNeverHalfWritten: a reader polling the lock path while contenders
// churn through it (and gateways' PIDs are written into it) only ever sees
// no file or a complete payload.
func TestNeverHalfWritten(t *testing.T) {
	dir := lockDir(t)
	lock := filepath.Join(dir, "h.lock")
	// The churn goes on, round after round, until the reader has overlapped
	// it often enough: a loaded machine (or -race) gives fewer reads a round,
	// and counting them instead of hoping for them keeps the test from flaking.
	const wantReads, maxRounds = 200, 30
	var reads, torn atomic.Int64
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(lock)
			if err != nil {
				continue // no lock file at this instant
			}
			reads.Add(1)
			if _, err := parsePayload(b); err != nil {
				torn.Add(1)
				t.Logf("partial payload %q: %v", b, err)
			}
		}
	}()
	rounds := 0
	for ; rounds < maxRounds && reads.Load() < wantReads; rounds++ {
		runContenders(t, 8, "-lock", lock, "-marker", filepath.Join(dir, "inside"), "-n", "40")
	}
	close(stop)
	<-readerDone
	if reads.Load() < wantReads {
		t.Fatalf("only %d reads overlapped %d rounds of churn; the test saw too little", reads.Load(), rounds)
	}
	if torn.Load() > 0 {
		t.Fatalf("%d of %d reads saw a partial payload", torn.Load(), reads.Load())
	}
	t.Logf("%d reads of a churning lock file in %d rounds, none partial", reads.Load(), rounds)
}

// mustMarshalAsJSON: the payload's own marshal gives json.Marshal's bytes.
func mustMarshalAsJSON(t *testing.T, p *ownerPayload) {
	t.Helper()
	want, werr := json.Marshal(p)
	got, gerr := p.marshal()
	if !bytes.Equal(got, want) || (werr == nil) != (gerr == nil) {
		t.Fatalf("marshal = %s, %v\njson.Marshal = %s, %v", got, gerr, want, werr)
	}
}

// TestPayloadMarshalIsJSON: payloads with every field empty or set, strings
// with HTML characters, control characters, U+2028, invalid UTF-8 and
// quotes, and raw start times with spaces and escapes, marshal to exactly
// what json.Marshal gives, so the hand-written shape cannot drift from the
// struct tags the reader decodes with.
func TestPayloadMarshalIsJSON(t *testing.T) {
	strs := []string{"", "plain", "<a&b>", "tab\tnl\n\x00\x1f", "\u2028\u2029", "bad\xffutf8", `q"uote\`, "é漢"}
	raws := []json.RawMessage{nil, json.RawMessage(`"123"`), json.RawMessage(` 42 `), json.RawMessage(`"<\u0041>"`), json.RawMessage(`{ "a" : [1, 2] }`)}
	exit := 3
	for i := 0; i < 3000; i++ {
		pick := func(n int) int { return (i*7919 + n*104729) % (n + 1) }
		p := &ownerPayload{
			PID: int64(i*37) - 50, CreatedAt: strs[i%len(strs)], ConfigPath: strs[(i/3)%len(strs)],
			StartTime: raws[i%len(raws)], BootID: strs[(i/5)%len(strs)], Hostname: strs[(i/7)%len(strs)],
			Port: i % 3 * 8080, ChildPID: i % 4, ChildStartTime: raws[(i/2)%len(raws)],
			TreeUIDsOverflow: i%5 == 0, SessionID: i % 6, Flock: i%2 == 0, Version: strs[(i/11)%len(strs)],
			RestartAt: strs[(i/13)%len(strs)], Token: strs[(i/17)%len(strs)], PIDNS: strs[(i/19)%len(strs)],
			TimeNS: strs[(i/23)%len(strs)],
		}
		for j := 0; j < pick(3); j++ {
			p.Descendants = append(p.Descendants, procRef{PID: i + j, StartTime: raws[(i+j)%len(raws)]})
			p.TreeUIDs = append(p.TreeUIDs, i*j)
		}
		if i%3 == 0 {
			p.LastExit = &exit
		}
		mustMarshalAsJSON(t, p)
	}
	mustMarshalAsJSON(t, &ownerPayload{Descendants: []procRef{}, TreeUIDs: []int{}})
}
