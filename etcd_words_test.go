//go:build linux

package main

import (
	"bytes"
	"gwlock/internal/etcdtest"
	"gwlock/internal/telemetry"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// proxyWords is what a plain-text proxy in front of etcd says once it stops
// forwarding: not JSON, so only its own words can explain the failure.
const proxyWords = "upstream connect error or disconnect/reset before headers"

// plainHint is etcdHint's answer to a reply that was not JSON.
const plainHint = "the endpoint did not answer as etcd's JSON gateway"

// startWordsProxy forwards to member until its switch is set, then answers
// every request with a plain-text 502.
func startWordsProxy(t *testing.T, member string) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	u, err := url.Parse(member)
	if err != nil {
		t.Fatal(err)
	}
	var plain atomic.Bool
	forward := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if plain.Load() {
			http.Error(w, proxyWords, http.StatusBadGateway)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &plain
}

// TestEtcdServerWords: once the endpoint answers in plain text, every line
// that reports the failure carries the server's words, quoted, and a hint
// that fits them: the holder's keepalive-failed and backend-error lines,
// and status.
func TestEtcdServerWords(t *testing.T) {
	c := etcdtest.Start(t, 1, "http")
	srv, plain := startWordsProxy(t, c.Endpoints()[0])
	var logBuf lockedBuffer
	log := telemetry.New(&logBuf, "text", false)
	cfg := testEtcdConfig("words", srv.URL)
	b, err := newEtcdBackend(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	h := mustAcquire(t, b, log)
	plain.Store(true)
	select {
	case <-h.lost(): // at the stop deadline: every keepalive until then failed
	case <-time.After(scaled(2 * etcdTestTTL)):
		t.Fatal("the hold outlived its stop deadline with every keepalive refused")
	}
	evs := parseLogfmt(logBuf.String())
	for _, name := range []string{"keepalive-failed", "backend-error"} {
		ev := mustEvent(t, evs, name, "err", "hint")
		if !strings.Contains(ev["err"], strconv.Quote(proxyWords)) || !strings.HasPrefix(ev["hint"], plainHint) {
			t.Errorf("%s = %v, want the proxy's words quoted in err and hint %q", name, ev, plainHint)
		}
	}
	var out bytes.Buffer
	if code := etcdStatus(cfg, &out, false); code != statusUnknown ||
		!strings.Contains(out.String(), strconv.Quote(proxyWords)) || !strings.Contains(out.String(), "hint: "+plainHint) {
		t.Errorf("status = %d, %q; want %d with the proxy's words quoted and hint %q", code, out.String(), statusUnknown, plainHint)
	}
}
