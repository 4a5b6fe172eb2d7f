package config

import (
	"net/url"
	"slices"
	"time"
)

// AMQP1Sink holds the settings of a sink of type amqp1 (AMQP 1.0: ActiveMQ
// Artemis, ActiveMQ, Qpid, Azure Service Bus, RabbitMQ's AMQP 1.0).
type AMQP1Sink struct {
	URL                 string        `split_words:"true" required:"true" secret:"userinfo" example:"amqps://broker.internal:5671" desc:"Broker: amqp://[user:password@]host[:port] or amqps://... (ports 5672 and 5671 by default). With user and password the sink authenticates with SASL PLAIN, without them with SASL ANONYMOUS. The password is never printed."`
	Address             string        `split_words:"true" default:"{topic}" example:"orders.{topic}" desc:"Target address of each message, a template with {topic} and {key}: with the default every topic goes to the address of that name."`
	TargetCapabilities  List          `split_words:"true" default:"queue" example:"topic" desc:"Capabilities sent with the target of each link; queue makes brokers that auto-create addresses (Artemis) create a queue, which stores messages, where Artemis otherwise accepts and drops them; none sends none."`
	WriteTimeout        time.Duration `split_words:"true" default:"10s" example:"30s" desc:"Bound on one batch: connecting, attaching links, sending and waiting for every outcome."`
	DialTimeout         time.Duration `split_words:"true" default:"5s" example:"10s" desc:"Bound on connecting to the broker (TCP, TLS, SASL, open, begin)."`
	MaxInFlight         int           `split_words:"true" default:"1000" example:"200" desc:"Most messages sent and not yet settled at once (the broker's link credit bounds it too)."`
	UnknownAddressGrace time.Duration `split_words:"true" default:"5m" example:"1m0s" desc:"How long messages to an address the broker says does not exist are retried (it may be being created) before they are dead-lettered; 0 = at once."`
	// TLSCaFile is spelled so that split_words gives TLS_CA_FILE.
	TLSCaFile     string `split_words:"true" example:"/etc/sluice/amqp-ca.pem" desc:"PEM CA bundle that verifies the broker of an amqps:// URL; empty = system roots."`
	TLSServerName string `split_words:"true" example:"broker.internal" desc:"Name verified in the broker's certificate instead of the URL's host (amqps:// only)."`
}

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
	if a.Address == "" {
		c.fail(p+"_ADDRESS", "must not be empty")
	} else if err := checkDestTemplate(a.Address); err != nil {
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
