//go:build linux

package main

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// faultProxy is a TCP proxy between one gwlock and one etcd member that can
// pass traffic, black-hole it (bytes held, nothing answered, no error: a cut
// cable), or reset every connection (a refused, crashed peer).
type faultProxy struct {
	addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]bool
	wake  chan struct{} // closed and replaced on every mode change
	quit  chan struct{}
	wg    sync.WaitGroup
}

type proxyMode int

const (
	proxyPass proxyMode = iota
	proxyBlackHole
	proxyReset
)

func (m proxyMode) String() string {
	return [...]string{"pass", "black-hole", "reset"}[m]
}

func startProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{},
		wake: make(chan struct{}), quit: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) url() string { return "http://" + p.addr }

func (p *faultProxy) set(m proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	close(p.wake)
	p.wake = make(chan struct{})
	if m == proxyReset {
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

func (p *faultProxy) state() (proxyMode, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.wake
}

func (p *faultProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if m, _ := p.state(); m == proxyReset {
			resetConn(c)
			continue
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *faultProxy) handle(client net.Conn) {
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
func (p *faultProxy) passable() bool {
	for {
		m, wake := p.state()
		switch m {
		case proxyPass:
			return true
		case proxyReset:
			return false
		}
		select {
		case <-wake:
		case <-p.quit:
			return false
		}
	}
}

func (p *faultProxy) pipe(dst, src net.Conn) {
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

func (p *faultProxy) close() {
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
