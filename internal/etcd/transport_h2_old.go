//go:build !go1.24

package etcd

import (
	"net/http"
	"time"
)

// configureHTTP2: before Go 1.24 net/http offers no ping settings; a
// black-holed HTTP/2 connection ends with TCP's keepalive.
func configureHTTP2(*http.Transport, time.Duration) {}
