package main

// The etcd backend as the supervisor sees it: internal/etcdlock holds one key
// across every host that shares an etcd cluster, and this file adapts it to
// the backend seam (backend.go), turning its events into telemetry lines and
// its answers into the results and exit codes of the file lock.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"gwlock/internal/etcd"
	"gwlock/internal/etcdlock"
	"gwlock/internal/telemetry"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// etcdBackend is the key named by --lock-name or --config on the cluster
// named by --etcd-endpoints.
type etcdBackend struct {
	cfg    etcdConfig
	key    string
	client *etcd.Client
	locker *etcdlock.Locker
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
	locker := etcdlock.New(etcdlock.Options{Client: c, Key: key, TTL: cfg.LeaseTTL,
		StopBudget: cfg.stopBudget(), TakeoverDelay: cfg.TakeoverDelay, WatchLifetime: cfg.watchLifetimeOverride,
		Owner: func(gatewayPID int) any {
			p := newPayload(lockOptions{ConfigPath: cfg.ConfigPath, Port: cfg.Port})
			p.ChildPID = gatewayPID
			return &p
		}})
	return &etcdBackend{cfg: cfg, key: key, client: c, locker: locker}, nil
}

// newEtcdClient is the client the etcd flags describe.
func newEtcdClient(cfg etcdConfig, log *telemetry.Logger) (*etcd.Client, error) {
	tlsConf, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	password := ""
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("read --etcd-password-file %s: %w", cfg.PasswordFile, err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	attempt := etcdAttempt(cfg.LeaseTTL)
	if cfg.requestTimeoutOverride > 0 {
		attempt = cfg.requestTimeoutOverride
	}
	for _, e := range cfg.Endpoints {
		if strings.HasPrefix(e, "http://") {
			log.Warn("backend-endpoint", "endpoint", e, "tls", false, "hint", "use https:// outside a lab: the lock value and token cross the network in clear")
		}
	}
	return etcd.New(etcd.Config{Endpoints: cfg.Endpoints, TLS: tlsConf, User: cfg.User, Password: password,
		Attempt: attempt, Report: clientLog{log}}), nil
}

// tlsConfig reads --etcd-cacert, --etcd-cert and --etcd-key.
func (c *etcdConfig) tlsConfig() (*tls.Config, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CACert != "" {
		pem, err := os.ReadFile(c.CACert)
		if err != nil {
			return nil, fmt.Errorf("read --etcd-cacert %s: %w", c.CACert, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read --etcd-cacert %s: no PEM certificate in it", c.CACert)
		}
		tlsConf.RootCAs = pool
	}
	if c.Cert != "" {
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("load --etcd-cert %s / --etcd-key %s: %w", c.Cert, c.Key, err)
		}
		tlsConf.Certificates = []tls.Certificate{pair}
	}
	return tlsConf, nil
}

// clientLog is the client's own events as telemetry lines.
type clientLog struct{ log *telemetry.Logger }

func (l clientLog) EndpointChanged(ep string) { l.log.Info("backend-endpoint", "endpoint", ep) }

func (l clientLog) RequestFailed(op, ep string, code int, err error) {
	l.log.Warn("backend-error", "op", op, "endpoint", ep, "code", code, "err", err.Error(), "hint", etcdHint(err))
}

// lockLog is the lock's events as telemetry lines, for one acquire request
// and the hold it makes.
type lockLog struct {
	b   *etcdBackend
	req acquireRequest
}

func (o lockLog) Contention(v etcdlock.Holder) {
	o.req.Log.Info("acquire-contention", "key", o.b.key, "holder_host", v.Hostname, "holder_pid", v.PID, "holder_fence", v.Fence)
	if o.b.Notify != nil && !o.req.StopIfAlive && o.req.Timeout > 0 {
		o.b.Notify(fmt.Sprintf("READY=1\nSTATUS=standby key=%s holder=%s pid=%d fence=%d", o.b.key, v.Hostname, v.PID, v.Fence))
	}
}

func (o lockLog) Acquired(h *etcdlock.Hold, waited time.Duration) {
	o.req.Log.Info("acquire-success", "key", o.b.key, "fence", h.Fence(), "lease", strconv.FormatInt(h.Lease().ID, 16),
		"ttl_s", int64(h.Lease().TTL/time.Second), "waited_ms", ms(waited))
}

func (o lockLog) TakeoverDelay(delay time.Duration, prev etcdlock.Holder, reason string) {
	say := o.req.Log.Warn
	if delay <= 0 {
		say = o.req.Log.Info // the predecessor's lease ended: nothing to wait for
	}
	say("takeover-delay", "key", o.b.key, "delay_ms", ms(delay), "reason", reason, "holder_pid", prev.PID, "holder_host", prev.Hostname)
}

func (o lockLog) KeepaliveFailed(h *etcdlock.Hold, stopIn time.Duration, err error) {
	o.req.Log.Warn("keepalive-failed", "key", o.b.key, "stop_in_ms", ms(stopIn), "err", err.Error(), "hint", etcdHint(err))
}

func (o lockLog) Lost(h *etcdlock.Hold, reason string) {
	o.req.Log.Error("lock-lost", "key", o.b.key, "reason", reason, "fence", h.Fence(),
		"held_ms", ms(time.Since(h.Acquired())))
}

// acquire implements lockBackend.
func (b *etcdBackend) acquire(req acquireRequest) (holder, error) {
	req.Log.Info("acquire-start", "backend", "etcd", "key", b.key, "endpoints", strings.Join(b.cfg.Endpoints, ","), "ttl_s", int64(b.cfg.LeaseTTL/time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if req.Cancel != nil {
		go func() {
			select {
			case <-req.Cancel:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	h, err := b.locker.Acquire(ctx, etcdlock.Request{Timeout: req.Timeout,
		GiveUpOnHolder: req.StopIfAlive, Observer: lockLog{b: b, req: req}})
	var busy *etcdlock.BusyError
	var unreachable *etcdlock.UnreachableError
	switch {
	case err == nil:
		return &etcdHold{Hold: h, key: b.key, log: req.Log}, nil
	case errors.Is(err, etcdlock.ErrCanceled):
		return nil, errCanceled
	case errors.As(err, &busy):
		v := busy.Holder
		if !req.StopIfAlive {
			req.Log.Warn("acquire-timeout", "key", b.key, "holder_host", v.Hostname, "holder_pid", v.PID, "holder_fence", v.Fence, "waited_ms", ms(busy.Waited))
		}
		return nil, &busyError{Path: b.key, OwnerPID: v.PID, Status: ownerAlive, GatewayPID: v.GatewayPID, Waited: busy.Waited}
	case errors.As(err, &unreachable):
		return nil, b.acquireFailed(unreachable.Err)
	}
	return nil, err
}

func (b *etcdBackend) acquireFailed(err error) error {
	return fmt.Errorf("etcd lock %s: %w (hint: %s)", b.key, err, etcdHint(err))
}

// etcdHint is what to check, from what the cluster or the network said.
func etcdHint(err error) string {
	var ee *etcd.Error
	plain := errors.As(err, &ee) && ee.PlainText
	switch msg := err.Error(); {
	case plain && strings.Contains(ee.Message, "CommonName"):
		// etcd 3.5 and later refuse, on the JSON gateway, a client
		// certificate that has a CommonName once auth is on (under
		// --client-cert-auth the CommonName would otherwise name the user).
		return "use a client certificate without a CommonName (its subject empty, the name in subjectAltName), or turn off --client-cert-auth and keep --etcd-user"
	case plain:
		return "the endpoint did not answer as etcd's JSON gateway: check that --etcd-endpoints names etcd's client URLs"
	case strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:") || strings.Contains(msg, "certificate"):
		return "check --etcd-cacert, --etcd-cert and --etcd-key against the server's CA and --client-cert-auth"
	case errors.As(err, &ee) && (ee.AuthExpired() || strings.Contains(ee.Message, "authentication failed") || strings.Contains(ee.Message, "permission denied")):
		return "check --etcd-user, --etcd-password-file and the user's role on the key prefix"
	}
	return "check --etcd-endpoints and that a quorum of members is up"
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

// etcdHold is the key held, as the supervisor sees it.
type etcdHold struct {
	*etcdlock.Hold
	key string
	log *telemetry.Logger
}

func (h *etcdHold) lost() <-chan string { return h.Hold.Lost() }

// activeStatus is the systemd STATUS= text once the gateway is ready.
func (h *etcdHold) activeStatus() string {
	return "STATUS=active key=" + h.key + " fence=" + strconv.FormatInt(h.Fence(), 10)
}

func (h *etcdHold) gatewayEnv() map[string]string {
	return map[string]string{"GWLOCK_FENCE": strconv.FormatInt(h.Fence(), 10), "GWLOCK_BACKEND": "etcd", "GWLOCK_LOCK_KEY": h.key}
}

func (h *etcdHold) where() string { return h.key }

// setGateway returns at once: the hold writes the pid on its own goroutine,
// so the supervisor's loop never waits on the network.
func (h *etcdHold) setGateway(pid int) { h.Hold.SetGateway(pid) }

// setRestarting: the etcd value says who holds the key; a restart keeps the
// lease and the key, so there is nothing to record there.
func (h *etcdHold) setRestarting(time.Time, int) {}

// runtimeSocket: the etcd lock has no directory of its own; under run it is
// always stacked on the local file lock, whose directory holds the socket.
func (h *etcdHold) runtimeSocket(string, int) (string, string, func(), error) {
	return "", "", nil, errors.New("the etcd lock has no local directory for a socket")
}

// release is called once the gateway is gone (also after a loss).
func (h *etcdHold) release(log *telemetry.Logger) error {
	err := h.Hold.Release()
	if errors.Is(err, etcdlock.ErrNotHeld) {
		return nil
	}
	if err != nil {
		return err
	}
	log.Info("lock-released", "key", h.key, "fence", h.Fence(), "held_ms", ms(time.Since(h.Acquired())))
	return nil
}

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
	Hint       string `json:"hint,omitempty"` // what to check, from what the server said
}

// etcdStatus prints who holds the key (LSB codes: 0 held, 3 not held, 4 unknown).
func etcdStatus(cfg etcdConfig, stdout io.Writer, asJSON bool) int {
	rep, code := etcdStatusOf(cfg)
	if asJSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(stdout, string(b))
		return code
	}
	switch code {
	case statusRunning:
		printLine(stdout, "%s: held by pid %d on %s, fence %d, gateway pid %d, lease %ds left", rep.Key, rep.PID, rep.Host, rep.Fence, rep.GatewayPID, rep.TTLLeftS)
	case statusNotRunning:
		printLine(stdout, "%s: not held", rep.Key)
	default:
		if rep.Hint != "" {
			printLine(stdout, "%s: unknown: %s (hint: %s)", rep.Key, rep.Error, rep.Hint)
			break
		}
		printLine(stdout, "%s: unknown: %s", rep.Key, rep.Error)
	}
	return code
}

func etcdStatusOf(cfg etcdConfig) (etcdStatusReport, int) {
	key, err := cfg.key()
	if err != nil {
		return etcdStatusReport{Error: err.Error()}, statusUnknown
	}
	rep := etcdStatusReport{Key: key}
	c, err := newEtcdClient(cfg, nil)
	if err != nil {
		rep.Error = err.Error()
		return rep, statusUnknown
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*c.Attempt()*time.Duration(len(cfg.Endpoints)))
	defer cancel()
	st, err := etcdlock.Inspect(ctx, c, key)
	switch {
	case err != nil:
		rep.Error, rep.Hint = err.Error(), etcdHint(err)
		return rep, statusUnknown
	case !st.Held:
		return rep, statusNotRunning
	}
	v := st.Holder
	rep.Held, rep.Fence, rep.TTLLeftS = true, v.Fence, st.TTLLeft
	rep.Host, rep.PID, rep.GatewayPID, rep.Released = v.Hostname, v.PID, v.GatewayPID, v.Released
	return rep, statusRunning
}
