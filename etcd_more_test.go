//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"gwlock/internal/telemetry"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testEtcdConfig is a backend config for in-process tests.
func testEtcdConfig(name string, endpoints ...string) etcdConfig {
	return etcdConfig{Backend: "etcd", Endpoints: endpoints, Prefix: "/gwlock-test", LockName: name,
		LeaseTTL: etcdTestTTL, LeaseMargin: etcdTestMargin, StopTimeout: etcdTestStopTimeout}
}

func mustBackend(t testing.TB, cfg etcdConfig) *etcdBackend {
	t.Helper()
	b, err := newEtcdBackend(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustAcquire(t testing.TB, b *etcdBackend, log *telemetry.Logger) *etcdHold {
	t.Helper()
	h, err := b.acquire(acquireRequest{Timeout: scaled(5 * time.Second), Log: log})
	if err != nil {
		t.Fatalf("acquire %s: %v", b.key, err)
	}
	t.Cleanup(func() { _ = h.release(nil) })
	return h.(*etcdHold)
}

// TestEtcdReplyQuirks: the shapes etcd 3.4's gateway really sends.
func TestEtcdReplyQuirks(t *testing.T) {
	reply := func(status int, body string) *h1Reply {
		return &h1Reply{StatusCode: status, Body: io.NopCloser(strings.NewReader(body))}
	}
	// A keepalive of a dead lease: 200, wrapped, no TTL.
	var ka etcdLeaseResp
	if err := decodeReply("ka", "e", reply(200, `{"result":{"header":{"revision":"5"},"ID":"7"}}`), &ka); err != nil || ka.TTL != 0 || ka.ID != 7 {
		t.Errorf("dead-lease keepalive = %+v, %v; want ID 7, TTL 0, no error", ka, err)
	}
	// A failed txn: "succeeded" absent.
	var txn etcdTxnResp
	if err := decodeReply("txn", "e", reply(200, `{"header":{"revision":"9"},"responses":[{"response_range":{"kvs":[{"key":"YQ==","create_revision":"4","lease":"11"}]}}]}`), &txn); err != nil || txn.Succeeded {
		t.Errorf("failed txn = %+v, %v", txn, err)
	} else if kv := txn.Responses[0].ResponseRange.KVs[0]; kv.CreateRevision != 4 || kv.Lease != 11 || string(kv.Key) != "a" {
		t.Errorf("failed txn range = %+v", kv)
	}
	// Unary and streaming error envelopes.
	var x struct{}
	err := decodeReply("range", "e", reply(503, `{"error":"etcdserver: request timed out","code":14,"message":"etcdserver: request timed out"}`), &x)
	if ee, ok := err.(*etcdError); !ok || !ee.retryable() || ee.Code != 14 {
		t.Errorf("unary 503 = %v, want a retryable etcdError code 14", err)
	}
	err = decodeReply("ka", "e", reply(200, `{"error":{"grpc_code":16,"http_code":401,"message":"etcdserver: invalid auth token","http_status":"Unauthorized"}}`), &x)
	if ee, ok := err.(*etcdError); !ok || !ee.authExpired() || ee.HTTPStatus != 401 {
		t.Errorf("streaming auth error = %#v, want an expired-token etcdError", err)
	}
	// A watch PUT has no type; a DELETE has.
	var w struct {
		Result etcdWatchResp `json:"result"`
	}
	if err := json.Unmarshal([]byte(`{"result":{"header":{"revision":"12"},"events":[{"kv":{"key":"YQ==","create_revision":"12","mod_revision":"12"}},{"type":"DELETE","kv":{"key":"YQ==","mod_revision":"13"}}]}}`), &w); err != nil {
		t.Fatal(err)
	}
	if ev := w.Result.Events; len(ev) != 2 || ev[0].Type != "" || ev[1].Type != "DELETE" || ev[0].KV.CreateRevision != 12 {
		t.Errorf("watch events = %+v", ev)
	}
}

// FuzzParseEtcdValue: any bytes in the key's value decode or fail, never panic,
// and a decoded stop budget is never negative.
func FuzzParseEtcdValue(f *testing.F) {
	f.Add([]byte(`{"pid":1,"createdAt":"x","configPath":"","flock":false,"backend":"etcd","lease":"a","ttlSeconds":3,"stopBudgetMs":1000,"released":true}`))
	f.Add([]byte(`{"stopBudgetMs":-5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseEtcdValue(b)
		if err == nil && v.StopBudgetMs < 0 {
			t.Fatalf("stopBudgetMs = %d", v.StopBudgetMs)
		}
	})
}

// TestEtcdWatchCompaction: the holder's own-key watch, broken while history
// is compacted past its revision, comes back from the compaction and still
// sees a DELETE.
func TestEtcdWatchCompaction(t *testing.T) {
	c := startEtcd(t, 1, "http")
	proxy := startProxy(t, strings.TrimPrefix(c.endpoints()[0], "http://"))
	h := mustAcquire(t, mustBackend(t, testEtcdConfig("compaction", proxy.url())), nil)
	direct := mustBackend(t, testEtcdConfig("compaction", c.endpoints()...)).client
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	proxy.set(proxyReset)
	var rev int64
	for i := 0; i < 20; i++ {
		var r struct {
			Header etcdHeader `json:"header"`
		}
		if err := direct.call(ctx, "put", "/v3/kv/put", map[string]any{"key": []byte("/other"), "value": []byte{byte(i)}}, &r); err != nil {
			t.Fatal(err)
		}
		rev = r.Header.Revision
	}
	var x struct{}
	if err := direct.call(ctx, "compact", "/v3/kv/compaction", map[string]any{"revision": rev, "physical": true}, &x); err != nil {
		t.Fatal(err)
	}
	proxy.set(proxyPass)
	deadline := time.Now().Add(scaled(etcdTestTTL))
	for {
		h.mu.Lock()
		n := h.compactions
		h.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch never met the compaction within %s", etcdTestTTL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case reason := <-h.lost():
		t.Fatalf("lock lost after a compaction of other keys: %s", reason)
	default:
	}
	var del struct{}
	if err := direct.call(ctx, "delete", "/v3/kv/deleterange", map[string]any{"key": []byte(h.b.key)}, &del); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-h.lost():
		if reason != lostKeyDeleted {
			t.Fatalf("lost() = %s, want %s", reason, lostKeyDeleted)
		}
	case <-time.After(scaled(etcdTestTTL)):
		t.Fatalf("DELETE after the compaction not seen within %s", etcdTestTTL)
	}
}

// TestEtcdTokenExpiry: RBAC with a token that dies under the holder (auth
// disabled and enabled again drops every token): the holder re-authenticates,
// keeps the lock and releases it cleanly to a standby.
func TestEtcdTokenExpiry(t *testing.T) {
	c := startEtcd(t, 1, "http", "--auth-token", "simple", "--auth-token-ttl", "1")
	c.etcdctl("user", "add", "root:secret")
	c.etcdctl("auth", "enable")
	pw := filepath.Join(tempDir(t), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newEtcdRunner(t, c.endpoints(), "-name", "token", "-user", "root", "-password-file", pw)
	a := r.start(nil, "")
	r.waitGateway(t, a.waitEvent(t, "acquire-success"))
	b := r.start(nil, "")
	b.waitEvent(t, "acquire-contention")
	c.etcdctl("--user", "root:secret", "auth", "disable")
	c.etcdctl("auth", "enable")
	time.Sleep(2 * time.Second) // past the token TTL too: both ways of dying
	a.signal(t, syscall.SIGTERM)
	outA := waitExit(t, a, 0)
	evs := parseLogfmt(outA)
	mustEvent(t, evs, "lock-released")
	if len(findEvents(evs, "lock-lost")) > 0 {
		t.Fatalf("lock lost over a token expiry:\n%s", outA)
	}
	authErrs := 0
	for _, e := range findEvents(evs, "backend-error") {
		if strings.Contains(e["err"], "auth token") {
			authErrs++
		}
	}
	if authErrs == 0 {
		t.Fatalf("no request met the dead token (the test did not test):\n%s", outA)
	}
	r.waitGateway(t, b.waitEvent(t, "acquire-success"))
	b.signal(t, syscall.SIGTERM)
	outB := waitExit(t, b, 0)
	if len(findEvents(parseLogfmt(strings.Join(b.seen, "\n")+outB), "takeover-delay")) > 0 {
		t.Errorf("takeover-delay: the released:true put after re-authentication did not land")
	}
	checkGatewayLog(t, r.dir)
}

// TestEtcdMutualTLS: etcd demanding client certificates from a CA made here;
// the backend with the client pair holds and reports, without it it is refused.
func TestEtcdMutualTLS(t *testing.T) {
	dir := tempDir(t)
	pki := makeTestPKI(t, dir)
	c := startEtcd(t, 1, "https", "--cert-file", pki.serverCert, "--key-file", pki.serverKey,
		"--client-cert-auth", "--trusted-ca-file", pki.ca)
	cfg := testEtcdConfig("mtls", c.endpoints()...)
	cfg.CACert, cfg.Cert, cfg.Key = pki.ca, pki.clientCert, pki.clientKey
	var deadline = time.Now().Add(scaled(etcdStartWait))
	var h *etcdHold
	for h == nil {
		hl, err := mustBackend(t, cfg).acquire(acquireRequest{Timeout: time.Second})
		if err == nil {
			h = hl.(*etcdHold)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acquire over mutual TLS: %v", err)
		}
	}
	var out bytes.Buffer
	if code := etcdStatus(cfg, &out, true); code != statusRunning {
		t.Fatalf("status = %d, want %d; %s", code, statusRunning, out.String())
	}
	var rep etcdStatusReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Fence != h.fence || rep.PID != int64(os.Getpid()) || rep.TTLLeftS <= 0 {
		t.Fatalf("status --json = %s (%v), want fence %d, our pid, a TTL left", out.String(), err, h.fence)
	}
	// A standby tells systemd it is up, then sees the release over TLS.
	standby := mustBackend(t, cfg)
	notes := make(chan string, 4)
	standby.Notify = func(s string) { notes <- s }
	won := make(chan holder, 1)
	go func() {
		h2, err := standby.acquire(acquireRequest{Timeout: scaled(10 * time.Second)})
		if err != nil {
			t.Error(err)
		}
		won <- h2
	}()
	select {
	case n := <-notes:
		if want := fmt.Sprintf("READY=1\nSTATUS=standby key=%s", h.b.key); !strings.HasPrefix(n, want) {
			t.Fatalf("standby notification = %q, want prefix %q", n, want)
		}
	case <-time.After(scaled(5 * time.Second)):
		t.Fatal("the standby sent no READY=1")
	}
	if err := h.release(nil); err != nil {
		t.Fatal(err)
	}
	var h2 holder
	select {
	case h2 = <-won:
	case <-time.After(scaled(10 * time.Second)):
		t.Fatal("standby not in after the release")
	}
	if h2 == nil {
		t.FailNow()
	}
	if got := h2.(*etcdHold).fence; got <= h.fence {
		t.Fatalf("fence after handoff = %d, want > %d", got, h.fence)
	}
	if err := h2.release(nil); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := etcdStatus(cfg, &out, false); code != statusNotRunning {
		t.Fatalf("status after release = %d, want %d; %s", code, statusNotRunning, out.String())
	}
	noCert := cfg
	noCert.Cert, noCert.Key = "", ""
	_, err := mustBackend(t, noCert).acquire(acquireRequest{Timeout: 0})
	var busy *busyError
	if err == nil || errors.As(err, &busy) {
		t.Fatalf("acquire without a client certificate = %v, want a TLS refusal", err)
	}
	t.Logf("without a client certificate: %v", err)
}

type testPKI struct{ ca, serverCert, serverKey, clientCert, clientKey string }

// makeTestPKI writes a CA, a server pair for 127.0.0.1 and a client pair.
func makeTestPKI(t testing.TB, dir string) testPKI {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gwlock test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage ...x509.ExtKeyUsage) ([]byte, []byte) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der, kd
	}
	// etcd 3.4's JSON gateway dials its own gRPC port with the server pair,
	// so under --client-cert-auth that pair must be a client certificate too.
	sc, sk := leaf(2, "etcd", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	cc, ck := leaf(3, "gwlock", x509.ExtKeyUsageClientAuth)
	return testPKI{ca: write("ca.pem", "CERTIFICATE", caDER),
		serverCert: write("server.pem", "CERTIFICATE", sc), serverKey: write("server-key.pem", "EC PRIVATE KEY", sk),
		clientCert: write("client.pem", "CERTIFICATE", cc), clientKey: write("client-key.pem", "EC PRIVATE KEY", ck)}
}

// quietFor reads b's telemetry for d and fails on any event in forbidden, or
// if b ends.
func quietFor(t testing.TB, b *background, d time.Duration, forbidden ...string) {
	t.Helper()
	end := time.After(d)
	for {
		select {
		case line, ok := <-b.lines:
			if !ok {
				t.Fatalf("helper ended; stderr:\n%s", strings.Join(b.seen, "\n"))
			}
			b.seen = append(b.seen, line)
			for _, ev := range parseLogfmt(line) {
				for _, f := range forbidden {
					if ev["event"] == f {
						t.Fatalf("%s while it must not happen: %s\nstderr:\n%s", f, line, strings.Join(b.seen, "\n"))
					}
				}
			}
		case <-end:
			return
		}
	}
}

// TestEtcdMemberLoss: in a 3-member cluster, losing a follower and then the
// leader costs no lock; losing quorum stops the gateway everywhere until
// quorum returns, and then a standby takes over.
func TestEtcdMemberLoss(t *testing.T) {
	c := startEtcd(t, 3, "http")
	r := newEtcdRunner(t, c.endpoints(), "-name", "members")
	a := r.start(nil, "")
	r.waitGateway(t, a.waitEvent(t, "acquire-success"))
	b := r.start(nil, "")
	b.waitEvent(t, "acquire-contention")
	for _, loss := range []string{"follower", "leader"} {
		l := c.leader()
		if l < 0 {
			t.Fatal("no leader")
		}
		victim := l
		if loss == "follower" {
			victim = (l + 1) % 3
		}
		c.kill(victim)
		quietFor(t, a, 2*etcdTestTTL, "lock-lost")
		quietFor(t, b, 10*time.Millisecond, "acquire-success")
		c.start(victim)
		c.waitHealthy(c.members[victim])
	}
	// Quorum loss: two of three gone.
	l := c.leader()
	c.kill((l + 1) % 3)
	c.kill((l + 2) % 3)
	lost := a.waitEvent(t, "lock-lost")
	if lost["reason"] != lostDeadline {
		t.Fatalf("lock-lost reason = %s, want %s", lost["reason"], lostDeadline)
	}
	waitExit(t, a, 1)
	quietFor(t, b, 2*etcdTestTTL, "acquire-success")
	restored := time.Now()
	c.start((l + 1) % 3)
	c.start((l + 2) % 3)
	evB := b.waitEvent(t, "acquire-success")
	r.waitGateway(t, evB)
	b.signal(t, syscall.SIGTERM)
	waitExit(t, b, 0)
	runs := checkGatewayLog(t, r.dir)
	if len(runs) != 2 {
		t.Fatalf("gateway runs = %v, want 2", runs)
	}
	if !runs[1].first.After(restored) {
		t.Fatalf("a gateway started at %s, before quorum returned at %s", runs[1].first, restored)
	}
}

// TestEtcdPredecessorFromHistory: a standby that won without having watched
// the DELETE (it fell between two watch streams) reads the predecessor's last
// value from the history, so a released handoff costs no takeover delay and
// an unreleased one still does.
func TestEtcdPredecessorFromHistory(t *testing.T) {
	c := startEtcd(t, 1, "http")
	b := mustBackend(t, testEtcdConfig("history", c.endpoints()...))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, released := range []bool{true, false} {
		var lease etcdLease
		if err := b.refreshLease(ctx, &lease); err != nil {
			t.Fatal(err)
		}
		_, seen, err := b.client.get(ctx, "/nothing")
		if err != nil {
			t.Fatal(err)
		}
		var x struct{}
		if err := b.client.call(ctx, "put", "/v3/kv/put", map[string]any{"key": []byte(b.key), "value": b.value(&lease, 0, released)}, &x); err != nil {
			t.Fatal(err)
		}
		if err := b.client.call(ctx, "delete", "/v3/kv/deleterange", map[string]any{"key": []byte(b.key)}, &x); err != nil {
			t.Fatal(err)
		}
		won, _, fence, err := b.client.createIfAbsent(ctx, b.key, b.value(&lease, 0, false), lease.id)
		if err != nil || !won {
			t.Fatalf("createIfAbsent = %v, %v", won, err)
		}
		prev := b.predecessor(ctx, seen+1, fence)
		if prev == nil {
			t.Fatalf("released=%v: no predecessor found in the history", released)
		}
		v, err := parseEtcdValue(prev.Value)
		if err != nil || v.Released != released {
			t.Fatalf("predecessor = %s (%v), want released=%v", prev.Value, err, released)
		}
		_ = b.client.revoke(ctx, lease.id)
	}
}

// TestEtcdAcquireResults: a live holder is a *busyError (exit 75) at once
// with --timeout 0 or --if-running ok, and after the timeout otherwise; a
// stop signal while waiting is errCanceled, promptly.
func TestEtcdAcquireResults(t *testing.T) {
	c := startEtcd(t, 1, "http")
	cfg := testEtcdConfig("results", c.endpoints()...)
	h := mustAcquire(t, mustBackend(t, cfg), nil)
	contender := mustBackend(t, cfg)
	for _, req := range []acquireRequest{{Timeout: 0}, {Timeout: time.Hour, StopIfAlive: true}, {Timeout: 500 * time.Millisecond}} {
		start := time.Now()
		_, err := contender.acquire(req)
		var busy *busyError
		if !errors.As(err, &busy) || exitCode(err) != exitBusy || busy.OwnerPID != int64(os.Getpid()) {
			t.Fatalf("acquire(%+v) = %v, want a busyError naming pid %d (exit %d)", req, err, os.Getpid(), exitBusy)
		}
		if took := time.Since(start); took > req.Timeout%time.Hour+scaled(time.Second) {
			t.Errorf("acquire(%+v) took %s", req, took)
		}
	}
	cancel := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := contender.acquire(acquireRequest{Timeout: time.Hour, Cancel: cancel})
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	close(cancel)
	select {
	case err := <-done:
		if !errors.Is(err, errCanceled) {
			t.Fatalf("acquire after cancel = %v, want errCanceled", err)
		}
	case <-time.After(scaled(2 * time.Second)):
		t.Fatal("acquire did not return within 2 s of the cancel")
	}
	if err := h.release(nil); err != nil {
		t.Fatal(err)
	}
	// The words acquire matches to drop a lease that died under it.
	ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	var dead etcdLease
	if err := contender.refreshLease(ctx, &dead); err != nil {
		t.Fatal(err)
	}
	if err := contender.client.revoke(ctx, dead.id); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := contender.client.createIfAbsent(ctx, contender.key, []byte("{}"), dead.id)
	var ee *etcdError
	if !errors.As(err, &ee) || !strings.Contains(ee.Message, "lease not found") {
		t.Fatalf("txn on a revoked lease = %v, want an etcdError saying lease not found", err)
	}
}

// TestEtcdEndpointRotation: with a black-holed member listed first, every
// request still ends within its own bound and moves to the next endpoint
// (backend-endpoint), so acquisition, hold and release work.
func TestEtcdEndpointRotation(t *testing.T) {
	c := startEtcd(t, 1, "http")
	dead := startProxy(t, strings.TrimPrefix(c.endpoints()[0], "http://"))
	dead.set(proxyBlackHole)
	var logBuf lockedBuffer
	log := telemetry.New(&logBuf, "text", false)
	cfg := testEtcdConfig("rotation", dead.url(), c.endpoints()[0])
	b, err := newEtcdBackend(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h := mustAcquire(t, b, log)
	if took, bound := time.Since(start), b.client.attempt+scaled(time.Second); took > bound {
		t.Errorf("acquire past a black-holed endpoint took %s, want under one attempt bound + 1 s = %s", took, bound)
	}
	var moved []string // the http:// warnings carry tls=false; the moves do not
	for _, ev := range findEvents(parseLogfmt(logBuf.String()), "backend-endpoint") {
		if _, warning := ev["tls"]; !warning {
			moved = append(moved, ev["endpoint"])
		}
	}
	if len(moved) == 0 || moved[0] != c.endpoints()[0] {
		t.Fatalf("backend-endpoint moves = %v, want first %s", moved, c.endpoints()[0])
	}
	mustEvent(t, parseLogfmt(logBuf.String()), "backend-error", "op", "endpoint", "code", "err")
	select {
	case reason := <-h.lost():
		t.Fatalf("lock lost: %s", reason)
	case <-time.After(etcdTestTTL):
	}
	if err := h.release(log); err != nil {
		t.Fatal(err)
	}
}
