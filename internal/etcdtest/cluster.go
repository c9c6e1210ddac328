//go:build linux

// Package etcdtest runs real etcd for tests: a cluster of members on
// loopback ports (started from Bin, stopped when the test ends), a fault
// proxy in front of a member, and a PKI for TLS. Without etcd a test is
// skipped, except under CI=true, where that is a failure.
//
// Members elect fast (heartbeat 50 ms, election timeout 500 ms) unless a
// test passes etcd's own defaults, DefaultTimings, as extra flags: the
// later flag wins.
package etcdtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartWait is how long a member may take to become healthy.
var StartWait = 15 * time.Second

// TimeFactor is GWLOCK_TEST_TIME_FACTOR (at least 1): slow machines set it.
func TimeFactor() float64 {
	if f, err := strconv.ParseFloat(os.Getenv("GWLOCK_TEST_TIME_FACTOR"), 64); err == nil && f >= 1 {
		return f
	}
	return 1
}

// Scaled is d times TimeFactor.
func Scaled(d time.Duration) time.Duration { return time.Duration(float64(d) * TimeFactor()) }

// Bin is the etcd server the tests run: GWLOCK_ETCD_BIN, or etcd on PATH.
// CI runs the suite once per etcd release this way.
func Bin() string {
	if b := os.Getenv("GWLOCK_ETCD_BIN"); b != "" {
		return b
	}
	return "etcd"
}

// DefaultTimings are etcd's own heartbeat and election timeout, the ones an
// operator's cluster runs with unless tuned.
var DefaultTimings = []string{"--heartbeat-interval", "100", "--election-timeout", "1000"}

// Require skips without etcd, except in CI, where its absence is a failure.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(Bin()); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("etcd not installed but CI=true (hint: apt-get install etcd-server etcd-client): %v", err)
		}
		t.Skip("etcd not installed (apt-get install etcd-server etcd-client)")
	}
}

// Member is one etcd process of a Cluster.
type Member struct {
	name, clientURL, peerURL, dir string
	scheme                        string
	cmd                           *exec.Cmd
	done                          chan struct{}
	log                           *lockedBuffer
}

// Cluster is the members Start started.
type Cluster struct {
	t       testing.TB
	Members []*Member
	extra   []string // more flags for every member (TLS, auth token TTL)
	initial string
}

// Start starts an n-member cluster on free loopback ports, stopped when the test ends.
// A port found free can be taken by another process before etcd binds it;
// a member that then fails to listen has the whole cluster started again
// on other ports.
func Start(t testing.TB, n int, scheme string, extra ...string) *Cluster {
	t.Helper()
	Require(t)
	for attempt := 1; ; attempt++ {
		c := startOnFreePorts(t, n, scheme, extra)
		err := c.waitHealthy(c.Members...)
		if err == nil {
			t.Cleanup(func() {
				for i := range c.Members {
					c.Kill(i)
				}
			})
			return c
		}
		for i := range c.Members {
			c.Kill(i)
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
	}
}

func startOnFreePorts(t testing.TB, n int, scheme string, extra []string) *Cluster {
	c := &Cluster{t: t, extra: extra}
	var initial []string
	for i := 0; i < n; i++ {
		m := &Member{name: fmt.Sprintf("m%d", i), scheme: scheme,
			clientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, freePort(t)),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
			dir:       filepath.Join(t.TempDir(), "data")}
		c.Members = append(c.Members, m)
		initial = append(initial, m.name+"="+m.peerURL)
	}
	c.initial = strings.Join(initial, ",")
	for i := range c.Members {
		c.Start(i)
	}
	return c
}

// errPortTaken: a member exited because its port was taken meanwhile.
var errPortTaken = errors.New("a port was taken before etcd could listen on it")

// Start (re)starts member i on its data dir.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	m := c.Members[i]
	args := []string{"--name", m.name, "--data-dir", m.dir,
		"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
		"--listen-peer-urls", m.peerURL, "--initial-advertise-peer-urls", m.peerURL,
		"--initial-cluster", c.initial, "--initial-cluster-state", "new", "--initial-cluster-token", "gwlock-test",
		"--heartbeat-interval", "50", "--election-timeout", "500", "--unsafe-no-fsync",
		"--logger", "zap", "--log-level", "error", "--listen-metrics-urls", ""}
	args = append(args, c.extra...)
	m.cmd = exec.Command(Bin(), args...)
	m.log = &lockedBuffer{}
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	m.cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH="+etcdArch())
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		c.t.Fatalf("start etcd %s: %v", m.name, err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(m.cmd, m.done)
}

func etcdArch() string {
	out, _ := exec.Command("go", "env", "GOARCH").Output()
	return strings.TrimSpace(string(out))
}

// Kill stops member i at once (SIGKILL: a crashed host), and waits for it.
func (c *Cluster) Kill(i int) {
	m := c.Members[i]
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
	}
	m.cmd = nil
}

// Signal sends sig to member i (SIGSTOP and SIGCONT: a frozen host).
func (c *Cluster) Signal(i int, sig syscall.Signal) {
	if m := c.Members[i]; m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Signal(sig)
	}
}

// Endpoints are the members' client URLs, in order.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.clientURL)
	}
	return out
}

// WaitHealthy waits until each member answers /health with a leader.
func (c *Cluster) WaitHealthy(ms ...*Member) {
	c.t.Helper()
	if err := c.waitHealthy(ms...); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Cluster) waitHealthy(ms ...*Member) error {
	deadline := time.Now().Add(Scaled(StartWait))
	for _, m := range ms {
		for {
			if m.scheme == "http" && healthy(m.clientURL) {
				break
			}
			if m.scheme == "https" && portOpen(m.clientURL) {
				break
			}
			select {
			case <-m.done:
				if strings.Contains(m.log.String(), "address already in use") {
					return fmt.Errorf("etcd %s: %w", m.name, errPortTaken)
				}
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("etcd %s not healthy within %s; its log:\n%s", m.name, StartWait, m.log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func healthy(url string) bool {
	cl := http.Client{Timeout: time.Second}
	r, err := cl.Get(url + "/health")
	if err != nil {
		return false
	}
	defer r.Body.Close()
	var h struct {
		Health string `json:"health"`
	}
	return json.NewDecoder(r.Body).Decode(&h) == nil && h.Health == "true"
}

func portOpen(url string) bool {
	host := strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://")
	c, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Leader returns the index of the member that leads now (-1 if none is known).
func (c *Cluster) Leader() int {
	for i, m := range c.Members {
		if m.cmd == nil {
			continue
		}
		cl := http.Client{Timeout: time.Second}
		r, err := cl.Post(m.clientURL+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
		if err != nil {
			continue
		}
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		err = json.NewDecoder(r.Body).Decode(&st)
		r.Body.Close()
		if err == nil && st.Leader != "" && st.Leader == st.Header.MemberID {
			return i
		}
	}
	return -1
}

// Etcdctl runs etcdctl against the cluster and returns its output.
func (c *Cluster) Etcdctl(args ...string) string {
	c.t.Helper()
	cmd := exec.Command("etcdctl", append([]string{"--endpoints", strings.Join(c.Endpoints(), ","), "--dial-timeout", "3s", "--command-timeout", "5s"}, args...)...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("etcdctl %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

// lockedBuffer is a member's log, written by exec's copier and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Version is the etcd server's release, e.g. "3.6.16".
func Version(t testing.TB) string {
	t.Helper()
	Require(t)
	cmd := exec.Command(Bin(), "--version")
	cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH="+etcdArch())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s --version: %v", Bin(), err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "etcd Version: "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s --version said no version:\n%s", Bin(), out)
	return ""
}

// Log is what member i wrote (errors only, unless the test asked for more).
func (c *Cluster) Log(i int) string { return c.Members[i].log.String() }
