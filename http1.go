package main

// A minimal HTTP/1.1 client for the etcd backend's JSON gateway. net/http
// would link its HTTP/2 bundle, gzip, mime and idna into every gwlock, and
// their package inits and the bigger image slow every start, --backend file
// included; the gateway needs no more than a POST with a JSON body and a
// reply framed by Content-Length or chunked encoding.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// h1LineMax is the read buffer: the longest status, header or chunk-size
	// line accepted.
	h1LineMax = 4 << 10
	// h1HeadMax bounds a reply's status line and headers together, so a
	// confused or hostile peer cannot make gwlock buffer without end.
	h1HeadMax = 64 << 10
	// h1DrainMax is how much unread unary body is worth reading to keep the
	// connection rather than dial again.
	h1DrainMax = 64 << 10
	// h1IdleMax: an idle connection older than this is not trusted (the
	// server or a middlebox may have dropped it silently); keepalives every
	// TTL/3 keep the one in use far younger.
	h1IdleMax = 30 * time.Second
)

// h1Client keeps one idle connection per endpoint: keepalives come every
// TTL/3 and should not pay a TCP and TLS handshake each.
type h1Client struct {
	tls       *tls.Config // nil ServerName: set per endpoint from the URL
	dialer    net.Dialer
	handshake time.Duration

	mu   sync.Mutex
	idle map[string]*h1Conn // by endpoint URL
}

type h1Conn struct {
	raw       net.Conn // TCP: its deadline unblocks the TLS layer too
	c         net.Conn // raw, or TLS over it
	br        *bufio.Reader
	idleSince time.Time
}

// close drops the TCP connection under any TLS: a close_notify could wait
// on a peer that no longer reads.
func (pc *h1Conn) close() { _ = pc.raw.Close() }

// h1Reply is a reply whose headers are in; Body reads under the request's
// context, and closing it ends the request.
type h1Reply struct {
	StatusCode int
	Reason     string // as the server sent it
	Body       io.ReadCloser
}

const httpOK = 200

// statusText names a status for an error message when the body says nothing
// and the server sent no reason phrase.
func (r *h1Reply) statusText() string {
	if r.Reason != "" {
		return r.Reason
	}
	switch r.StatusCode {
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 429:
		return "Too Many Requests"
	case 500:
		return "Internal Server Error"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	}
	return ""
}

func newH1Client(tlsConf *tls.Config, timeout time.Duration) *h1Client {
	return &h1Client{
		tls:       tlsConf,
		dialer:    net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Second},
		handshake: timeout,
		idle:      map[string]*h1Conn{},
	}
}

// aLongTimeAgo as a deadline fails every pending and future read and write.
var aLongTimeAgo = time.Unix(1, 0)

// post sends body to ep+path and returns once the reply's headers are in.
// Cancelling ctx unblocks the exchange and any later body read. A stream
// reply (the watch) gets a connection of its own, never reused.
func (h *h1Client) post(ctx context.Context, ep, path, auth string, body []byte, stream bool) (*h1Reply, error) {
	target := ep + path
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	fail := func(err error) error {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return &url.Error{Op: "Post", URL: target, Err: err}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fail(fmt.Errorf("unsupported protocol scheme %q", u.Scheme))
	}
	if strings.ContainsAny(auth, "\r\n\x00") {
		return nil, fail(errors.New("invalid Authorization token: control characters"))
	}
	req := h1Request(u, auth, body)
	for try := 0; ; try++ {
		pc, reused, err := h.conn(ctx, ep, u, stream)
		if err != nil {
			return nil, fail(err)
		}
		raw := pc.raw
		stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(aLongTimeAgo) })
		r, keep, answered, err := h1Exchange(pc, req)
		if err == nil {
			b := &h1Body{h: h, ep: ep, pc: pc, r: r.Body, ctx: ctx, stop: stop, keep: keep && !stream}
			r.Body = b
			return r, nil
		}
		stop()
		pc.close()
		// An idle connection the server closed meanwhile fails before any
		// reply byte: that says nothing about the endpoint, so dial afresh
		// once instead of counting it as the endpoint's failure.
		if reused && !answered && try == 0 && ctx.Err() == nil {
			continue
		}
		return nil, fail(err)
	}
}

// h1Request is the whole request, written in one go.
func h1Request(u *url.URL, auth string, body []byte) []byte {
	b := make([]byte, 0, 256+len(body))
	b = append(b, "POST "...)
	b = append(b, u.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, u.Host...)
	b = append(b, "\r\nUser-Agent: gwlock/"...)
	b = append(b, version...)
	b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	if auth != "" {
		b = append(b, "\r\nAuthorization: "...)
		b = append(b, auth...)
	}
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// conn is the endpoint's idle connection, or a new one.
func (h *h1Client) conn(ctx context.Context, ep string, u *url.URL, stream bool) (pc *h1Conn, reused bool, err error) {
	if !stream {
		h.mu.Lock()
		pc = h.idle[ep]
		delete(h.idle, ep)
		h.mu.Unlock()
		if pc != nil && time.Since(pc.idleSince) < h1IdleMax {
			return pc, true, nil
		}
		if pc != nil {
			pc.close()
		}
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	raw, err := h.dialer.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, false, err
	}
	pc = &h1Conn{raw: raw, c: raw}
	if u.Scheme == "https" {
		conf := h.tls.Clone()
		if conf == nil {
			conf = &tls.Config{}
		}
		if conf.ServerName == "" {
			conf.ServerName = u.Hostname()
		}
		tc := tls.Client(raw, conf)
		hctx, cancel := context.WithTimeout(ctx, h.handshake)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = raw.Close()
			return nil, false, err
		}
		pc.c = tc
	}
	pc.br = bufio.NewReaderSize(pc.c, h1LineMax)
	return pc, false, nil
}

// putIdle keeps pc for the endpoint's next unary request; one is enough.
func (h *h1Client) putIdle(ep string, pc *h1Conn) {
	pc.idleSince = time.Now()
	h.mu.Lock()
	if h.idle[ep] == nil {
		h.idle[ep], pc = pc, nil
	}
	h.mu.Unlock()
	if pc != nil {
		pc.close()
	}
}

// h1Exchange writes req and reads the reply's head. keep: the reply allows
// the connection to be reused once its body is read; answered: some reply
// byte arrived.
func h1Exchange(pc *h1Conn, req []byte) (r *h1Reply, keep, answered bool, err error) {
	if _, err := pc.c.Write(req); err != nil {
		return nil, false, false, err
	}
	if _, err := pc.br.Peek(1); err != nil {
		return nil, false, false, err
	}
	r, keep, err = h1ReadHead(pc.br)
	return r, keep, true, err
}

// h1ReadHead reads the status line and headers (skipping interim 1xx
// replies) and frames the body.
func h1ReadHead(br *bufio.Reader) (*h1Reply, bool, error) {
	budget := h1HeadMax
	for {
		line, err := h1Line(br, &budget)
		if err != nil {
			return nil, false, err
		}
		proto, rest, _ := strings.Cut(line, " ")
		codeText, reason, _ := strings.Cut(rest, " ")
		code, cerr := strconv.Atoi(codeText)
		if !strings.HasPrefix(proto, "HTTP/1.") || len(codeText) != 3 || cerr != nil || code < 100 {
			return nil, false, fmt.Errorf("malformed HTTP status line %q", h1Clip(line))
		}
		keep := proto != "HTTP/1.0"
		length, chunked := int64(-1), false
		for {
			line, err := h1Line(br, &budget)
			if err != nil {
				return nil, false, err
			}
			if line == "" {
				break
			}
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				return nil, false, fmt.Errorf("malformed HTTP header %q", h1Clip(line))
			}
			value = strings.Trim(value, " \t")
			switch {
			case strings.EqualFold(name, "Content-Length"):
				n, err := strconv.ParseInt(value, 10, 64)
				if err != nil || n < 0 || (length >= 0 && n != length) {
					return nil, false, fmt.Errorf("bad Content-Length %q", h1Clip(value))
				}
				length = n
			case strings.EqualFold(name, "Transfer-Encoding"):
				if !strings.EqualFold(value, "chunked") {
					return nil, false, fmt.Errorf("unsupported Transfer-Encoding %q", h1Clip(value))
				}
				chunked = true
			case strings.EqualFold(name, "Connection"):
				for _, tok := range strings.Split(value, ",") {
					if strings.EqualFold(strings.TrimSpace(tok), "close") {
						keep = false
					}
				}
			}
		}
		if code < 200 && code != 101 {
			continue // 100 Continue and friends: the real reply follows
		}
		r := &h1Reply{StatusCode: code, Reason: reason}
		switch {
		case code == 101:
			return nil, false, errors.New("unexpected 101 Switching Protocols")
		case code == 204 || code == 304:
			r.Body = &h1Length{br: br}
		case chunked:
			// Both framings at once is a smuggling smell: read it as
			// chunked, then never reuse the connection.
			keep = keep && length < 0
			r.Body = &h1Chunked{br: br}
		case length >= 0:
			r.Body = &h1Length{br: br, left: length}
		default:
			keep = false
			r.Body = io.NopCloser(br) // until the server closes
		}
		return r, keep, nil
	}
}

// h1Line reads one CRLF- (or LF-) terminated line within the budget.
func h1Line(br *bufio.Reader, budget *int) (string, error) {
	b, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("HTTP reply line longer than %d bytes", h1LineMax)
	}
	if err != nil {
		if err == io.EOF && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if *budget -= len(b); *budget < 0 {
		return "", fmt.Errorf("HTTP reply headers longer than %d bytes", h1HeadMax)
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return string(b), nil
}

// h1Clip keeps error messages about a bad reply short.
func h1Clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// h1Length is a body of known length; running short is an error.
type h1Length struct {
	br   *bufio.Reader
	left int64
}

func (l *h1Length) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.br.Read(p)
	l.left -= int64(n)
	switch {
	case l.left == 0:
		err = io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (l *h1Length) Close() error { return nil }

// h1Chunked is a chunked body. A read returns what one chunk has ready and
// never waits for the next one, so each watch reply is seen as it arrives.
type h1Chunked struct {
	br       *bufio.Reader
	left     int64 // unread bytes of the current chunk
	needCRLF bool  // after a chunk's data
	err      error
}

func (c *h1Chunked) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left == 0 {
		if c.err = c.next(); c.err != nil {
			return 0, c.err
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if c.left == 0 {
		c.needCRLF = true
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.err = err
	}
	return n, err
}

// next reads up to the next chunk's data; at the last chunk it reads the
// trailers and reports io.EOF.
func (c *h1Chunked) next() error {
	budget := h1HeadMax
	if c.needCRLF {
		line, err := h1Line(c.br, &budget)
		if err != nil {
			return err
		}
		if line != "" {
			return errors.New("malformed chunked encoding: data past the chunk")
		}
		c.needCRLF = false
	}
	line, err := h1Line(c.br, &budget)
	if err != nil {
		return err
	}
	sizeText, _, _ := strings.Cut(line, ";")
	size, err := strconv.ParseInt(strings.TrimSpace(sizeText), 16, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("malformed chunk size %q", h1Clip(line))
	}
	if size > 0 {
		c.left = size
		return nil
	}
	for {
		line, err := h1Line(c.br, &budget)
		if err != nil {
			return err
		}
		if line == "" {
			return io.EOF
		}
	}
}

func (c *h1Chunked) Close() error { return nil }

// h1Body is a reply body tied to its connection: read to its end and
// closed before the context ended, the connection goes back for reuse;
// otherwise it is closed, never reused half-read.
type h1Body struct {
	h      *h1Client
	ep     string
	pc     *h1Conn
	r      io.Reader
	ctx    context.Context
	stop   func() bool // disarms the context's hold on the connection
	keep   bool
	eof    bool
	err    error
	closed bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil && b.ctx.Err() != nil {
		// The deadline set on cancel failed the read: say why.
		err = context.Cause(b.ctx)
	}
	b.err = err
	return n, err
}

func (b *h1Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.keep && !b.eof && b.err == nil {
		_, _ = io.CopyN(io.Discard, b, h1DrainMax)
	}
	if b.stop() && b.keep && b.eof && b.pc.br.Buffered() == 0 {
		b.h.putIdle(b.ep, b.pc)
	} else {
		b.pc.close()
	}
	return nil
}
