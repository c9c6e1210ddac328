//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func init() { helpers["heartbeat"] = helperHeartbeat }

// Timing of the uptime footprint: how often the gateway says it is alive,
// how often the launcher's resident set is read, and how long the window is
// when GWLOCK_BENCH_RSS_WINDOW does not say (make bench sets a minute).
const (
	heartbeatEvery    = 3 * time.Second
	rssSampleEvery    = 250 * time.Millisecond
	defaultRSSWindow  = 5 * time.Second
	heartbeatChildren = 3
)

// helperHeartbeat LIFETIME is a gateway of four processes, as a server with
// workers is: it starts three children, says "ready" on stdout, then writes
// a heartbeat line there every heartbeatEvery. "helper:heartbeat LIFETIME
// child" is one of the children, which only lives. Each stops on its first
// SIGTERM (the default action) and after LIFETIME at the latest, so a broken
// run leaves nothing behind; the children also die with their parent.
func helperHeartbeat(args []string) int {
	if len(args) == 0 {
		return 2
	}
	lifetime, err := time.ParseDuration(args[0])
	if err != nil {
		return 2
	}
	if len(args) > 1 && args[1] == "child" {
		time.Sleep(lifetime)
		return 0
	}
	exe, err := os.Executable()
	if err != nil {
		return 4
	}
	for i := 0; i < heartbeatChildren; i++ {
		child := exec.Command(exe, "helper:heartbeat", args[0], "child")
		child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := child.Start(); err != nil {
			return 4
		}
	}
	fmt.Println("ready")
	for n, end := 1, time.Now().Add(lifetime); time.Now().Before(end); n++ {
		time.Sleep(heartbeatEvery)
		fmt.Printf("heartbeat %d\n", n)
	}
	return 0
}

// rssWindow is GWLOCK_BENCH_RSS_WINDOW, a duration such as 60s.
func rssWindow(b *testing.B) time.Duration {
	v := os.Getenv("GWLOCK_BENCH_RSS_WINDOW")
	if v == "" {
		return defaultRSSWindow
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("GWLOCK_BENCH_RSS_WINDOW=%q is not a duration: give one such as 60s", v)
	}
	return d
}

// BenchmarkUptimeRSS: the launcher's memory while it supervises a live
// gateway (helperHeartbeat) for the window: VmRSS sampled every
// rssSampleEvery, its first and last sample (growth with uptime shows as a
// difference), and the launcher's peak (VmHWM) at the end. One window per
// call, whatever b.N: the window, not a count, is what is measured; run it
// with -benchtime 1x.
func BenchmarkUptimeRSS(b *testing.B) {
	window := rssWindow(b)
	lifetime := window + 2*eventWait
	cmd := exec.Command(benchBinary(b), "run", "-q", "--lock", filepath.Join(b.TempDir(), "uptime.lock"),
		"--", testBinary(b), "helper:heartbeat", lifetime.String())
	cmd.Env = cleanEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer stopLauncher(cmd)
	ready := make(chan struct{})
	var heartbeats atomic.Int64
	go countHeartbeats(out, ready, &heartbeats)
	select {
	case <-ready:
	case <-time.After(eventWait):
		b.Fatal("the heartbeat gateway never said ready")
	}
	samples := sampleRSS(b, cmd.Process.Pid, window)
	peak := statusKiB(b, cmd.Process.Pid, "VmHWM:")
	b.ReportMetric(float64(peak)/1024, "peak-rss-MiB")
	b.ReportMetric(float64(samples[0])/1024, "first-rss-MiB")
	b.ReportMetric(float64(samples[len(samples)-1])/1024, "last-rss-MiB")
	b.ReportMetric(float64(len(samples)), "rss-samples")
	b.ReportMetric(window.Seconds(), "window-s")
	b.ReportMetric(float64(heartbeats.Load()), "heartbeats")
	b.ReportMetric(0, "ns/op")
}

// stopLauncher asks the launcher to stop its gateway and exit, as an
// operator would, and kills it if it has not within eventWait.
func stopLauncher(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	kill := time.AfterFunc(eventWait, func() { _ = cmd.Process.Kill() })
	defer kill.Stop()
	_ = cmd.Wait()
}

// countHeartbeats reads the gateway's stdout: it closes ready at "ready"
// and counts the heartbeats after it.
func countHeartbeats(out io.Reader, ready chan struct{}, n *atomic.Int64) {
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		switch line := sc.Text(); {
		case line == "ready":
			close(ready)
		case strings.HasPrefix(line, "heartbeat "):
			n.Add(1)
		}
	}
}

// sampleRSS reads pid's VmRSS (KiB) at once and every rssSampleEvery for
// window.
func sampleRSS(b *testing.B, pid int, window time.Duration) []int {
	tick := time.NewTicker(rssSampleEvery)
	defer tick.Stop()
	samples := []int{statusKiB(b, pid, "VmRSS:")}
	for end := time.Now().Add(window); time.Now().Before(end); {
		<-tick.C
		samples = append(samples, statusKiB(b, pid, "VmRSS:"))
	}
	return samples
}

// statusKiB is a field of /proc/PID/status given in kB, such as VmRSS.
func statusKiB(b *testing.B, pid int, field string) int {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatalf("the launcher is gone: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == field {
			if kb, err := strconv.Atoi(f[1]); err == nil {
				return kb
			}
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
