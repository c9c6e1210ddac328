//go:build linux

package etcdtest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy between one gwlock and one etcd member that can
// pass traffic, black-hole it (bytes held, nothing answered, no error: a cut
// cable), or reset every connection (a refused, crashed peer).
type Proxy struct {
	addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	mode  Mode
	conns map[net.Conn]bool
	wake  chan struct{} // closed and replaced on every mode change
	quit  chan struct{}
	wg    sync.WaitGroup
}

// Mode is what the proxy does with traffic.
type Mode int

const (
	Pass Mode = iota
	BlackHole
	Reset
)

// String names the mode.
func (m Mode) String() string {
	return [...]string{"pass", "black-hole", "reset"}[m]
}

// StartProxy proxies a loopback port to target (host:port), passing traffic.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{},
		wake: make(chan struct{}), quit: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// URL is the proxy as an http:// endpoint.
func (p *Proxy) URL() string { return "http://" + p.addr }

// Set changes the mode; Reset also resets every open connection.
func (p *Proxy) Set(m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	close(p.wake)
	p.wake = make(chan struct{})
	if m == Reset {
		for c := range p.conns {
			resetConn(c)
		}
	}
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST, not FIN
	}
	_ = c.Close()
}

func (p *Proxy) state() (Mode, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.wake
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if m, _ := p.state(); m == Reset {
			resetConn(c)
			continue
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	p.track(client, true)
	defer p.track(client, false)
	defer client.Close()
	// Connecting is traffic too: a black hole lets no SYN through.
	if !p.passable() {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		resetConn(client)
		return
	}
	p.track(server, true)
	defer p.track(server, false)
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() { p.pipe(server, client); done <- struct{}{} }()
	go func() { p.pipe(client, server); done <- struct{}{} }()
	<-done
	resetConn(client)
	resetConn(server)
	<-done
}

// passable waits while the proxy black-holes and reports whether traffic may flow.
func (p *Proxy) passable() bool {
	for {
		m, wake := p.state()
		switch m {
		case Pass:
			return true
		case Reset:
			return false
		}
		select {
		case <-wake:
		case <-p.quit:
			return false
		}
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.passable() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			return
		}
	}
}

// Close stops the proxy and resets its connections.
func (p *Proxy) Close() {
	select {
	case <-p.quit:
		return
	default:
	}
	close(p.quit)
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		resetConn(c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
