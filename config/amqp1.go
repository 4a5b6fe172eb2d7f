package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// validateAMQP1 checks the settings of an amqp1 sink. Messages never show
// the password of the URL.
func (c *checker) validateAMQP1(p string, a *AMQP1Sink) {
	tls := false
	if c.ok(p + "_URL") {
		u, err := url.Parse(a.URL)
		switch {
		case err != nil:
			c.fail(p+"_URL", "not a URL: %v", unwrapURLError(err))
		case u.Scheme != "amqp" && u.Scheme != "amqps":
			c.fail(p+"_URL", "must be an amqp:// or amqps:// URL, got scheme %q", u.Scheme)
		case u.Hostname() == "":
			c.fail(p+"_URL", "has no host")
		case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
			c.fail(p+"_URL", "must not have a path or query (AMQP 1.0 URLs have none; the target is %s_ADDRESS)", p)
		case u.User != nil && u.User.Username() == "":
			c.fail(p+"_URL", "has a password but no user name")
		default:
			tls = u.Scheme == "amqps"
			if port := u.Port(); port != "" {
				if err := checkHostPort("x:"+port, true); err != nil {
					c.fail(p+"_URL", "%v", err)
				}
			}
		}
	}
	if err := checkTemplate(a.Address); err != nil {
		c.fail(p+"_ADDRESS", "%v", err)
	}
	if c.ok(p+"_TARGET_CAPABILITIES") && slices.Contains(a.TargetCapabilities, "none") && len(a.TargetCapabilities) > 1 {
		c.fail(p+"_TARGET_CAPABILITIES", "none cannot be combined with other capabilities")
	}
	c.positive(p+"_WRITE_TIMEOUT", int64(a.WriteTimeout))
	c.positive(p+"_DIAL_TIMEOUT", int64(a.DialTimeout))
	c.positive(p+"_MAX_IN_FLIGHT", int64(a.MaxInFlight))
	if c.ok(p+"_URL") && !tls {
		for _, t := range []struct {
			name string
			set  bool
		}{{"_TLS_CA_FILE", a.TLSCaFile != ""}, {"_TLS_SERVER_NAME", a.TLSServerName != ""}} {
			if t.set {
				c.fail(p+t.name, "set, but %s_URL is not an amqps:// URL", p)
			}
		}
	}
}

// checkTemplate checks a destination template: literal text with the
// placeholders {topic} and {key}, nothing else in braces. It is the syntax
// of sink/internal/dest, checked here so that a bad template stops
// start-up with the variable's name.
func checkTemplate(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	rest := s
	for {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			return nil
		}
		rest = rest[i:]
		switch {
		case strings.HasPrefix(rest, "{topic}"):
			rest = rest[len("{topic}"):]
		case strings.HasPrefix(rest, "{key}"):
			rest = rest[len("{key}"):]
		default:
			if end := strings.IndexByte(rest, '}'); rest[0] == '{' && end > 0 {
				return fmt.Errorf("unknown placeholder %s in %q (use {topic} or {key})", rest[:end+1], s)
			}
			return fmt.Errorf("unmatched %q in %q (placeholders are {topic} and {key})", rest[:1], s)
		}
	}
}
