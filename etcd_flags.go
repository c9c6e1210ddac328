package main

import (
	"flag"
	"fmt"
	"time"
)

// addEtcdFlags registers the etcd backend's flags on set, with their
// environment variables, and fills c with their defaults.
func addEtcdFlags(set flagSet, c *etcdConfig) {
	c.Backend, c.Prefix = "file", "/gwlock"
	c.LeaseTTL, c.LeaseMargin = 20*time.Second, time.Second
	str := set.str
	str(&c.Backend, "backend", "GWLOCK_BACKEND")
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
const takeoverAuto time.Duration = -1

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

// finish completes the etcd config from the common flags and validates it.
func (c *etcdConfig) finish(cmd string, set *flag.FlagSet, common *config) error {
	if c.Backend == "etcd" && cmd == "run" {
		given := false
		set.Visit(func(f *flag.Flag) { given = given || f.Name == "stop-timeout" })
		if !given {
			common.stopTimeout = etcdDefaultStopTimeout
		}
	}
	c.StopTimeout, c.ConfigPath, c.Port = common.stopTimeout, common.configPath, common.port
	c.requestTimeoutOverride = etcdRequestTimeoutForTests
	return c.validate(cmd)
}

// etcdRequestTimeoutForTests, when set by a test process, bounds each etcd
// request more tightly than the lease arithmetic would.
var etcdRequestTimeoutForTests time.Duration
