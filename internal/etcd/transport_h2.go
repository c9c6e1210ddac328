//go:build go1.24

package etcd

import (
	"net/http"
	"time"
)

// configureHTTP2 has the HTTP/2 connection pinged when it has been silent
// for an attempt, and closed when the ping goes unanswered for another.
func configureHTTP2(tr *http.Transport, attempt time.Duration) {
	tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: attempt, PingTimeout: attempt}
}
