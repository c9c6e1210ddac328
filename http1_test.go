package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// h1Server is a fake gateway that counts the connections it accepts.
func h1Server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &conns
}

func h1Read(t *testing.T, r *h1Reply) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	return string(b)
}

// TestH1RequestAndReuse: the request carries what etcd's gateway reads, and
// unary calls, read to the end, share one connection whatever the framing.
func TestH1RequestAndReuse(t *testing.T) {
	var host atomic.Value
	s, conns := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/json" || r.ContentLength != int64(len(b)) ||
			r.Header.Get("Authorization") != "tok.123" || r.Host != host.Load() {
			w.WriteHeader(400)
			return
		}
		if r.URL.Path == "/chunked" {
			w.Write([]byte(`{"a":`))
			w.(http.Flusher).Flush()
			w.Write([]byte(`1}`))
			return
		}
		w.Header().Set("Content-Length", "7")
		w.Write([]byte(`{"b":2}`))
	})
	host.Store(strings.TrimPrefix(s.URL, "http://"))
	c := newH1Client(nil, time.Second)
	for i, path := range []string{"/len", "/chunked", "/len", "/chunked"} {
		r, err := c.post(context.Background(), s.URL, path, "tok.123", []byte(`{"x":1}`), false)
		if err != nil {
			t.Fatal(err)
		}
		if r.StatusCode != 200 || r.Reason != "OK" {
			t.Fatalf("request %d: status %d %q", i, r.StatusCode, r.Reason)
		}
		if got := h1Read(t, r); got != `{"a":1}` && got != `{"b":2}` {
			t.Fatalf("request %d: body %q", i, got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 4 sequential requests, want 1", n)
	}
}

// TestH1StreamDelivers: each chunk of a stream that stays open is readable
// as it arrives.
func TestH1StreamDelivers(t *testing.T) {
	next := make(chan struct{})
	s, _ := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 3; i++ {
			json.NewEncoder(w).Encode(map[string]int{"n": i})
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := newH1Client(nil, time.Second).post(ctx, s.URL, "/watch", "", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	dec := json.NewDecoder(bufio.NewReader(r.Body))
	for i := 0; i < 3; i++ {
		var m map[string]int
		if err := dec.Decode(&m); err != nil || m["n"] != i {
			t.Fatalf("reply %d = %v, %v", i, m, err)
		}
		next <- struct{}{}
	}
}

// TestH1CancelUnblocks: ending the context ends a read that waits on a
// silent server, with the context's error.
func TestH1CancelUnblocks(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	s, _ := h1Server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("{"))
		w.(http.Flusher).Flush()
		<-hold
	})
	ctx, cancel := context.WithCancel(context.Background())
	r, err := newH1Client(nil, time.Second).post(ctx, s.URL, "/watch", "", nil, true)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.ReadAll(r.Body)
	r.Body.Close()
	if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Fatalf("read after cancel = %v after %s, want context.Canceled at once", err, time.Since(start))
	}
	// Before the reply too: a server that never answers.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	s2, _ := h1Server(t, func(w http.ResponseWriter, r *http.Request) { <-hold })
	_, err = newH1Client(nil, time.Second).post(ctx2, s2.URL, "/x", "", nil, false)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), `Post "`+s2.URL+`/x": `) {
		t.Fatalf("post to a silent server = %v, want a deadline error", err)
	}
}

// rawServer answers every connection with the script's reply, then closes it.
func rawServer(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				c.Write([]byte(reply))
				time.Sleep(50 * time.Millisecond)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestH1BadReplies: bounded headers, strict framing, reason-less status.
func TestH1BadReplies(t *testing.T) {
	c := newH1Client(nil, time.Second)
	post := func(reply string) (*h1Reply, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.Cleanup(cancel)
		return c.post(ctx, rawServer(t, reply), "/v3/kv/range", "", []byte("{}"), false)
	}
	big := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 1000)+"\r\n", 80) + "\r\n"
	for _, bad := range []string{big, "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n",
		"SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"} {
		if r, err := post(bad); err == nil {
			r.Body.Close()
			t.Errorf("reply %q accepted", h1Clip(bad))
		}
	}
	r, err := post("HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	var x struct{}
	if err := decodeReply("range", "e", r, &x); err == nil || !strings.Contains(err.Error(), "Service Unavailable (http 503") {
		t.Errorf("empty 503 = %v", err)
	}
	r, err = post("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short body read = %v, want unexpected EOF", err)
	}
	r.Body.Close()
	r, err = post("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n{\"a\r\n4\r\n\":1}\r\n0\r\nTrailer: t\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := h1Read(t, r); got != `{"a":1}` {
		t.Errorf("chunked body = %q", got)
	}
}

// TestH1StaleIdle: an idle connection the server closed is replaced, not
// reported as the endpoint's failure.
func TestH1StaleIdle(t *testing.T) {
	url := rawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
	c := newH1Client(nil, time.Second)
	for i := 0; i < 3; i++ {
		r, err := c.post(context.Background(), url, "/", "", nil, false)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		h1Read(t, r)
		time.Sleep(100 * time.Millisecond) // the server has closed it by now
	}
}
