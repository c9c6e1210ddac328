package main

// The etcd backend (issue 14, DESIGN-etcd.md): one active gateway per lock key
// across every host that shares an etcd cluster. etcd's JSON gateway (/v3/,
// base64 keys and values, int64 as strings) over a small HTTP/1.1 client of
// our own (http1.go); no etcd client library, no gRPC and no net/http, so the
// binary stays static and small and starts fast.
//
// The safety rule: the holder stops its gateway at a local monotonic deadline
// stopAt = send time of its last good keepalive + TTL - B, and no request it
// makes may outlive stopAt. The server cannot expire the lease before
// sendTime + TTL, and a contender wins only after expiry, so the holder's
// gateway is dead (B = stop timeout + 0.5 s + margin) before anyone else's starts.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"gwlock/internal/telemetry"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Lock-lost reasons.
const (
	lostDeadline     = "keepalive-deadline"
	lostLeaseExpired = "lease-expired"
	lostKeyDeleted   = "key-deleted"
)

// etcdConfig is the etcd backend's part of the command line.
type etcdConfig struct {
	Backend                string // file or etcd
	Endpoints              []string
	Prefix                 string
	CACert, Cert, Key      string
	User, PasswordFile     string
	LockName               string
	ConfigPath             string // names the key when LockName is empty (its contents, not its path)
	LeaseTTL, LeaseMargin  time.Duration
	TakeoverDelay          time.Duration // takeoverAuto: the vanished holder's stop budget
	StopTimeout            time.Duration // the supervisor's grace between TERM and SIGKILL
	Port                   int           // recorded in the value
	endpointsText          string
	requestTimeoutOverride time.Duration // tests: a shorter bound for one request
	watchLifetimeOverride  time.Duration // tests: a shorter life for one watch stream
}

// stopReserve is the time between stopAt and the gateway's certain death
// beyond the stop timeout itself: signal delivery, reaping, our own scheduling.
const stopReserve = 500 * time.Millisecond

// stopBudget is B: from stopAt to a dead gateway, plus the pause margin.
func (c *etcdConfig) stopBudget() time.Duration {
	return c.StopTimeout + stopReserve + c.LeaseMargin
}

// validate checks the etcd flags before anything is contacted (exit 2 on error).
func (c *etcdConfig) validate(cmd string) error {
	if c.Backend != "file" && c.Backend != "etcd" {
		return usagef("bad --backend %q: want file or etcd", c.Backend)
	}
	if c.Backend != "etcd" {
		return nil
	}
	c.Endpoints = nil
	for _, e := range strings.Split(c.endpointsText, ",") {
		e = strings.TrimRight(strings.TrimSpace(e), "/")
		if e == "" {
			continue
		}
		if err := checkEndpoint(e); err != nil {
			return err
		}
		c.Endpoints = append(c.Endpoints, e)
	}
	if len(c.Endpoints) == 0 {
		return usagef("--backend etcd needs --etcd-endpoints https://host:2379,...")
	}
	if !strings.HasPrefix(c.Prefix, "/") {
		return usagef("bad --etcd-prefix %q: must start with /", c.Prefix)
	}
	if c.LockName != "" && strings.ContainsAny(c.LockName, "/\\ \t\n") {
		return usagef("bad --lock-name %q: no slashes or spaces", c.LockName)
	}
	if (c.Cert == "") != (c.Key == "") {
		return usagef("--etcd-cert and --etcd-key go together")
	}
	if (c.User == "") != (c.PasswordFile == "") {
		return usagef("--etcd-user and --etcd-password-file go together")
	}
	if c.LeaseMargin <= 0 {
		return usagef("bad --lease-margin %s: want more than 0 (it is how long gwlock may be frozen without the stop rule failing)", c.LeaseMargin)
	}
	if c.LeaseTTL%time.Second != 0 || c.LeaseTTL <= 0 {
		return usagef("bad --lease-ttl %s: want whole seconds", c.LeaseTTL)
	}
	if cmd == "run" {
		if b := c.stopBudget(); c.LeaseTTL < 3*b {
			return usagef("--lease-ttl %s is below 3 x stop budget %s (--stop-timeout %s + %s + --lease-margin %s) (hint: raise --lease-ttl to %s or lower --stop-timeout)",
				c.LeaseTTL, b, c.StopTimeout, stopReserve, c.LeaseMargin, (3*b + time.Second - 1).Truncate(time.Second))
		}
	}
	return nil
}

// checkEndpoint accepts scheme://host:port and nothing more: a user:password
// in the URL would be logged with every endpoint line (credentials go in
// --etcd-user and --etcd-password-file), and a path, query or fragment would
// be silently dropped or glued to /v3/... .
func checkEndpoint(e string) error {
	u, err := url.Parse(e)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		return usagef("bad --etcd-endpoints entry %q: want http(s)://host:port", e)
	case u.User != nil:
		return usagef("bad --etcd-endpoints entry: credentials in the URL would be logged; use --etcd-user and --etcd-password-file")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(e[len(u.Scheme)+3:], "?#"):
		return usagef("bad --etcd-endpoints entry %q: no path, query or fragment, just http(s)://host:port", e)
	case u.Port() == "":
		return usagef("bad --etcd-endpoints entry %q: name the port, e.g. https://%s:2379", e, u.Hostname())
	}
	return nil
}

// key is <prefix>/v1/<lockid>; lockid is --lock-name or a hash of the config's
// contents, never of its path: paths are host-local.
func (c *etcdConfig) key() (string, error) {
	id := c.LockName
	if id == "" {
		if c.ConfigPath == "" {
			return "", usagef("--backend etcd needs --lock-name NAME or --config PATH")
		}
		b, err := os.ReadFile(c.ConfigPath)
		if err != nil {
			return "", fmt.Errorf("read --config %s to name the etcd key: %w", c.ConfigPath, err)
		}
		sum := sha256.Sum256(b)
		id = hex.EncodeToString(sum[:])[:32]
	}
	return strings.TrimRight(c.Prefix, "/") + "/v1/" + id, nil
}

// ---- the JSON gateway client ----

// etcdClient speaks etcd's v3 JSON gateway to a list of endpoints, moving to
// the next one on any transport error or 5xx, each attempt bounded.
type etcdClient struct {
	endpoints []string
	http      *h1Client
	user      string
	password  string
	log       *telemetry.Logger
	attempt   time.Duration // bound on one request to one endpoint

	mu      sync.Mutex
	cur     int
	token   string
	lastErr map[string]time.Time // backend-error lines, at most one a second per op
}

// etcdError is an error reply of the gateway, unary or streaming envelope.
type etcdError struct {
	Op, Endpoint string
	HTTPStatus   int
	Code         int
	Message      string
}

func (e *etcdError) Error() string {
	return fmt.Sprintf("etcd %s at %s: %s (http %d, code %d)", e.Op, e.Endpoint, e.Message, e.HTTPStatus, e.Code)
}

// retryable: another member may answer (no leader, no quorum, overload).
func (e *etcdError) retryable() bool {
	return e.HTTPStatus >= 500 || e.Code == 14 || e.Code == 4
}

func (e *etcdError) authExpired() bool {
	return e.Code == 16 || strings.Contains(e.Message, "invalid auth token")
}

func newEtcdClient(cfg etcdConfig, log *telemetry.Logger) (*etcdClient, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("read --etcd-cacert %s: %w", cfg.CACert, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read --etcd-cacert %s: no PEM certificate in it", cfg.CACert)
		}
		tlsConf.RootCAs = pool
	}
	if cfg.Cert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("load --etcd-cert %s / --etcd-key %s: %w", cfg.Cert, cfg.Key, err)
		}
		tlsConf.Certificates = []tls.Certificate{pair}
	}
	c := &etcdClient{endpoints: cfg.Endpoints, user: cfg.User, log: log, lastErr: map[string]time.Time{}}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("read --etcd-password-file %s: %w", cfg.PasswordFile, err)
		}
		c.password = strings.TrimRight(string(b), "\r\n")
	}
	c.attempt = cfg.LeaseTTL / 3
	if c.attempt > 2*time.Second || c.attempt <= 0 {
		c.attempt = 2 * time.Second
	}
	if cfg.requestTimeoutOverride > 0 {
		c.attempt = cfg.requestTimeoutOverride
	}
	// HTTP/1.1 only: a request that times out closes its own connection, so
	// the next one dials afresh. Over HTTP/2 every request shares one
	// connection, and a black-holed one stays in use, failing request after
	// request until TCP gives up minutes later; its errors also hide the TLS
	// alert ("certificate required") behind a generic message.
	c.http = newH1Client(tlsConf, c.attempt)
	for _, e := range cfg.Endpoints {
		if strings.HasPrefix(e, "http://") {
			log.Warn("backend-endpoint", "endpoint", e, "tls", false, "hint", "use https:// outside a lab: the lock value and token cross the network in clear")
		}
	}
	return c, nil
}

func (c *etcdClient) endpoint() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endpoints[c.cur], c.cur
}

// rotate moves off endpoint index i (unless another caller already did).
func (c *etcdClient) rotate(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.endpoints) < 2 || c.cur != i {
		return
	}
	c.cur = (c.cur + 1) % len(c.endpoints)
	c.log.Info("backend-endpoint", "endpoint", c.endpoints[c.cur])
}

func (c *etcdClient) reportError(op, endpoint string, code int, err error) {
	c.mu.Lock()
	now := time.Now()
	quiet := now.Sub(c.lastErr[op]) < time.Second
	if !quiet {
		c.lastErr[op] = now
	}
	c.mu.Unlock()
	if !quiet {
		c.log.Warn("backend-error", "op", op, "endpoint", endpoint, "code", code, "err", err.Error())
	}
}

// call POSTs req to path and decodes the unary reply into resp, trying the
// endpoints in turn until ctx ends. Each attempt has its own deadline: a
// member without quorum answers only after about 7 s.
func (c *etcdClient) call(ctx context.Context, op, path string, req, resp any) error {
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
		r, err := c.post(ctx, ep, path, body, c.attempt, false)
		if err == nil {
			err = decodeReply(op, ep, r, resp)
		}
		if err == nil {
			return nil
		}
		last = err
		var ee *etcdError
		code := 0
		if errors.As(err, &ee) {
			code = ee.Code
			if ee.authExpired() && c.user != "" && !reauthed {
				reauthed = true
				c.reportError(op, ep, code, err)
				if aerr := c.authenticate(ctx); aerr == nil {
					continue
				}
			}
			if !ee.retryable() {
				c.reportError(op, ep, code, err)
				return err
			}
		}
		c.reportError(op, ep, code, err)
		c.rotate(idx)
		if attempt%len(c.endpoints) == len(c.endpoints)-1 {
			// Every member failed once: pause a little so a lost cluster
			// costs a few requests a second, not a busy loop.
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if last == nil {
		last = ctx.Err()
	}
	return last
}

// post sends one request to one endpoint; the caller closes the body. A
// stream (the watch) has a connection of its own.
func (c *etcdClient) post(ctx context.Context, ep, path string, body []byte, bound time.Duration, stream bool) (*h1Reply, error) {
	actx, cancel := context.WithTimeout(ctx, bound)
	c.mu.Lock()
	tok := c.token // sent raw as Authorization: etcd 3.4 refuses "Bearer"
	c.mu.Unlock()
	r, err := c.http.post(actx, ep, path, tok, body, stream)
	if err != nil {
		cancel()
		return nil, err
	}
	r.Body = cancelOnClose{r.Body, cancel}
	return r, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// decodeReply reads one JSON reply. Unary errors are {"error","code","message"};
// streaming ones (keepalive, watch) are {"error":{"grpc_code","http_code","message"}};
// streaming results come wrapped in {"result":...}.
func decodeReply(op, ep string, r *h1Reply, resp any) error {
	defer r.Body.Close()
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<20))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if r.StatusCode != httpOK {
			return &etcdError{Op: op, Endpoint: ep, HTTPStatus: r.StatusCode, Message: r.statusText()}
		}
		return fmt.Errorf("etcd %s at %s: bad reply: %w", op, ep, err)
	}
	if e := parseEtcdError(op, ep, r.StatusCode, raw); e != nil {
		return e
	}
	var wrapped struct {
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(raw, &wrapped) == nil && len(wrapped.Result) > 0 {
		raw = wrapped.Result
	}
	if err := json.Unmarshal(raw, resp); err != nil {
		return fmt.Errorf("etcd %s at %s: bad reply: %w", op, ep, err)
	}
	return nil
}

func parseEtcdError(op, ep string, status int, raw []byte) *etcdError {
	var unary struct {
		Error   json.RawMessage `json:"error"`
		Code    int             `json:"code"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(raw, &unary) != nil {
		if status != httpOK {
			return &etcdError{Op: op, Endpoint: ep, HTTPStatus: status, Message: strings.TrimSpace(string(raw))}
		}
		return nil
	}
	if len(unary.Error) == 0 && status == httpOK {
		return nil
	}
	e := &etcdError{Op: op, Endpoint: ep, HTTPStatus: status, Code: unary.Code, Message: unary.Message}
	var stream struct {
		GRPCCode int    `json:"grpc_code"`
		HTTPCode int    `json:"http_code"`
		Message  string `json:"message"`
	}
	if len(unary.Error) > 0 && unary.Error[0] == '{' && json.Unmarshal(unary.Error, &stream) == nil {
		e.Code, e.Message = stream.GRPCCode, stream.Message
		if stream.HTTPCode != 0 {
			e.HTTPStatus = stream.HTTPCode
		}
	} else if e.Message == "" && len(unary.Error) > 0 {
		_ = json.Unmarshal(unary.Error, &e.Message)
	}
	return e
}

func (c *etcdClient) authenticate(ctx context.Context) error {
	if c.user == "" {
		return nil
	}
	var resp struct {
		Token string `json:"token"`
	}
	c.mu.Lock()
	c.token = ""
	c.mu.Unlock()
	err := c.call(ctx, "auth", "/v3/auth/authenticate", map[string]string{"name": c.user, "password": c.password}, &resp)
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

// ---- the v3 messages used here (int64 as strings, bytes as base64) ----

type etcdHeader struct {
	Revision int64 `json:"revision,string"`
}

type etcdKV struct {
	Key            []byte `json:"key"`
	Value          []byte `json:"value"`
	CreateRevision int64  `json:"create_revision,string"`
	ModRevision    int64  `json:"mod_revision,string"`
	Lease          int64  `json:"lease,string"`
}

type etcdRangeResp struct {
	Header etcdHeader `json:"header"`
	KVs    []etcdKV   `json:"kvs"`
}

type etcdTxnResp struct {
	Header    etcdHeader `json:"header"`
	Succeeded bool       `json:"succeeded"` // absent when false
	Responses []struct {
		ResponseRange *etcdRangeResp `json:"response_range"`
	} `json:"responses"`
}

type etcdLeaseResp struct {
	ID  int64 `json:"ID,string"`
	TTL int64 `json:"TTL,string"` // absent on a keepalive of a dead lease
}

type etcdWatchResp struct {
	Header          etcdHeader `json:"header"`
	Created         bool       `json:"created"`
	Canceled        bool       `json:"canceled"`
	CompactRevision int64      `json:"compact_revision,string"`
	CancelReason    string     `json:"cancel_reason"`
	Events          []struct {
		Type   string  `json:"type"` // "DELETE", or absent for a PUT
		KV     etcdKV  `json:"kv"`
		PrevKV *etcdKV `json:"prev_kv"`
	} `json:"events"`
}

func (c *etcdClient) grant(ctx context.Context, ttl time.Duration) (etcdLeaseResp, error) {
	var r etcdLeaseResp
	err := c.call(ctx, "lease-grant", "/v3/lease/grant", map[string]string{"TTL": strconv.FormatInt(int64(ttl/time.Second), 10)}, &r)
	if err == nil && (r.ID == 0 || r.TTL <= 0) {
		err = errors.New("etcd lease-grant: reply without ID or TTL")
	}
	return r, err
}

// keepalive refreshes a lease; TTL 0 in the reply means the lease is gone.
func (c *etcdClient) keepalive(ctx context.Context, id int64) (etcdLeaseResp, error) {
	var r etcdLeaseResp
	err := c.call(ctx, "lease-keepalive", "/v3/lease/keepalive", map[string]string{"ID": strconv.FormatInt(id, 10)}, &r)
	return r, err
}

func (c *etcdClient) revoke(ctx context.Context, id int64) error {
	var r struct{}
	err := c.call(ctx, "lease-revoke", "/v3/lease/revoke", map[string]string{"ID": strconv.FormatInt(id, 10)}, &r)
	var ee *etcdError
	if errors.As(err, &ee) && strings.Contains(ee.Message, "lease not found") {
		return nil
	}
	return err
}

// timeToLive reports a lease's remaining TTL in seconds (-1: gone).
func (c *etcdClient) timeToLive(ctx context.Context, id int64) (int64, error) {
	var r struct {
		TTL int64 `json:"TTL,string"`
	}
	err := c.call(ctx, "lease-timetolive", "/v3/lease/timetolive", map[string]string{"ID": strconv.FormatInt(id, 10)}, &r)
	return r.TTL, err
}

func (c *etcdClient) get(ctx context.Context, key string) (*etcdKV, int64, error) {
	var r etcdRangeResp
	if err := c.call(ctx, "range", "/v3/kv/range", map[string]any{"key": []byte(key)}, &r); err != nil {
		return nil, 0, err
	}
	if len(r.KVs) == 0 {
		return nil, r.Header.Revision, nil
	}
	return &r.KVs[0], r.Header.Revision, nil
}

// createIfAbsent puts key=value on lease if the key does not exist; else it
// returns the current holder's kv.
func (c *etcdClient) createIfAbsent(ctx context.Context, key string, value []byte, lease int64) (bool, *etcdKV, int64, error) {
	req := map[string]any{
		"compare": []map[string]any{{"key": []byte(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}},
		"success": []map[string]any{{"request_put": map[string]any{"key": []byte(key), "value": value, "lease": strconv.FormatInt(lease, 10)}}},
		"failure": []map[string]any{{"request_range": map[string]any{"key": []byte(key)}}},
	}
	var r etcdTxnResp
	if err := c.call(ctx, "txn", "/v3/kv/txn", req, &r); err != nil {
		return false, nil, 0, err
	}
	if r.Succeeded {
		return true, nil, r.Header.Revision, nil
	}
	for _, resp := range r.Responses {
		if resp.ResponseRange != nil && len(resp.ResponseRange.KVs) > 0 {
			return false, &resp.ResponseRange.KVs[0], r.Header.Revision, nil
		}
	}
	// Deleted between compare and range cannot happen in one txn; an empty
	// failure range means a reply we do not understand.
	return false, nil, r.Header.Revision, nil
}

// putIfFence overwrites the value while the key is still ours.
func (c *etcdClient) putIfFence(ctx context.Context, key string, value []byte, lease, fence int64) (bool, error) {
	req := map[string]any{
		"compare": []map[string]any{{"key": []byte(key), "target": "CREATE", "result": "EQUAL", "create_revision": strconv.FormatInt(fence, 10)}},
		"success": []map[string]any{{"request_put": map[string]any{"key": []byte(key), "value": value, "lease": strconv.FormatInt(lease, 10)}}},
	}
	var r etcdTxnResp
	err := c.call(ctx, "txn", "/v3/kv/txn", req, &r)
	return r.Succeeded, err
}

// watch streams the key's events from rev until ctx ends or the stream
// breaks; each reply goes to fn, which returns false to stop.
func (c *etcdClient) watch(ctx context.Context, key string, rev int64, fn func(etcdWatchResp) bool) error {
	body, _ := json.Marshal(map[string]any{"create_request": map[string]any{
		"key": []byte(key), "start_revision": strconv.FormatInt(rev, 10), "prev_kv": true}})
	ep, idx := c.endpoint()
	deadline, ok := ctx.Deadline()
	bound := time.Hour
	if ok {
		bound = time.Until(deadline)
	}
	r, err := c.post(ctx, ep, "/v3/watch", body, bound, true)
	if err != nil {
		c.reportError("watch", ep, 0, err)
		c.rotate(idx)
		return err
	}
	defer r.Body.Close()
	if r.StatusCode != httpOK {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		e := parseEtcdError("watch", ep, r.StatusCode, b)
		if e == nil {
			e = &etcdError{Op: "watch", Endpoint: ep, HTTPStatus: r.StatusCode}
		}
		return c.watchRefused(ctx, ep, idx, e)
	}
	dec := json.NewDecoder(bufio.NewReader(r.Body))
	for {
		reply, err := c.nextWatchReply(ctx, ep, idx, dec)
		if err != nil {
			return err
		}
		if !fn(reply) {
			return nil
		}
	}
}

// watchRefused tells an error etcd answered a watch with, and readies the
// next try: a fresh token if ours expired, else the next endpoint.
func (c *etcdClient) watchRefused(ctx context.Context, ep string, idx int, e *etcdError) error {
	c.reportError("watch", ep, e.Code, e)
	if e.authExpired() && c.user != "" {
		_ = c.authenticate(ctx)
	} else {
		c.rotate(idx)
	}
	return e
}

// nextWatchReply reads one reply off the watch stream: its result, or why the
// stream is over.
func (c *etcdClient) nextWatchReply(ctx context.Context, ep string, idx int, dec *json.Decoder) (etcdWatchResp, error) {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if ctx.Err() != nil {
			return etcdWatchResp{}, ctx.Err()
		}
		c.reportError("watch", ep, 0, err)
		c.rotate(idx)
		return etcdWatchResp{}, err
	}
	if e := parseEtcdError("watch", ep, httpOK, raw); e != nil {
		return etcdWatchResp{}, c.watchRefused(ctx, ep, idx, e)
	}
	var wrapped struct {
		Result etcdWatchResp `json:"result"`
	}
	if err := json.Unmarshal(raw, &wrapped); err != nil {
		return etcdWatchResp{}, fmt.Errorf("etcd watch at %s: bad reply: %w", ep, err)
	}
	return wrapped.Result, nil
}

// ---- the value ----

// etcdValue is the owner payload of the file backend plus the etcd facts a
// contender and `status` need.
type etcdValue struct {
	ownerPayload
	Backend      string `json:"backend"`
	Lease        string `json:"lease"`
	TTLSeconds   int64  `json:"ttlSeconds"`
	StopBudgetMs int64  `json:"stopBudgetMs"`
	Released     bool   `json:"released,omitempty"`
}

func parseEtcdValue(b []byte) (*etcdValue, error) {
	var v etcdValue
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after value")
	}
	if v.StopBudgetMs < 0 || v.StopBudgetMs > int64(time.Hour/time.Millisecond) {
		v.StopBudgetMs = 0
	}
	return &v, nil
}

// ---- the backend ----

type etcdBackend struct {
	cfg    etcdConfig
	key    string
	client *etcdClient
	// Notify, if set, tells the service manager (sdNotify on systemd) that a
	// standby is up and waiting, once per holder change: a Type=notify unit
	// would otherwise be killed by TimeoutStartSec while it waits.
	Notify func(state string)
}

func newEtcdBackend(cfg etcdConfig, log *telemetry.Logger) (*etcdBackend, error) {
	key, err := cfg.key()
	if err != nil {
		return nil, err
	}
	c, err := newEtcdClient(cfg, log)
	if err != nil {
		return nil, err
	}
	return &etcdBackend{cfg: cfg, key: key, client: c}, nil
}

// lease is our lease while we contend: kept alive so that a win can start
// from a fresh, known send time.
type etcdLease struct {
	id       int64
	ttl      time.Duration
	goodSend time.Time // send time of the last grant or keepalive that the server answered with a TTL
}

func (b *etcdBackend) refreshLease(ctx context.Context, l *etcdLease) error {
	if l.id != 0 {
		send := time.Now()
		r, err := b.client.keepalive(ctx, l.id)
		if err != nil {
			return err
		}
		if r.TTL > 0 {
			l.goodSend, l.ttl = send, time.Duration(r.TTL)*time.Second
			return nil
		}
	}
	send := time.Now()
	r, err := b.client.grant(ctx, b.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	l.id, l.ttl, l.goodSend = r.ID, time.Duration(r.TTL)*time.Second, send
	return nil
}

func (b *etcdBackend) value(l *etcdLease, gatewayPID int, released bool) []byte {
	v := etcdValue{ownerPayload: newPayload(lockOptions{ConfigPath: b.cfg.ConfigPath, Port: b.cfg.Port}),
		Backend: "etcd", Lease: strconv.FormatInt(l.id, 16), TTLSeconds: int64(l.ttl / time.Second),
		StopBudgetMs: b.cfg.stopBudget().Milliseconds(), Released: released}
	v.ChildPID = gatewayPID
	out, _ := json.Marshal(&v)
	return out
}

// acquire implements lockBackend: grant, create-if-absent, else watch the
// key for a DELETE and try again, until req.Timeout.
func (b *etcdBackend) acquire(req acquireRequest) (holder, error) {
	start := time.Now()
	req.Log.Info("acquire-start", "backend", "etcd", "key", b.key, "endpoints", strings.Join(b.cfg.Endpoints, ","), "ttl_s", int64(b.cfg.LeaseTTL/time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if req.Cancel != nil {
		go cancelOn(ctx, cancel, req.Cancel)
	}
	deadline := start.Add(req.Timeout)
	if b.client.user != "" {
		if err := b.client.authenticate(b.opCtx(ctx, deadline)); err != nil {
			return nil, b.acquireFailed(req, err)
		}
	}
	a := &etcdAttempt{b: b, req: req, ctx: ctx, start: start, deadline: deadline}
	for {
		if r := a.round(); r.next == attemptFinished {
			return r.h, r.err
		}
	}
}

// cancelOn cancels ctx when stop closes (the caller gave up), and ends with ctx.
func cancelOn(ctx context.Context, cancel context.CancelFunc, stop <-chan struct{}) {
	select {
	case <-stop:
		cancel()
	case <-ctx.Done():
	}
}

// etcdAttempt is one acquire in progress: what it holds (the lease) and what
// it has seen of the current holder.
type etcdAttempt struct {
	b        *etcdBackend
	req      acquireRequest
	ctx      context.Context
	start    time.Time
	deadline time.Time

	lease       etcdLease
	lastHolder  int64 // create_revision of the last holder we reported
	holderValue *etcdValue
	sawHolder   bool
	deleted     *etcdKV // the predecessor as the DELETE event showed it
	seenRev     int64   // the revision at which we last saw a holder
}

// attemptNext says where acquire goes after one step.
type attemptNext int

const (
	attemptProceed  attemptNext = iota // this step is done: on to the next one in the round
	attemptAgain                       // the round is over: start a new one
	attemptFinished                    // acquire answers h, err
)

// attemptStep is one step's outcome.
type attemptStep struct {
	next attemptNext
	h    holder
	err  error
}

var (
	stepProceed = attemptStep{next: attemptProceed}
	stepAgain   = attemptStep{next: attemptAgain}
)

func stepFinish(h holder, err error) attemptStep {
	return attemptStep{next: attemptFinished, h: h, err: err}
}

// round is one try: a live lease, create-if-absent, then won, or the holder
// noted and either given up on or waited for.
func (a *etcdAttempt) round() attemptStep {
	if a.ctx.Err() != nil {
		return stepFinish(nil, a.b.abandon(&a.lease, errCanceled))
	}
	if s := a.ensureLease(); s.next != attemptProceed {
		return s
	}
	won, holder, rev, err := a.b.client.createIfAbsent(a.b.opCtx(a.ctx, a.deadline), a.b.key, a.b.value(&a.lease, 0, false), a.lease.id)
	if leaseNotFound(err) {
		a.lease = etcdLease{} // revoked or expired under us (a paused host): grant a new one
	}
	if err != nil {
		return a.requestFailed(err)
	}
	// A retried txn whose first try won finds our own lease on the key.
	if !won && holder != nil && holder.Lease == a.lease.id {
		won, rev = true, holder.CreateRevision
	}
	if won {
		return a.finishWon(rev)
	}
	if holder == nil {
		// A failed compare with no holder in the reply: not a shape etcd
		// sends, so pace the retry instead of spinning on it.
		sleepCtx(a.ctx, 100*time.Millisecond)
		return stepAgain
	}
	v := a.noteHolder(holder, rev)
	return a.giveUpOrWait(holder, v, rev)
}

// leaseNotFound: the server no longer knows the lease we named.
func leaseNotFound(err error) bool {
	var ee *etcdError
	return errors.As(err, &ee) && strings.Contains(ee.Message, "lease not found")
}

// ensureLease grants a lease, or refreshes ours once a third of its life is gone.
func (a *etcdAttempt) ensureLease() attemptStep {
	if time.Since(a.lease.goodSend) <= a.lease.ttl/3 && a.lease.id != 0 {
		return stepProceed
	}
	if err := a.b.refreshLease(a.b.opCtx(a.ctx, a.deadline), &a.lease); err != nil {
		return a.requestFailed(err)
	}
	return stepProceed
}

// requestFailed: canceled or past the deadline ends acquire; otherwise pause
// and try again.
func (a *etcdAttempt) requestFailed(err error) attemptStep {
	if a.ctx.Err() != nil {
		return stepFinish(nil, a.b.abandon(&a.lease, errCanceled))
	}
	if time.Now().After(a.deadline) {
		return stepFinish(nil, a.b.abandon(&a.lease, a.b.acquireFailed(a.req, err)))
	}
	sleepCtx(a.ctx, 200*time.Millisecond)
	return stepAgain
}

// finishWon hands over the hold, with the predecessor's last words when the
// DELETE was not seen.
func (a *etcdAttempt) finishWon(rev int64) attemptStep {
	if a.sawHolder && a.deleted == nil {
		// The holder went between two watch streams: its last
		// words (released:true or not) are still in the history.
		a.deleted = a.b.predecessor(a.ctx, a.seenRev+1, rev)
	}
	return stepFinish(a.b.won(a.ctx, a.req, &a.lease, rev, a.start, a.sawHolder, a.deleted, a.holderValue))
}

// noteHolder records the holder seen at rev, and tells (log, systemd status)
// when it is a new one.
func (a *etcdAttempt) noteHolder(holder *etcdKV, rev int64) *etcdValue {
	v, _ := parseEtcdValue(holder.Value)
	if v == nil {
		v = &etcdValue{}
	}
	a.sawHolder, a.holderValue, a.seenRev, a.deleted = true, v, rev, nil
	if holder.CreateRevision == a.lastHolder {
		return v
	}
	a.lastHolder = holder.CreateRevision
	a.req.Log.Info("acquire-contention", "key", a.b.key, "holder_host", v.Hostname, "holder_pid", v.PID, "holder_fence", holder.CreateRevision)
	if a.b.Notify != nil && !a.req.StopIfAlive && a.req.Timeout > 0 {
		a.b.Notify(fmt.Sprintf("READY=1\nSTATUS=standby key=%s holder=%s pid=%d fence=%d", a.b.key, v.Hostname, v.PID, holder.CreateRevision))
	}
	return v
}

// giveUpOrWait: busy when the caller will not wait (or waited enough);
// otherwise watch for the holder's DELETE, then start a new round.
func (a *etcdAttempt) giveUpOrWait(holder *etcdKV, v *etcdValue, rev int64) attemptStep {
	req := a.req
	if req.StopIfAlive || req.Timeout == 0 || time.Now().After(a.deadline) {
		waited := time.Since(a.start)
		if !req.StopIfAlive {
			req.Log.Warn("acquire-timeout", "key", a.b.key, "holder_host", v.Hostname, "holder_pid", v.PID, "holder_fence", holder.CreateRevision, "waited_ms", ms(waited))
		}
		return stepFinish(nil, a.b.abandon(&a.lease, &busyError{Path: a.b.key, OwnerPID: v.PID, Status: ownerAlive, GatewayPID: v.ChildPID, Waited: waited}))
	}
	a.deleted = a.b.waitForDelete(a.ctx, &a.lease, rev+1, a.deadline)
	return stepAgain
}

// waitForDelete watches the key from rev until a DELETE, the deadline, or a
// lease refresh is due; it returns the deleted kv if it saw one.
func (b *etcdBackend) waitForDelete(ctx context.Context, lease *etcdLease, rev int64, deadline time.Time) *etcdKV {
	wait := lease.ttl / 3
	if b.cfg.watchLifetimeOverride > 0 && b.cfg.watchLifetimeOverride < wait {
		wait = b.cfg.watchLifetimeOverride
	}
	if until := time.Until(deadline); until < wait {
		wait = until
	}
	if wait <= 0 {
		return nil
	}
	// A watch stream lives at most one lease refresh period: a black-holed
	// stream never reports anything, so it must not be trusted for longer.
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var gone *etcdKV
	err := b.client.watch(wctx, b.key, rev, func(r etcdWatchResp) bool {
		if r.Canceled || r.CompactRevision != 0 {
			return false // compacted: the range in the next txn is the truth
		}
		for _, ev := range r.Events {
			if ev.Type == "DELETE" {
				gone = &etcdKV{}
				if ev.PrevKV != nil {
					gone = ev.PrevKV
				}
				return false
			}
		}
		return true
	})
	if err != nil && wctx.Err() == nil {
		sleepCtx(wctx, 200*time.Millisecond)
	}
	return gone
}

// predecessor reads the key's history from rev up to our own creation at
// fence and returns the kv its DELETE removed (nil if the history is gone or
// unreachable: the caller then assumes the worst and delays).
func (b *etcdBackend) predecessor(ctx context.Context, rev, fence int64) *etcdKV {
	hctx, cancel := context.WithTimeout(ctx, b.client.attempt)
	defer cancel()
	var gone *etcdKV
	_ = b.client.watch(hctx, b.key, rev, func(r etcdWatchResp) bool {
		if r.Canceled || r.CompactRevision != 0 {
			return false
		}
		for _, ev := range r.Events {
			if ev.Type == "DELETE" && ev.PrevKV != nil {
				gone = ev.PrevKV
			}
			if ev.KV.ModRevision >= fence {
				return false
			}
		}
		return true
	})
	return gone
}

func (b *etcdBackend) won(ctx context.Context, req acquireRequest, lease *etcdLease, fence int64, start time.Time, sawHolder bool, deleted *etcdKV, last *etcdValue) (holder, error) {
	log := req.Log
	h := &etcdHold{b: b, log: log, lease: *lease, fence: fence, acquired: time.Now(),
		lostCh: make(chan string, 1), done: make(chan struct{})}
	h.goodSend = lease.goodSend
	h.stopAt = h.goodSend.Add(lease.ttl - b.cfg.stopBudget())
	log.Info("acquire-success", "key", b.key, "fence", fence, "lease", strconv.FormatInt(lease.id, 16),
		"ttl_s", int64(lease.ttl/time.Second), "waited_ms", ms(time.Since(start)))
	h.start()
	// A predecessor that vanished without saying released:true (operator
	// delete, early revoke, or expiry) may still be stopping its gateway:
	// give it --takeover-delay (by default its own stop budget) first.
	if sawHolder {
		prev := last
		if deleted != nil && len(deleted.Value) > 0 {
			if v, err := parseEtcdValue(deleted.Value); err == nil {
				prev = v
			}
		}
		if delay := b.takeoverDelay(prev); delay > 0 {
			log.Warn("takeover-delay", "key", b.key, "delay_ms", ms(delay), "holder_pid", prev.PID, "holder_host", prev.Hostname)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				h.abandon()
				return nil, errCanceled
			case reason := <-h.lostCh:
				// Lost while waiting: nothing was started, so give up as a failure.
				h.abandon()
				return nil, fmt.Errorf("etcd lock %s lost during the takeover delay: %s", b.key, reason)
			}
		}
	}
	return h, nil
}

// takeoverDelay is how long to wait before starting our gateway after the
// holder prev vanished: none after released:true, else --takeover-delay, or
// under auto prev's own stop budget (ours if it recorded none).
func (b *etcdBackend) takeoverDelay(prev *etcdValue) time.Duration {
	switch {
	case prev == nil || prev.Released:
		return 0
	case b.cfg.TakeoverDelay != takeoverAuto:
		return b.cfg.TakeoverDelay
	case prev.StopBudgetMs > 0:
		return time.Duration(prev.StopBudgetMs) * time.Millisecond
	}
	return b.cfg.stopBudget()
}

// abandon revokes our contender lease (best effort) and returns err.
func (b *etcdBackend) abandon(l *etcdLease, err error) error {
	if l.id != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), b.client.attempt)
		_ = b.client.revoke(ctx, l.id)
		cancel()
	}
	return err
}

func (b *etcdBackend) acquireFailed(req acquireRequest, err error) error {
	hint := "check --etcd-endpoints and that a quorum of members is up"
	var ee *etcdError
	switch msg := err.Error(); {
	case strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:") || strings.Contains(msg, "certificate"):
		hint = "check --etcd-cacert, --etcd-cert and --etcd-key against the server's CA and --client-cert-auth"
	case errors.As(err, &ee) && (ee.authExpired() || strings.Contains(ee.Message, "authentication failed") || strings.Contains(ee.Message, "permission denied")):
		hint = "check --etcd-user, --etcd-password-file and the user's role on the key prefix"
	}
	return fmt.Errorf("etcd lock %s: %w (hint: %s)", b.key, err, hint)
}

// opCtx bounds one operation of the acquisition: the attempt bound, and the
// acquire deadline with room for one attempt.
func (b *etcdBackend) opCtx(ctx context.Context, deadline time.Time) context.Context {
	end := time.Now().Add(2 * b.client.attempt)
	if d := deadline.Add(b.client.attempt); d.After(end) {
		end = d
	}
	c, cancel := context.WithDeadline(ctx, end)
	go func() { <-c.Done(); cancel() }()
	return c
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// ---- the hold ----

type etcdHold struct {
	b        *etcdBackend
	log      *telemetry.Logger
	lease    etcdLease
	fence    int64
	acquired time.Time

	mu          sync.Mutex
	goodSend    time.Time // send time of the last good keepalive
	stopAt      time.Time // goodSend + TTL - B (monotonic)
	gateway     int
	compactions int // watches that found their start revision compacted
	isLost      bool
	released    bool

	lostCh   chan string
	lostOnce sync.Once
	done     chan struct{} // closed on release or abandon: the loops end
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func (h *etcdHold) lost() <-chan string { return h.lostCh }

// activeStatus is the systemd STATUS= text once the gateway is ready.
func (h *etcdHold) activeStatus() string {
	return "STATUS=active key=" + h.b.key + " fence=" + strconv.FormatInt(h.fence, 10)
}

func (h *etcdHold) gatewayEnv() map[string]string {
	return map[string]string{"GWLOCK_FENCE": strconv.FormatInt(h.fence, 10), "GWLOCK_BACKEND": "etcd", "GWLOCK_LOCK_KEY": h.b.key}
}

func (h *etcdHold) where() string { return h.b.key }

// setRestarting: the etcd value says who holds the key; a restart keeps the
// lease and the key, so there is nothing to record there.
func (h *etcdHold) setRestarting(time.Time, int) {}

// runtimeSocket: the etcd lock has no directory of its own; under run it is
// always stacked on the local file lock, whose directory holds the socket.
func (h *etcdHold) runtimeSocket(string, int) (string, string, func(), error) {
	return "", "", nil, errors.New("the etcd lock has no local directory for a socket")
}

func (b *etcdBackend) where() string { return b.key }

func (b *etcdBackend) status(stdout, _ io.Writer, asJSON bool) int {
	return etcdStatus(b.cfg, stdout, asJSON)
}

// unlock: an etcd lock ends with its lease, which the server expires; there
// is nothing a launcher on another host could remove safely.
func (b *etcdBackend) unlock(_ *telemetry.Logger, stderr io.Writer) int {
	return fail(stderr, usagef("unlock %s: the etcd backend's lock ends when its lease expires; nothing to remove (hint: gwlock status --backend etcd shows the holder)", b.key))
}

// deadline is stopAt, read under the lock.
func (h *etcdHold) deadline() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopAt
}

// reqCtx bounds one request of the hold: an attempt, and never past stopAt.
func (h *etcdHold) reqCtx() (context.Context, context.CancelFunc) {
	return h.reqCtxWithin(h.lease.ttl / 3)
}

func (h *etcdHold) reqCtxWithin(bound time.Duration) (context.Context, context.CancelFunc) {
	end := time.Now().Add(bound)
	if s := h.deadline(); s.Before(end) {
		end = s
	}
	ctx, cancel := context.WithDeadline(context.Background(), end)
	go func() {
		select {
		case <-h.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (h *etcdHold) lose(reason string) {
	h.lostOnce.Do(func() {
		h.mu.Lock()
		h.isLost = true
		h.mu.Unlock()
		h.log.Error("lock-lost", "key", h.b.key, "reason", reason, "fence", h.fence,
			"held_ms", ms(time.Since(h.acquired)))
		h.lostCh <- reason
	})
}

func (h *etcdHold) start() {
	h.wg.Add(3)
	go h.keepaliveLoop()
	go h.deadlineLoop()
	go h.watchLoop()
}

// keepaliveLoop refreshes the lease every TTL/3 after the last good send;
// each failure says how long the gateway has left.
func (h *etcdHold) keepaliveLoop() {
	defer h.wg.Done()
	period := h.lease.ttl / 3
	next := time.Now() // at once: the lease's known life is what acquisition left
	for {
		select {
		case <-h.done:
			return
		case <-time.After(time.Until(next)):
		}
		if h.lostNow() {
			return
		}
		send := time.Now()
		// Half a period per try: a failure is told, and retried, while the
		// deadline is still ahead.
		ctx, cancel := h.reqCtxWithin(period / 2)
		r, err := h.b.client.keepalive(ctx, h.lease.id)
		cancel()
		switch {
		case err == nil && r.TTL > 0:
			ttl := time.Duration(r.TTL) * time.Second
			h.mu.Lock()
			h.goodSend = send
			h.stopAt = send.Add(ttl - h.b.cfg.stopBudget())
			h.mu.Unlock()
			next = send.Add(period)
		case err == nil:
			h.lose(lostLeaseExpired)
			return
		default:
			h.log.Warn("keepalive-failed", "key", h.b.key, "stop_in_ms", ms(time.Until(h.deadline())), "err", err.Error())
			next = time.Now().Add(period / 4)
		}
	}
}

// deadlineLoop declares the lock lost at stopAt, unless a keepalive moved it.
func (h *etcdHold) deadlineLoop() {
	defer h.wg.Done()
	for {
		wait := time.Until(h.deadline())
		if wait <= 0 {
			h.lose(lostDeadline)
			return
		}
		select {
		case <-h.done:
			return
		case <-time.After(wait):
		}
	}
}

// watchLoop watches our own key: a DELETE or another create_revision means
// someone else may hold it now. A broken stream is not a loss: reconnect
// (another endpoint) from the last revision seen.
func (h *etcdHold) watchLoop() {
	defer h.wg.Done()
	w := &holdWatch{h: h, rev: h.fence + 1}
	for !h.lostNow() && !h.isDone() {
		if w.once() == watchStop {
			return
		}
	}
}

// holdWatch is the hold's watch on its own key: rev is the next revision it
// has not seen.
type holdWatch struct {
	h   *etcdHold
	rev int64
}

// watchNext says whether watchLoop watches again.
type watchNext int

const (
	watchAgain watchNext = iota // the stream ended and the key is still ours: watch again from rev
	watchStop                   // the lock is lost or the hold is done
)

// streamEnd is how one watch stream ended.
type streamEnd struct {
	verdict   string // a lost reason: the key is someone else's now
	compacted bool   // the history from rev is gone
	err       error  // the stream broke
}

// once is one watch stream and what follows from how it ended.
func (w *holdWatch) once() watchNext {
	end := w.stream()
	if end.verdict != "" {
		if !w.h.isDone() {
			w.h.lose(end.verdict)
		}
		return watchStop
	}
	if end.compacted && w.judgeKeyNow() == watchStop {
		return watchStop
	}
	return w.pauseAfter(end.err)
}

// stream watches from rev for at most a TTL (or until the hold is done).
func (w *holdWatch) stream() streamEnd {
	ctx, cancel := context.WithTimeout(context.Background(), w.h.lease.ttl)
	go cancelOn(ctx, cancel, w.h.done)
	var end streamEnd
	end.err = w.h.b.client.watch(ctx, w.h.b.key, w.rev, func(r etcdWatchResp) bool {
		return w.judge(r, &end)
	})
	cancel()
	return end
}

// judge reads one watch reply: rev moves past what it shows; a DELETE or
// another create_revision, or a compacted history, ends the stream.
func (w *holdWatch) judge(r etcdWatchResp, end *streamEnd) bool {
	if r.Canceled || r.CompactRevision != 0 {
		end.compacted = true
		return false
	}
	for _, ev := range r.Events {
		if ev.KV.ModRevision >= w.rev {
			w.rev = ev.KV.ModRevision + 1
		}
		if ev.Type == "DELETE" || ev.KV.CreateRevision != w.h.fence {
			end.verdict = lostKeyDeleted
			return false
		}
	}
	if r.Header.Revision >= w.rev && len(r.Events) == 0 && !r.Created {
		w.rev = r.Header.Revision + 1
	}
	return true
}

// judgeKeyNow: the history is gone, so the key as it is now decides; a
// failed read decides nothing and the watch goes on.
func (w *holdWatch) judgeKeyNow() watchNext {
	h := w.h
	h.mu.Lock()
	h.compactions++
	h.mu.Unlock()
	rctx, rcancel := h.reqCtx()
	kv, cur, err := h.b.client.get(rctx, h.b.key)
	rcancel()
	if err != nil {
		return watchAgain
	}
	if (kv == nil || kv.CreateRevision != h.fence) && !h.isDone() {
		h.lose(lostKeyDeleted)
		return watchStop
	}
	w.rev = cur + 1
	return watchAgain
}

// pauseAfter paces a stream that broke (not one that merely lived out its
// time) before the next one.
func (w *holdWatch) pauseAfter(err error) watchNext {
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return watchAgain
	}
	select {
	case <-w.h.done:
		return watchStop
	case <-time.After(200 * time.Millisecond):
		return watchAgain
	}
}

func (h *etcdHold) lostNow() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.isLost
}

func (h *etcdHold) isDone() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

func (h *etcdHold) stopLoops() {
	h.stopOnce.Do(func() { close(h.done) })
	h.wg.Wait()
}

// abandon ends a hold whose gateway never started: loops stopped, lease revoked.
func (h *etcdHold) abandon() {
	h.stopLoops()
	ctx, cancel := context.WithTimeout(context.Background(), h.b.client.attempt)
	defer cancel()
	_ = h.b.client.revoke(ctx, h.lease.id)
}

func (h *etcdHold) setGateway(pid int) {
	h.mu.Lock()
	h.gateway = pid
	h.mu.Unlock()
	ctx, cancel := h.reqCtx()
	defer cancel()
	_, _ = h.b.client.putIfFence(ctx, h.b.key, h.b.value(&h.lease, pid, false), h.lease.id, h.fence)
}

// release is called once the gateway is gone (also after a loss): it marks
// the value released (only while the key is still ours), then revokes the
// lease, which deletes the key and wakes the standbys.
func (h *etcdHold) release(log *telemetry.Logger) error {
	h.mu.Lock()
	if h.released {
		h.mu.Unlock()
		return nil
	}
	h.released = true
	wasLost, pid := h.isLost, h.gateway
	h.mu.Unlock()
	h.stopLoops()
	ctx, cancel := context.WithTimeout(context.Background(), 2*h.b.client.attempt)
	defer cancel()
	if !wasLost {
		_, _ = h.b.client.putIfFence(ctx, h.b.key, h.b.value(&h.lease, pid, true), h.lease.id, h.fence)
	}
	err := h.b.client.revoke(ctx, h.lease.id)
	if wasLost {
		return nil // the loss was reported; the revoke was a courtesy
	}
	if err != nil {
		// The lease will expire on its own within its TTL.
		return fmt.Errorf("release etcd lock %s: revoke lease %x: %w (hint: standbys take over when it expires, within %s)", h.b.key, h.lease.id, err, h.lease.ttl)
	}
	log.Info("lock-released", "key", h.b.key, "fence", h.fence, "held_ms", ms(time.Since(h.acquired)))
	return nil
}

// ---- status ----

type etcdStatusReport struct {
	Key        string `json:"key"`
	Held       bool   `json:"held"`
	Host       string `json:"host,omitempty"`
	PID        int64  `json:"pid,omitempty"`
	GatewayPID int    `json:"gatewayPid,omitempty"`
	Fence      int64  `json:"fence,omitempty"`
	TTLLeftS   int64  `json:"leaseTtlLeftSeconds,omitempty"`
	Released   bool   `json:"released,omitempty"`
	Error      string `json:"error,omitempty"`
}

// etcdStatus prints who holds the key (LSB codes: 0 held, 3 not held, 4 unknown).
func etcdStatus(cfg etcdConfig, stdout io.Writer, asJSON bool) int {
	rep := etcdStatusReport{}
	code := func() int {
		key, err := cfg.key()
		if err != nil {
			rep.Error = err.Error()
			return statusUnknown
		}
		rep.Key = key
		c, err := newEtcdClient(cfg, nil)
		if err != nil {
			rep.Error = err.Error()
			return statusUnknown
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*c.attempt*time.Duration(len(cfg.Endpoints)))
		defer cancel()
		if err := c.authenticate(ctx); err != nil {
			rep.Error = err.Error()
			return statusUnknown
		}
		kv, _, err := c.get(ctx, key)
		if err != nil {
			rep.Error = err.Error()
			return statusUnknown
		}
		if kv == nil {
			return statusNotRunning
		}
		rep.Held, rep.Fence = true, kv.CreateRevision
		if v, err := parseEtcdValue(kv.Value); err == nil {
			rep.Host, rep.PID, rep.GatewayPID, rep.Released = v.Hostname, v.PID, v.ChildPID, v.Released
		}
		if kv.Lease != 0 {
			if ttl, err := c.timeToLive(ctx, kv.Lease); err == nil {
				rep.TTLLeftS = ttl
			}
		}
		return statusRunning
	}()
	if asJSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(b))
		return code
	}
	switch code {
	case statusRunning:
		fmt.Fprintf(stdout, "%s: held by pid %d on %s, fence %d, gateway pid %d, lease %ds left\n", rep.Key, rep.PID, rep.Host, rep.Fence, rep.GatewayPID, rep.TTLLeftS)
	case statusNotRunning:
		fmt.Fprintf(stdout, "%s: not held\n", rep.Key)
	default:
		fmt.Fprintf(stdout, "%s: unknown: %s\n", rep.Key, rep.Error)
	}
	return code
}
