//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"gwlock/internal/telemetry"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Benchmarks. Whole-process figures are reported next to util-linux flock(1)
// measured in the same run, alternating tool by tool, because machines here
// are shared and noisy: the ratio is the figure that means something.

func init() {
	helpers["stamp"] = helperStamp
}

// helperStamp writes CLOCK_MONOTONIC (shared by all processes) to a file.
// With "wait" it first says ready and waits for stdin to close: a gateway
// whose exit the benchmark controls.
func helperStamp(args []string) int {
	if len(args) > 1 && args[1] == "wait" {
		_ = os.WriteFile(args[0]+".ready", nil, 0o600)
		_, _ = io.Copy(io.Discard, os.Stdin)
	}
	return writeStamp(args[0])
}

func writeStamp(path string) int {
	_ = os.WriteFile(path, []byte(strconv.FormatInt(monotonicNow(), 10)), 0o600)
	return 0
}

func monotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func readStamp(b *testing.B, path string) int64 {
	b.Helper()
	for deadline := time.Now().Add(eventWait); time.Now().Before(deadline); time.Sleep(50 * time.Microsecond) {
		if s, err := os.ReadFile(path); err == nil && len(s) > 0 {
			n, err := strconv.ParseInt(string(s), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	b.Fatalf("no stamp in %s", path)
	return 0
}

var (
	benchBinOnce sync.Once
	benchBinPath string
	benchBinErr  error
)

// benchBinary is the stripped static gwlock binary (make bench passes it in).
func benchBinary(b *testing.B) string {
	b.Helper()
	benchBinOnce.Do(func() {
		if p := os.Getenv("GWLOCK_BENCH_BIN"); p != "" {
			benchBinPath = p
			return
		}
		dir, err := os.MkdirTemp("", "gwlock-bench")
		if err != nil {
			benchBinErr = err
			return
		}
		benchBinPath = filepath.Join(dir, "gwlock")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", benchBinPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			benchBinErr = err
			b.Log(string(out))
		}
	})
	if benchBinErr != nil {
		b.Fatal(benchBinErr)
	}
	return benchBinPath
}

func flockBinary(b *testing.B) string {
	b.Helper()
	p, err := exec.LookPath("flock")
	if err != nil {
		b.Skip("util-linux flock(1) not installed: nothing to compare against")
	}
	return p
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// reportPair reports both tools' medians and gwlock's ratio to flock(1).
func reportPair(b *testing.B, unit string, gw, fl []time.Duration) {
	g, f := median(gw), median(fl)
	scale := float64(time.Millisecond)
	if unit == "us" {
		scale = float64(time.Microsecond)
	}
	b.ReportMetric(float64(g)/scale, "gwlock-"+unit)
	b.ReportMetric(float64(f)/scale, "flock-"+unit)
	b.ReportMetric(float64(g)/float64(f), "ratio")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkAcquireRelease: uncontended acquire + release, in process, on
// tmpfs (where $XDG_RUNTIME_DIR lives) and on the filesystem of os.TempDir.
func BenchmarkAcquireRelease(b *testing.B) {
	for _, dir := range []string{"/dev/shm", os.TempDir()} {
		b.Run(fsName(dir), func(b *testing.B) {
			d, err := os.MkdirTemp(dir, "gwlock-bench")
			if err != nil {
				b.Skip(err)
			}
			defer os.RemoveAll(d)
			opts := lockOptions{Path: filepath.Join(d, "bench.lock"), Poll: 100 * time.Millisecond, Stale: 30 * time.Second}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l, err := acquire(opts)
				if err != nil {
					b.Fatal(err)
				}
				if err := l.release(nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fsName names the filesystem type of dir for benchmark labels.
func fsName(dir string) string {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return "unknown"
	}
	switch st.Type {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlay"
	}
	return "fs-" + strconv.FormatInt(int64(st.Type), 16)
}

// contentionSignal is a telemetry sink that says when a waiter has found the
// lock held, i.e. is about to sleep in the kernel.
type contentionSignal chan struct{}

func (c contentionSignal) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("event=acquire-contention")) {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// BenchmarkHandoffInProcess: from release by the holder to the return of a
// waiter's acquire, both in this process (distinct open files, so the
// kernel lock separates them as it would two processes).
func BenchmarkHandoffInProcess(b *testing.B) {
	path := filepath.Join(b.TempDir(), "handoff.lock")
	opts := lockOptions{Path: path, Poll: 100 * time.Millisecond, Stale: 30 * time.Second}
	var handoffs []time.Duration
	for i := 0; i < b.N; i++ {
		holder, err := acquire(opts)
		if err != nil {
			b.Fatal(err)
		}
		blocked := make(contentionSignal, 1)
		got := make(chan time.Time, 1)
		wopts := opts
		wopts.Timeout, wopts.Log = 10*time.Second, telemetry.New(blocked, "text", false)
		go func() {
			l, err := acquire(wopts)
			got <- time.Now()
			if err == nil {
				_ = l.release(nil)
			}
		}()
		<-blocked
		waitBlocked(b, os.Getpid())
		t0 := time.Now()
		_ = holder.release(nil)
		handoffs = append(handoffs, (<-got).Sub(t0))
	}
	reportSpread(b, "handoff", "us", micros(handoffs))
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRunTrue: the whole cost of `gwlock run -q --lock L -- true`
// beside the floor (a Go program of gwlock's imports that only runs true, see
// bench_floor_test.go) and `flock F true`, one of each per iteration in an
// order that rotates, so drift in a shared machine's load falls on all three
// alike. Wall time is from fork to reaped exit; CPU time is the child's user
// and system time, true included. Unprefixed figures are gwlock's; the
// ratios are medians of each iteration's ratio, with their spread.
func BenchmarkRunTrue(b *testing.B) {
	// Separate files: flock(1) leaves its file behind, empty and unlocked,
	// which gwlock rightly treats as an unknown owner until --stale.
	dir := b.TempDir()
	tools := []*startCost{
		{argv: []string{benchBinary(b), "run", "-q", "--lock", filepath.Join(dir, "true.lock"), "--", "true"}},
		{argv: []string{floorBinary(b)}},
		{argv: []string{flockBinary(b), filepath.Join(dir, "true.flock"), "true"}},
	}
	for i := 0; i < b.N; i++ {
		for k := range tools {
			tools[(i+k)%len(tools)].run(b)
		}
	}
	gw, floor, fl := tools[0], tools[1], tools[2]
	reportSpread(b, "wall", "ms", gw.wall)
	reportSpread(b, "cpu", "ms", gw.cpu)
	reportSpread(b, "floor-wall", "ms", floor.wall)
	reportSpread(b, "floor-cpu", "ms", floor.cpu)
	reportSpread(b, "flock-wall", "ms", fl.wall)
	reportSpread(b, "flock-cpu", "ms", fl.cpu)
	reportSpread(b, "wall/floor", "", ratios(gw.wall, floor.wall))
	reportSpread(b, "cpu/floor", "", ratios(gw.cpu, floor.cpu))
	reportSpread(b, "wall/flock", "", ratios(gw.wall, fl.wall))
	reportSpread(b, "cpu/flock", "", ratios(gw.cpu, fl.cpu))
	b.ReportMetric(0, "ns/op")
}

// startCost collects one program's runs, in milliseconds.
type startCost struct {
	argv      []string
	wall, cpu []float64
}

func (c *startCost) run(b *testing.B) {
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Env = cleanEnv()
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%v: %v", c.argv, err)
	}
	wall := time.Since(start)
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	c.wall = append(c.wall, float64(wall)/float64(time.Millisecond))
	c.cpu = append(c.cpu, float64(cpu)/float64(time.Millisecond))
}

// ratios pairs runs of one iteration: num[i]/den[i]. A run whose CPU time
// rounds to zero (rusage has a clock tick's grain) gives no ratio.
func ratios(num, den []float64) []float64 {
	var r []float64
	for i := range num {
		if den[i] > 0 {
			r = append(r, num[i]/den[i])
		}
	}
	if len(r) == 0 {
		r = append(r, 0)
	}
	return r
}

// quartiles are the 25th, 50th and 75th percentiles, by nearest rank.
type quartiles struct{ p25, p50, p75 float64 }

func quartilesOf(v []float64) quartiles {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	return quartiles{s[n/4], s[n/2], s[3*n/4]}
}

// reportSpread reports the median of v as NAME-UNIT and its interquartile
// range (p75 - p25, the spread of the middle half, which one stalled run
// cannot inflate) as NAME-iqr-UNIT; without a unit, NAME and NAME-iqr.
func reportSpread(b *testing.B, name, unit string, v []float64) {
	q := quartilesOf(v)
	suffix := ""
	if unit != "" {
		suffix = "-" + unit
	}
	b.ReportMetric(q.p50, name+suffix)
	b.ReportMetric(q.p75-q.p25, name+"-iqr"+suffix)
}

func millis(ds []time.Duration) []float64 { return inUnits(ds, time.Millisecond) }
func micros(ds []time.Duration) []float64 { return inUnits(ds, time.Microsecond) }

func inUnits(ds []time.Duration, unit time.Duration) []float64 {
	v := make([]float64, len(ds))
	for i, d := range ds {
		v[i] = float64(d) / float64(unit)
	}
	return v
}

// BenchmarkHandoff: the holder's gateway exits; how long until the waiter's
// gateway runs? Same gateway program under both tools.
func BenchmarkHandoff(b *testing.B) {
	gw, fl := benchBinary(b), flockBinary(b)
	dir := b.TempDir()
	lock, flockFile := filepath.Join(dir, "handoff.lock"), filepath.Join(dir, "handoff.flock")
	stamp := testBinary(b)
	handoff := func(i int, holderArgv, waiterArgv func(stampFile string) []string) time.Duration {
		t0f, t1f := filepath.Join(dir, "t0-"+strconv.Itoa(i)), filepath.Join(dir, "t1-"+strconv.Itoa(i))
		ha := holderArgv(t0f)
		holder := exec.Command(ha[0], ha[1:]...)
		stdin, _ := holder.StdinPipe()
		if err := holder.Start(); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(eventWait); ; time.Sleep(100 * time.Microsecond) {
			if _, err := os.Stat(t0f + ".ready"); err == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("holder's gateway never started")
			}
		}
		wa := waiterArgv(t1f)
		waiter := exec.Command(wa[0], wa[1:]...)
		if err := waiter.Start(); err != nil {
			b.Fatal(err)
		}
		waitBlocked(b, waiter.Process.Pid)
		stdin.Close()
		d := time.Duration(readStamp(b, t1f) - readStamp(b, t0f))
		_ = holder.Wait()
		_ = waiter.Wait()
		return d
	}
	gwHolder := func(f string) []string {
		return []string{gw, "run", "-q", "--lock", lock, "--", stamp, "helper:stamp", f, "wait"}
	}
	gwWaiter := func(f string) []string {
		return []string{gw, "run", "-q", "--timeout", "10s", "--lock", lock, "--", stamp, "helper:stamp", f}
	}
	flHolder := func(f string) []string { return []string{fl, flockFile, stamp, "helper:stamp", f, "wait"} }
	flWaiter := func(f string) []string { return []string{fl, "-w", "10", flockFile, stamp, "helper:stamp", f} }
	var gws, fls []time.Duration
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			gws = append(gws, handoff(2*i, gwHolder, gwWaiter))
			fls = append(fls, handoff(2*i+1, flHolder, flWaiter))
		} else {
			fls = append(fls, handoff(2*i+1, flHolder, flWaiter))
			gws = append(gws, handoff(2*i, gwHolder, gwWaiter))
		}
	}
	reportPair(b, "ms", gws, fls)
	reportSpread(b, "gwlock", "ms", millis(gws))
	reportSpread(b, "flock", "ms", millis(fls))
}

// waitBlocked waits until pid is asleep in a blocking flock: /proc/locks
// lists blocked waiters with "->".
func waitBlocked(b *testing.B, pid int) {
	b.Helper()
	needle := " " + strconv.Itoa(pid) + " "
	for deadline := time.Now().Add(eventWait); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		f, err := os.Open("/proc/locks")
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if line := sc.Text(); strings.Contains(line, "->") && strings.Contains(line, needle) {
				f.Close()
				return
			}
		}
		f.Close()
	}
	b.Fatalf("pid %d never blocked on the lock", pid)
}

// BenchmarkRecoveryAfterSIGKILL: a holder process is SIGKILLed; how long
// until a waiter (in this process, already asleep on the lock) holds it?
func BenchmarkRecoveryAfterSIGKILL(b *testing.B) {
	lock := filepath.Join(b.TempDir(), "kill.lock")
	benchRecovery(b, lock, func(int) *exec.Cmd {
		holder := exec.Command(testBinary(b), "helper:holder", "-lock", lock)
		out, _ := holder.StdoutPipe()
		if err := holder.Start(); err != nil {
			b.Fatal(err)
		}
		if line, _ := bufio.NewReader(out).ReadString('\n'); line != "held\n" {
			b.Fatalf("holder: %q", line)
		}
		return holder
	})
}

// BenchmarkRecoveryAfterLauncherSIGKILL measures failover: a `gwlock run`
// launcher is SIGKILLed and its gateway is left to the mechanism (the
// parent-death signal stops it; this gateway exits on its first signal). How
// long until a waiter, already asleep on the lock, holds it?
func BenchmarkRecoveryAfterLauncherSIGKILL(b *testing.B) {
	gw := benchBinary(b)
	dir := b.TempDir()
	lock := filepath.Join(dir, "launcher.lock")
	benchRecovery(b, lock, func(i int) *exec.Cmd {
		pidfile := filepath.Join(dir, "pid"+strconv.Itoa(i))
		// A gateway that a signal ends at once, by the kernel's default
		// action, and whose exit frees little: what is measured is
		// gwlock's part, not a big gateway's teardown.
		launcher := exec.Command(gw, "run", "-q", "--lock", lock, "--", "/bin/sh", "-c", `echo $$ > "$0" && exec sleep 60`, pidfile)
		launcher.Env = cleanEnv()
		if err := launcher.Start(); err != nil {
			b.Fatal(err)
		}
		waitFile(b, pidfile)
		return launcher
	})
}

// benchRecovery measures, b.N times, from the SIGKILL of the process that
// startHolder started holding lock to the moment a waiter in this process,
// already asleep on the lock, holds it.
func benchRecovery(b *testing.B, lock string, startHolder func(i int) *exec.Cmd) {
	opts := lockOptions{Path: lock, Timeout: 10 * time.Second, Poll: 100 * time.Millisecond, Stale: 30 * time.Second}
	var recoveries []time.Duration
	for i := 0; i < b.N; i++ {
		holder := startHolder(i)
		blocked := make(contentionSignal, 1)
		wopts := opts
		wopts.Log = telemetry.New(blocked, "text", false)
		got := make(chan time.Time, 1)
		go func() {
			l, err := acquire(wopts)
			got <- time.Now()
			if err != nil {
				b.Error(err)
				return
			}
			_ = l.release(nil)
		}()
		<-blocked
		waitBlocked(b, os.Getpid())
		t0 := time.Now()
		_ = holder.Process.Kill()
		recoveries = append(recoveries, (<-got).Sub(t0))
		_ = holder.Wait()
	}
	reportSpread(b, "recovery", "us", micros(recoveries))
	b.ReportMetric(0, "ns/op")
}

// outOfOrderPercent is the share of pairs of starters, in arrival order,
// that were served the other way round: 0 is FIFO, 50 random.
func outOfOrderPercent(served []int64) float64 {
	inversions, pairs := 0, 0
	for i := range served {
		for j := i + 1; j < len(served); j++ {
			pairs++
			if served[j] < served[i] {
				inversions++
			}
		}
	}
	return 100 * float64(inversions) / float64(pairs)
}

// BenchmarkStorm200: 200 starters at once on one lock; total time under
// gwlock and under flock(1), starters that timed out, and how far the order
// in which starters were served strays from the order in which they were
// started (the share of pairs served the other way round: 0% is FIFO, 50%
// is random).
func BenchmarkStorm200(b *testing.B) {
	gw, fl := benchBinary(b), flockBinary(b)
	dir := b.TempDir()
	lock, flockFile := filepath.Join(dir, "storm.lock"), filepath.Join(dir, "storm.flock")
	stamp := testBinary(b)
	const starters = 200
	storm := func(run int, argv func(stampFile string) []string) (time.Duration, int, float64) {
		cmds := make([]*exec.Cmd, starters)
		files := make([]string, starters)
		start := time.Now()
		for i := range cmds {
			files[i] = filepath.Join(dir, fmt.Sprintf("s%d-%d", run, i))
			a := argv(files[i])
			cmds[i] = exec.Command(a[0], a[1:]...)
			if err := cmds[i].Start(); err != nil {
				b.Fatal(err)
			}
		}
		failed := 0
		for _, c := range cmds {
			if c.Wait() != nil {
				failed++
			}
		}
		elapsed := time.Since(start)
		served := make([]int64, starters)
		for i, f := range files {
			served[i] = readStamp(b, f)
		}
		return elapsed, failed, outOfOrderPercent(served)
	}
	var gws, fls []time.Duration
	var gwInv, flInv []float64
	starved := 0
	for i := 0; i < b.N; i++ {
		d, f, inv := storm(2*i, func(s string) []string {
			return []string{gw, "run", "-q", "--timeout", "60s", "--lock", lock, "--", stamp, "helper:stamp", s}
		})
		gws, gwInv, starved = append(gws, d), append(gwInv, inv), starved+f
		d, f, inv = storm(2*i+1, func(s string) []string { return []string{fl, "-w", "60", flockFile, stamp, "helper:stamp", s} })
		fls, flInv, starved = append(fls, d), append(flInv, inv), starved+f
	}
	reportPair(b, "ms", gws, fls)
	b.ReportMetric(float64(starved), "starved")
	b.ReportMetric(medianFloat(gwInv), "gwlock-out-of-order-%")
	b.ReportMetric(medianFloat(flInv), "flock-out-of-order-%")
}

func medianFloat(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkFootprint: the stripped binary's size and the launcher's peak RSS
// while it holds the lock and supervises a gateway.
func BenchmarkFootprint(b *testing.B) {
	gw := benchBinary(b)
	fi, err := os.Stat(gw)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	var rss []time.Duration // KiB, in a Duration slice for median()
	for i := 0; i < b.N; i++ {
		t0 := filepath.Join(dir, "t"+strconv.Itoa(i))
		cmd := exec.Command(gw, "run", "-q", "--lock", filepath.Join(dir, "rss.lock"), "--", testBinary(b), "helper:stamp", t0, "wait")
		stdin, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(eventWait); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
			if _, err := os.Stat(t0 + ".ready"); err == nil {
				break
			}
		}
		status, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				kb, _ := strconv.Atoi(strings.Fields(line)[1])
				rss = append(rss, time.Duration(kb))
			}
		}
		stdin.Close()
		_ = cmd.Wait()
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
	b.ReportMetric(float64(median(rss))/1024, "rss-MiB")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkAcquireReleaseNamed: the same with a named temp file, the path
// taken where O_TMPFILE or /proc is missing.
func BenchmarkAcquireReleaseNamed(b *testing.B) {
	anon, link := openAnonymous, linkAnonymous
	forceNamedTemp()
	defer func() { openAnonymous, linkAnonymous = anon, link }()
	d := b.TempDir()
	opts := lockOptions{Path: filepath.Join(d, "bench.lock"), Poll: 100 * time.Millisecond, Stale: 30 * time.Second}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l, err := acquire(opts)
		if err != nil {
			b.Fatal(err)
		}
		_ = l.release(nil)
	}
}
