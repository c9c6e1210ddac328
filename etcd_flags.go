package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"gwlock/internal/etcdlock"
	"net/url"
	"os"
	"strings"
	"time"
)

// addEtcdFlags registers the etcd backend's flags on set, with their
// environment variables, and fills c with their defaults.
func addEtcdFlags(set flagSet, c *etcdConfig) {
	c.Prefix = "/gwlock"
	c.LeaseTTL, c.LeaseMargin = 20*time.Second, time.Second
	str := set.str
	str(&c.endpointsText, "etcd-endpoints", "GWLOCK_ETCD_ENDPOINTS")
	str(&c.Prefix, "etcd-prefix", "GWLOCK_ETCD_PREFIX")
	str(&c.CACert, "etcd-cacert", "")
	str(&c.Cert, "etcd-cert", "")
	str(&c.Key, "etcd-key", "")
	str(&c.User, "etcd-user", "")
	str(&c.PasswordFile, "etcd-password-file", "")
	str(&c.LockName, "lock-name", "GWLOCK_LOCK_NAME")
	set.Var((*durationFlag)(&c.LeaseTTL), "lease-ttl", "")
	set.Var((*durationFlag)(&c.LeaseMargin), "lease-margin", "")
	c.TakeoverDelay = takeoverAuto
	set.Var((*takeoverFlag)(&c.TakeoverDelay), "takeover-delay", "")
	set.envOf["takeover-delay"] = "GWLOCK_TAKEOVER_DELAY"
}

// takeoverAuto is --takeover-delay auto: wait the vanished holder's own stop
// budget, from its value (ours if it recorded none).
const takeoverAuto = etcdlock.TakeoverAuto

// takeoverFlag is --takeover-delay: "auto" or a duration of 0 or more.
type takeoverFlag time.Duration

func (d *takeoverFlag) String() string {
	if time.Duration(*d) == takeoverAuto {
		return "auto"
	}
	return time.Duration(*d).String()
}

func (d *takeoverFlag) Set(s string) error {
	if s == "auto" {
		*d = takeoverFlag(takeoverAuto)
		return nil
	}
	v, err := parseDuration(s)
	if err != nil {
		return fmt.Errorf("%v; or auto", err)
	}
	*d = takeoverFlag(v)
	return nil
}

// etcdDefaultStopTimeout replaces run's 10 s default under --backend etcd:
// with the default 20 s lease, B = 5 s + 0.5 s + 1 s = 6.5 s and 3B fits.
const etcdDefaultStopTimeout = 5 * time.Second

// finish completes the etcd config from the common flags and validates it,
// under --backend etcd.
func (c *etcdConfig) finish(cmd string, set *flag.FlagSet, common *config) error {
	if err := checkBackendName(common.backend); err != nil || common.backend != "etcd" {
		return err
	}
	if cmd == "run" {
		given := false
		set.Visit(func(f *flag.Flag) { given = given || f.Name == "stop-timeout" })
		if !given {
			common.stopTimeout = etcdDefaultStopTimeout
		}
	}
	c.StopTimeout, c.ConfigPath, c.Port = common.stopTimeout, common.configPath, common.port
	c.requestTimeoutOverride = etcdRequestTimeoutForTests
	c.election = etcdElection
	if etcdElectionForTests >= 0 {
		c.election = etcdElectionForTests
	}
	return c.validate(cmd)
}

// etcdRequestTimeoutForTests, when set by a test process, bounds each etcd
// request more tightly than the lease arithmetic would.
var etcdRequestTimeoutForTests time.Duration

// etcdElection is how long a holder's keepalives may find no leader to
// answer them without the lock being lost: with etcd's default election
// timeout (1 s) the followers notice a dead or frozen leader within 1-2 s
// and elect another within one more timeout (measured 1.0-2.0 s on 3.4 and
// 3.6, the wait on a frozen leader's connection included). A cluster tuned
// to a longer --election-timeout needs a longer --lease-ttl.
const etcdElection = 3 * time.Second

// etcdElectionForTests, when 0 or more, replaces etcdElection in a test
// process whose cluster elects in 500 ms and whose test times other faults
// at a short TTL.
var etcdElectionForTests time.Duration = -1

// etcdAttempt is the bound on one request to one endpoint for a lease of
// ttl: a third of it, at most 2 s, so a frozen member costs one attempt and
// the next endpoint still answers within the keepalive period.
func etcdAttempt(ttl time.Duration) time.Duration {
	if a := ttl / 3; a > 0 && a < 2*time.Second {
		return a
	}
	return 2 * time.Second
}

// rideOut is how long the keepalives may go unanswered after a keepalive
// missed at ttl: from the missed send (a period after the last good one) to
// the stop deadline (the last good send + ttl - b).
func rideOut(ttl, b time.Duration) time.Duration { return ttl - ttl/3 - b }

// electionNeed is what rideOut must cover: an election, and one attempt on
// a frozen member's connection before the client moves to another.
func (c *etcdConfig) electionNeed(ttl time.Duration) time.Duration {
	return c.election + etcdAttempt(ttl)
}

// minLeaseTTL is the shortest TTL, in whole seconds, that fits both stop
// rules for budget b: 3b, and an election ridden out.
func (c *etcdConfig) minLeaseTTL(b time.Duration) time.Duration {
	ttl := time.Second
	for ttl < 3*b || rideOut(ttl, b) < c.electionNeed(ttl) {
		ttl += time.Second
	}
	return ttl
}

// etcdConfig is the etcd backend's part of the command line.
type etcdConfig struct {
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
	election               time.Duration // how long an election may leave keepalives unanswered
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
		return c.checkTTL()
	}
	return nil
}

// checkTTL refuses a TTL the stop rule cannot keep: below 3B, or too short
// for a holder to keep renewing through an etcd leader election.
func (c *etcdConfig) checkTTL() error {
	b := c.stopBudget()
	if c.LeaseTTL < 3*b {
		return usagef("--lease-ttl %s is below 3 x stop budget %s (--stop-timeout %s + %s + --lease-margin %s) (hint: raise --lease-ttl to %s or lower --stop-timeout)",
			c.LeaseTTL, b, c.StopTimeout, stopReserve, c.LeaseMargin, c.minLeaseTTL(b))
	}
	if have, need := rideOut(c.LeaseTTL, b), c.electionNeed(c.LeaseTTL); have < need {
		return usagef("--lease-ttl %s cannot ride out an etcd leader election: after a missed keepalive the holder must stop within TTL - TTL/3 - stop budget %s = %s, and an election with etcd's default timing takes up to %s plus %s on a frozen leader's connection (hint: raise --lease-ttl to %s or lower --stop-timeout)",
			c.LeaseTTL, b, have.Round(time.Millisecond), c.election, etcdAttempt(c.LeaseTTL), c.minLeaseTTL(b))
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
