package etcd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReplyShapes: the shapes etcd's gateway really sends, 3.4 to 3.6.
func TestReplyShapes(t *testing.T) {
	decode := func(status int, body string, resp any) error {
		return decodeReply("op", "e", status, http.StatusText(status), strings.NewReader(body), resp)
	}
	// A keepalive of a dead lease: 200, wrapped, no TTL.
	var ka LeaseResp
	if err := decode(200, `{"result":{"header":{"revision":"5"},"ID":"7"}}`, &ka); err != nil || ka.TTL != 0 || ka.ID != 7 {
		t.Errorf("dead-lease keepalive = %+v, %v; want ID 7, TTL 0, no error", ka, err)
	}
	// A failed txn: "succeeded" absent.
	var txn TxnResp
	if err := decode(200, `{"header":{"revision":"9"},"responses":[{"response_range":{"kvs":[{"key":"YQ==","create_revision":"4","lease":"11"}]}}]}`, &txn); err != nil || txn.Succeeded {
		t.Errorf("failed txn = %+v, %v", txn, err)
	} else if kv := txn.Responses[0].ResponseRange.KVs[0]; kv.CreateRevision != 4 || kv.Lease != 11 || string(kv.Key) != "a" {
		t.Errorf("failed txn range = %+v", kv)
	}
	// A watch PUT has no type; a DELETE has.
	var w struct {
		Result WatchResp `json:"result"`
	}
	if err := json.Unmarshal([]byte(`{"result":{"header":{"revision":"12"},"events":[{"kv":{"key":"YQ==","create_revision":"12","mod_revision":"12"}},{"type":"DELETE","kv":{"key":"YQ==","mod_revision":"13"}}]}}`), &w); err != nil {
		t.Fatal(err)
	}
	if ev := w.Result.Events; len(ev) != 2 || ev[0].Type != "" || ev[1].Type != "DELETE" || ev[0].KV.CreateRevision != 12 {
		t.Errorf("watch events = %+v", ev)
	}
}

// TestErrorEnvelopes: every error shape is an *Error with its code, and
// the classification the client acts on.
func TestErrorEnvelopes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		body        string
		code, http  int
		retry, auth bool
	}{
		{"unary", 503, `{"error":"etcdserver: request timed out","code":14,"message":"etcdserver: request timed out"}`, 14, 503, true, false},
		{"3.4 stream", 200, `{"error":{"grpc_code":16,"http_code":401,"message":"etcdserver: invalid auth token","http_status":"Unauthorized"}}`, 16, 401, false, true},
		{"3.5 stream", 200, `{"error":{"code":14,"message":"etcdserver: no leader"}}`, 14, 200, true, false},
		{"3.6 stream auth", 200, `{"error":{"code":16,"message":"etcdserver: invalid auth token","details":[]}}`, 16, 200, false, true},
		{"unary no code", 400, `{"error":"etcdserver: key not found"}`, 0, 400, false, false},
	} {
		var x struct{}
		err := decodeReply("op", "e", tc.status, "", strings.NewReader(tc.body), &x)
		var ee *Error
		if !errors.As(err, &ee) || ee.Code != tc.code || ee.HTTPStatus != tc.http || ee.Retryable() != tc.retry || ee.AuthExpired() != tc.auth || ee.Message == "" {
			t.Errorf("%s: %#v; want code %d, http %d, retryable %v, auth expired %v, a message", tc.name, err, tc.code, tc.http, tc.retry, tc.auth)
		}
	}
}

// commonNameRefusal is what etcd's gateway answers, in plain text, to a
// client certificate with a CommonName under auth.
const commonNameRefusal = "CommonName of client sending a request against gateway will be ignored and not used as expected\n"

// TestPlainTextReply: a reply that is not JSON is shown in the server's own
// words, quoted and clipped, not as its status text.
func TestPlainTextReply(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for _, body := range []string{commonNameRefusal, long, "bad\x1b[31m\n"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, strings.TrimSuffix(body, "\n"), http.StatusBadRequest)
		}))
		c := New(Config{Endpoints: []string{srv.URL}, Attempt: time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, err := c.Get(ctx, "/k")
		cancel()
		srv.Close()
		var ee *Error
		if !errors.As(err, &ee) || !ee.PlainText || ee.HTTPStatus != 400 {
			t.Fatalf("Get against a plain-text 400 = %#v, want a plain-text *Error", err)
		}
		want := strings.TrimSpace(body)
		if len(want) > maxWords {
			want = want[:maxWords]
		}
		if line := err.Error(); !strings.Contains(line, fmt.Sprintf("%q", want)[1:len(want)]) || strings.ContainsAny(line, "\n\x1b") || len(line) > maxWords+200 {
			t.Errorf("error line = %q, want the server's words %q quoted and clipped", line, want)
		}
	}
}

// TestEndpointRotation: a member that answers 503 is left for the next
// one, which answers; the reporter hears the move and the failure.
func TestEndpointRotation(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":"etcdserver: no leader","code":14,"message":"etcdserver: no leader"}`)
	}))
	defer down.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"header":{"revision":"3"}}`)
	}))
	defer up.Close()
	var heard reporter
	c := New(Config{Endpoints: []string{down.URL, up.URL}, Attempt: time.Second, Report: &heard})
	_, rev, err := c.Get(context.Background(), "/k")
	if err != nil || rev != 3 {
		t.Fatalf("Get = %d, %v; want revision 3 from the second endpoint", rev, err)
	}
	if got := heard.String(); got != "failed range "+down.URL+" 14; moved to "+up.URL+"; " {
		t.Fatalf("reported %q", got)
	}
}

type reporter struct {
	mu sync.Mutex
	strings.Builder
}

func (r *reporter) EndpointChanged(ep string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(&r.Builder, "moved to %s; ", ep)
}

func (r *reporter) RequestFailed(op, ep string, code int, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(&r.Builder, "failed %s %s %d; ", op, ep, code)
}

// authGateway is a fake gateway with auth: its second authentication
// waits for release, and it notes the paths of requests sent without a token.
type authGateway struct {
	mu              sync.Mutex
	tokens          int
	current         string
	unauthenticated []string
	authing         chan struct{}
	release         chan struct{}
}

const invalidToken = `{"error":"etcdserver: invalid auth token","code":16,"message":"etcdserver: invalid auth token"}`

func (g *authGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got := r.Header.Get("Authorization")
	if r.URL.Path == "/v3/auth/authenticate" {
		g.authenticate(w, got)
		return
	}
	g.mu.Lock()
	ok := got == g.current
	if got == "" {
		g.unauthenticated = append(g.unauthenticated, r.URL.Path)
	}
	g.mu.Unlock()
	if !ok {
		w.WriteHeader(401)
		fmt.Fprint(w, invalidToken)
		return
	}
	fmt.Fprint(w, `{"header":{"revision":"3"}}`)
}

func (g *authGateway) authenticate(w http.ResponseWriter, got string) {
	if got != "" { // as etcd: an authenticate request with an expired token is refused
		w.WriteHeader(401)
		fmt.Fprint(w, invalidToken)
		return
	}
	g.mu.Lock()
	g.tokens++
	n := g.tokens
	g.mu.Unlock()
	if n == 2 { // the re-authentication: slow, so requests overlap it
		close(g.authing)
		<-g.release
	}
	g.mu.Lock()
	g.current = fmt.Sprintf("token-%d", n)
	fmt.Fprintf(w, `{"token":%q}`, g.current)
	g.mu.Unlock()
}

// TestReauthenticateKeepsToken: while a new token is being fetched, other
// requests still carry the old one (never none), and the authenticate
// request itself carries none (etcd refuses it with an expired one).
func TestReauthenticateKeepsToken(t *testing.T) {
	g := &authGateway{authing: make(chan struct{}), release: make(chan struct{})}
	srv := httptest.NewServer(g)
	defer srv.Close()
	c := New(Config{Endpoints: []string{srv.URL}, User: "u", Password: "p", Attempt: 5 * time.Second})
	if err := c.Authenticate(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	g.current = "expired" // the server forgot every token
	g.mu.Unlock()
	done := make(chan error, 1)
	go func() { _, _, err := c.Get(context.Background(), "/a"); done <- err }()
	<-g.authing
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, _, _ = c.Get(ctx, "/b") // meets the old token's refusal; must not go out bare
	cancel()
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("Get across a re-authentication = %v", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.unauthenticated) > 0 {
		t.Fatalf("requests without a token during re-authentication: %v", g.unauthenticated)
	}
}

// TestWatchCancel: a watch stream that has gone quiet ends as soon as its
// context is cancelled, through the response body.
func TestWatchCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"result":{"header":{"revision":"2"},"created":true}}`+"\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	c := New(Config{Endpoints: []string{srv.URL}, Attempt: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	created := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(ctx, "/k", 1, func(r WatchResp) bool {
			if r.Created {
				close(created)
			}
			return true
		})
	}()
	<-created
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Watch after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Watch did not end within 2 s of the cancel")
	}
}

// TestProxyFromEnvironment: HTTP_PROXY carries the requests, and NO_PROXY
// exempts a host, as net/http reads them. net/http reads the environment
// once per process, so each case runs in a child test process.
func TestProxyFromEnvironment(t *testing.T) {
	if os.Getenv("ETCD_TEST_PROXY_CHILD") == "1" {
		c := New(Config{Endpoints: []string{"http://etcd.test.invalid:2379"}, Attempt: time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, rev, err := c.Get(ctx, "/k"); err != nil || rev != 9 {
			fmt.Printf("child: revision %d, %v\n", rev, err)
			os.Exit(3)
		}
		return
	}
	var mu sync.Mutex
	var hosts []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.URL.Host)
		mu.Unlock()
		fmt.Fprint(w, `{"header":{"revision":"9"}}`)
	}))
	defer proxy.Close()
	for _, tc := range []struct {
		noProxy string
		via     bool
	}{{"", true}, {"etcd.test.invalid", false}} {
		mu.Lock()
		hosts = nil
		mu.Unlock()
		cmd := exec.Command(os.Args[0], "-test.run=^TestProxyFromEnvironment$", "-test.count=1")
		cmd.Env = append(os.Environ(), "ETCD_TEST_PROXY_CHILD=1", "HTTP_PROXY="+proxy.URL, "http_proxy="+proxy.URL,
			"NO_PROXY="+tc.noProxy, "no_proxy="+tc.noProxy, "REQUEST_METHOD=")
		out, err := cmd.CombinedOutput()
		mu.Lock()
		got := strings.Join(hosts, ",")
		mu.Unlock()
		if tc.via && (err != nil || got != "etcd.test.invalid:2379") {
			t.Errorf("NO_PROXY=%q: child %v, proxy saw %q; want the request through the proxy\n%s", tc.noProxy, err, got, out)
		}
		if !tc.via && (err == nil || got != "") {
			t.Errorf("NO_PROXY=%q: child %v, proxy saw %q; want a direct (failing) request\n%s", tc.noProxy, err, got, out)
		}
	}
}

// TestHTTP2OverTLS: with a TLS config of our own, the client still speaks
// HTTP/2 to a server that offers it.
func TestHTTP2OverTLS(t *testing.T) {
	protos := make(chan int, 4)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.ProtoMajor
		fmt.Fprint(w, `{"header":{"revision":"4"}}`)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c := New(Config{Endpoints: []string{srv.URL}, TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Attempt: 2 * time.Second})
	if _, _, err := c.Get(context.Background(), "/k"); err != nil {
		t.Fatal(err)
	}
	if got := <-protos; got != 2 {
		t.Fatalf("protocol = HTTP/%d, want HTTP/2", got)
	}
}

// FuzzDecodeReply: any reply decodes or fails, never panics, and the
// server's own words make a one-line error.
func FuzzDecodeReply(f *testing.F) {
	f.Add(400, []byte(commonNameRefusal))
	f.Add(200, []byte(`{"error":{"code":14,"message":"etcdserver: no leader"}}`))
	f.Add(503, []byte(`{"error":"x","code":14}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		var resp RangeResp
		err := decodeReply("op", "e", status, "", bytes.NewReader(body), &resp)
		var ee *Error
		if errors.As(err, &ee) && ee.PlainText && strings.ContainsAny(ee.Error(), "\n\r") {
			t.Fatalf("error line %q spans lines", ee.Error())
		}
	})
}

// TestReplyWithoutRevision: a 200 whose body is not a range or txn reply
// (no header revision, as from a proxy or another service on the port)
// says nothing about the key: an error, never "not held" or "won".
func TestReplyWithoutRevision(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{}`)
	}))
	defer srv.Close()
	c := New(Config{Endpoints: []string{srv.URL}, Attempt: time.Second})
	if kv, rev, err := c.Get(context.Background(), "/k"); err == nil {
		t.Errorf("Get on {} = %v, %d, nil; want an error", kv, rev)
	}
	if won, kv, rev, err := c.CreateIfAbsent(context.Background(), "/k", []byte("v"), 7); err == nil {
		t.Errorf("CreateIfAbsent on {} = %v, %v, %d, nil; want an error", won, kv, rev)
	}
}
