package config

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// RabbitMQSink holds the settings of a sink of type rabbitmq (AMQP 0-9-1,
// publisher confirms).
type RabbitMQSink struct {
	URL             string        `split_words:"true" required:"true" secret:"userinfo" example:"amqps://sluice:change-me@rabbitmq.internal:5671/prod" desc:"Broker URL: amqp://user:password@host:5672/vhost, or amqps://… for TLS (port 5671 by default). Percent-encode reserved characters in the user and password; the vhost is the path (%2F for /, the default)."`
	Exchange        string        `split_words:"true" example:"events" desc:"Exchange messages are published to; a template with {topic} and {key}. Empty = the default exchange, which delivers to the queue named by the routing key. sluice never declares exchanges, queues or bindings."`
	RoutingKey      string        `split_words:"true" default:"{topic}" example:"{topic}.{key}" desc:"Routing key; a template with {topic} and {key}. With the default exchange it names the queue."`
	WriteTimeout    time.Duration `split_words:"true" default:"10s" example:"30s" desc:"Bound on one batch: connecting if needed, publishing, and waiting for every publisher confirm."`
	DialTimeout     time.Duration `split_words:"true" default:"5s" example:"10s" desc:"Bound on connecting (TCP, TLS, AMQP handshake). Keep it above 3s: RabbitMQ answers a refused login only after 3s."`
	Heartbeat       time.Duration `split_words:"true" default:"10s" example:"30s" desc:"AMQP heartbeat interval asked of the broker; a connection silent for two intervals is taken for lost."`
	ReconnectMax    time.Duration `split_words:"true" default:"5s" example:"30s" desc:"Cap of the backoff between connection attempts (from 100ms, doubling, with jitter); meanwhile batches fail at once with the last connection error."`
	UnroutableGrace time.Duration `split_words:"true" default:"5m" example:"1m0s" desc:"How long messages the broker cannot route (no queue bound, no such exchange: it may be being created) are retried before they are dead-lettered; 0 = dead-letter at once."`
	// TLSCaFile is spelled so that split_words gives TLS_CA_FILE.
	TLSCaFile     string `split_words:"true" example:"/etc/sluice/rabbitmq-ca.pem" desc:"PEM CA bundle that verifies the broker (amqps:// URLs); empty = system roots."`
	TLSCertFile   string `split_words:"true" example:"/etc/sluice/rabbitmq-client.pem" desc:"PEM client certificate for mutual TLS (with TLS_KEY_FILE; amqps:// URLs)."`
	TLSKeyFile    string `split_words:"true" example:"/etc/sluice/rabbitmq-client-key.pem" desc:"PEM private key of TLS_CERT_FILE."`
	TLSServerName string `split_words:"true" example:"rabbitmq.internal" desc:"Name verified in the broker's certificate instead of the URL's host."`
}

func (c *checker) validateRabbitMQ(p string, r *RabbitMQSink) {
	amqps := false
	if c.ok(p + "_URL") {
		u, err := url.Parse(r.URL)
		switch {
		case err != nil:
			c.fail(p+"_URL", "not a URL: %v", unwrapURLError(err))
		case u.Scheme != "amqp" && u.Scheme != "amqps":
			c.fail(p+"_URL", "must be an amqp:// or amqps:// URL, got scheme %q", u.Scheme)
		case u.Hostname() == "":
			c.fail(p+"_URL", "has no host")
		default:
			amqps = u.Scheme == "amqps"
			if port := u.Port(); port != "" {
				if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
					c.fail(p+"_URL", "port must be a number from 1 to 65535, got %q", port)
				}
			}
			if len(strings.TrimPrefix(u.Path, "/")) > 0 && strings.Contains(strings.TrimPrefix(u.Path, "/"), "/") {
				c.fail(p+"_URL", "the path is the vhost and holds one segment (%%2F for /), got %q", u.Path)
			}
		}
	}
	if err := checkDestTemplate(r.Exchange); err != nil {
		c.fail(p+"_EXCHANGE", "%v", err)
	}
	if err := checkDestTemplate(r.RoutingKey); err != nil {
		c.fail(p+"_ROUTING_KEY", "%v", err)
	}
	c.positive(p+"_WRITE_TIMEOUT", int64(r.WriteTimeout))
	c.positive(p+"_DIAL_TIMEOUT", int64(r.DialTimeout))
	c.positive(p+"_HEARTBEAT", int64(r.Heartbeat))
	c.positive(p+"_RECONNECT_MAX", int64(r.ReconnectMax))
	if c.ok(p+"_URL") && !amqps {
		for _, t := range []struct {
			name string
			set  bool
		}{
			{"_TLS_CA_FILE", r.TLSCaFile != ""},
			{"_TLS_CERT_FILE", r.TLSCertFile != ""},
			{"_TLS_KEY_FILE", r.TLSKeyFile != ""},
			{"_TLS_SERVER_NAME", r.TLSServerName != ""},
		} {
			if t.set {
				c.fail(p+t.name, "set, but %s_URL is not an amqps:// URL", p)
			}
		}
	}
	switch {
	case r.TLSCertFile != "" && r.TLSKeyFile == "":
		c.fail(p+"_TLS_KEY_FILE", "required with %s_TLS_CERT_FILE", p)
	case r.TLSKeyFile != "" && r.TLSCertFile == "":
		c.fail(p+"_TLS_CERT_FILE", "required with %s_TLS_KEY_FILE", p)
	}
}
