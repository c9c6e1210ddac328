// Package etcd is a client of etcd's v3 JSON gateway (/v3/..., keys and
// values in base64, int64 as strings) over net/http, with only the calls a
// lease-backed lock needs.
//
// A Client holds a list of endpoints and one current endpoint. A request
// that meets a transport error, a 5xx or a retryable gRPC code moves to the
// next endpoint and tries again, each attempt bounded by Config.Attempt,
// until the caller's context ends; a reply that is not retryable is returned
// at once as an *Error. An expired auth token is replaced once per request
// (Authenticate), and the old token stays in use until a new one is in hand.
//
// The client prints nothing: it tells Config.Report when it moves to another
// endpoint and when a request fails (at most once a second per operation).
// Replies are read up to 4 MiB; a watch stream is read reply by reply until
// its context ends.
package etcd

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Reporter hears what the client does on its own: endpoint moves and failed
// requests. The main package formats them; a nil Reporter hears nothing.
type Reporter interface {
	EndpointChanged(endpoint string)
	RequestFailed(op, endpoint string, code int, err error)
}

// Config is what a Client needs: where, how to authenticate, and how long
// one request to one endpoint may take.
type Config struct {
	Endpoints      []string    // scheme://host:port, at least one
	TLS            *tls.Config // nil: the system roots, no client certificate
	User, Password string      // RBAC; empty User: no authentication
	Attempt        time.Duration
	Report         Reporter
}

// Client speaks the JSON gateway to Config.Endpoints.
type Client struct {
	endpoints []string
	http      *http.Client
	user      string
	password  string
	report    Reporter
	attempt   time.Duration

	mu      sync.Mutex
	cur     int
	token   string
	lastErr map[string]time.Time // failure reports, at most one a second per op
}

// New returns a client; it contacts nothing.
func New(cfg Config) *Client {
	if cfg.Attempt <= 0 {
		cfg.Attempt = 2 * time.Second
	}
	return &Client{endpoints: cfg.Endpoints, user: cfg.User, password: cfg.Password, report: cfg.Report,
		attempt: cfg.Attempt, lastErr: map[string]time.Time{},
		http: &http.Client{Transport: newTransport(cfg.TLS, cfg.Attempt)}}
}

// newTransport is the one transport of a client. A lock holder sends a
// keepalive every TTL/3 and keeps one watch open, to one endpoint at a time:
// two idle connections per host keep both warm without a handshake each.
// Dial and TLS handshake take at most one attempt; everything after is
// bounded by the request's context. Proxies come from the environment as
// net/http reads them (HTTP_PROXY, HTTPS_PROXY, NO_PROXY; never for loopback).
func newTransport(tlsConf *tls.Config, attempt time.Duration) *http.Transport {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: attempt, KeepAlive: 5 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   attempt,
		ForceAttemptHTTP2:     true, // a custom TLS config turns HTTP/2 off unless asked for
		MaxIdleConns:          16,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	// Over HTTP/2 every request to an endpoint shares one connection: a
	// black-holed one must be found dead by a ping, not by TCP minutes later.
	configureHTTP2(tr, attempt)
	return tr
}

// Attempt is the bound on one request to one endpoint.
func (c *Client) Attempt() time.Duration { return c.attempt }

// Endpoints are the client's endpoints, in order.
func (c *Client) Endpoints() []string { return c.endpoints }

// HasUser says whether requests carry an auth token.
func (c *Client) HasUser() bool { return c.user != "" }

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Error is an error reply of the gateway: either envelope, or a reply that
// was not JSON at all (Message then holds the server's own words).
type Error struct {
	Op, Endpoint string
	HTTPStatus   int
	Code         int // gRPC status code, 0 when the reply named none
	Message      string
	PlainText    bool // the body was not JSON: Message is what the server said
}

func (e *Error) Error() string {
	if e.PlainText {
		return fmt.Sprintf("etcd %s at %s: server said %s (http %d)", e.Op, e.Endpoint, strconv.Quote(e.Message), e.HTTPStatus)
	}
	return fmt.Sprintf("etcd %s at %s: %s (http %d, code %d)", e.Op, e.Endpoint, e.Message, e.HTTPStatus, e.Code)
}

// Retryable: another member may answer (no leader, no quorum, overload).
func (e *Error) Retryable() bool {
	return e.HTTPStatus >= 500 || e.Code == 14 || e.Code == 4
}

// AuthExpired: the token is no longer valid; a new one may be.
func (e *Error) AuthExpired() bool {
	return e.Code == 16 || strings.Contains(e.Message, "invalid auth token")
}

// LeaseNotFound: the server no longer knows the lease a request named.
func LeaseNotFound(err error) bool {
	var ee *Error
	return errors.As(err, &ee) && strings.Contains(ee.Message, "lease not found")
}

func (c *Client) endpoint() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endpoints[c.cur], c.cur
}

// rotate moves off endpoint index i (unless another caller already did).
func (c *Client) rotate(i int) {
	c.mu.Lock()
	if len(c.endpoints) < 2 || c.cur != i {
		c.mu.Unlock()
		return
	}
	c.cur = (c.cur + 1) % len(c.endpoints)
	ep := c.endpoints[c.cur]
	c.mu.Unlock()
	if c.report != nil {
		c.report.EndpointChanged(ep)
	}
}

func (c *Client) reportError(op, endpoint string, code int, err error) {
	c.mu.Lock()
	now := time.Now()
	quiet := now.Sub(c.lastErr[op]) < time.Second
	if !quiet {
		c.lastErr[op] = now
	}
	c.mu.Unlock()
	if !quiet && c.report != nil {
		c.report.RequestFailed(op, endpoint, code, err)
	}
}

// Call POSTs req as JSON to path and decodes the unary reply into resp,
// trying the endpoints in turn until ctx ends. Each attempt has its own
// deadline: a member without quorum answers only after about 7 s.
func (c *Client) Call(ctx context.Context, op, path string, req, resp any) error {
	return c.call(ctx, op, path, req, resp, true)
}

// call is Call, with the client's token or (authenticating) without one.
func (c *Client) call(ctx context.Context, op, path string, req, resp any, withToken bool) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var last error
	reauthed := false
	for attempt := 0; attempt < 4*len(c.endpoints)+2; attempt++ {
		if ctx.Err() != nil {
			break
		}
		ep, idx := c.endpoint()
		began := time.Now()
		err := c.once(ctx, op, ep, path, body, resp, withToken)
		if err == nil {
			return nil
		}
		last = err
		if ctx.Err() != nil && time.Since(began) < c.attempt {
			// The caller's own deadline cut the attempt short: the
			// endpoint is not to blame, and moving off it would send the
			// next request to a member not yet tried, perhaps a frozen one.
			break
		}
		var ee *Error
		code := 0
		if errors.As(err, &ee) {
			code = ee.Code
			if ee.AuthExpired() && c.user != "" && withToken && !reauthed {
				reauthed = true
				c.reportError(op, ep, code, err)
				if c.Authenticate(ctx) == nil {
					continue
				}
			}
			if !ee.Retryable() {
				c.reportError(op, ep, code, err)
				return err
			}
		}
		c.reportError(op, ep, code, err)
		c.rotate(idx)
		if attempt%len(c.endpoints) == len(c.endpoints)-1 {
			// Every member failed once: pause a little so a lost cluster
			// costs a few requests a second, not a busy loop.
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}
	if last == nil {
		last = ctx.Err()
	}
	return last
}

// once is one attempt of Call at one endpoint.
func (c *Client) once(ctx context.Context, op, ep, path string, body []byte, resp any, withToken bool) error {
	actx, cancel := context.WithTimeout(ctx, c.attempt)
	defer cancel()
	r, err := c.post(actx, ep, path, body, withToken)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	return decodeReply(op, ep, r.StatusCode, reason(r), r.Body, resp)
}

// post sends one request to one endpoint; the caller closes the body, and
// ctx bounds the whole exchange, body reads included.
func (c *Client) post(ctx context.Context, ep, path string, body []byte, withToken bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	c.mu.Lock()
	tok := c.token
	c.mu.Unlock()
	if tok != "" && withToken {
		req.Header.Set("Authorization", tok) // raw: etcd 3.4 refuses "Bearer"
	}
	return c.http.Do(req)
}

// reason is the status line's reason phrase, or the standard one.
func reason(r *http.Response) string {
	if s := strings.TrimSpace(strings.TrimPrefix(r.Status, strconv.Itoa(r.StatusCode))); s != "" {
		return s
	}
	return http.StatusText(r.StatusCode)
}

// Authenticate fetches a token for the client's user (nothing without one).
// It asks without a token (the server refuses an authenticate request that
// carries an expired one), while other requests keep the old token until
// the new one replaces it: none goes out without a token meanwhile.
func (c *Client) Authenticate(ctx context.Context) error {
	if c.user == "" {
		return nil
	}
	var resp struct {
		Token string `json:"token"`
	}
	err := c.call(ctx, "auth", "/v3/auth/authenticate", map[string]string{"name": c.user, "password": c.password}, &resp, false)
	if err != nil {
		return err
	}
	if resp.Token == "" {
		return errors.New("etcd auth: no token in the reply (is auth enabled?)")
	}
	c.mu.Lock()
	c.token = resp.Token
	c.mu.Unlock()
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// maxReply bounds what one unary reply may make the client read.
const maxReply = 4 << 20
