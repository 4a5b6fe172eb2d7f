package rabbitmq

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/VictoriaMetrics/metrics"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sluiceio/sluice/sink/internal/dest"
)

// Defaults applied to zero-valued Options fields.
const (
	DefaultName            = "rabbitmq"
	DefaultRoutingKey      = "{topic}"
	DefaultWriteTimeout    = 10 * time.Second
	DefaultDialTimeout     = 5 * time.Second
	DefaultHeartbeat       = 10 * time.Second
	DefaultReconnectMin    = 100 * time.Millisecond
	DefaultReconnectMax    = 5 * time.Second
	DefaultUnroutableGrace = 5 * time.Minute
)

// maxShortstr is the longest AMQP 0-9-1 short string: exchange names,
// routing keys, header names and the message-id property.
const maxShortstr = 255

// Options configures a Writer. The zero value of every field except URL
// means the documented default.
type Options struct {
	// Name is the sink name, used as the metric label sink="<name>" and in
	// logs. Default "rabbitmq".
	Name string
	// URL is the broker: amqp://user:password@host:5672/vhost or amqps://
	// for TLS (default ports 5672 and 5671; the vhost is the path, %2F for
	// "/", default "/"; user and password default to guest). Required. The
	// password is never logged nor part of an error.
	URL string
	// Exchange is the exchange every message is published to, a template
	// with {topic} and {key} (see sink/internal/dest). Default "": the
	// default exchange, which routes a message to the queue named by its
	// routing key.
	Exchange string
	// RoutingKey is the routing key, a template with {topic} and {key}.
	// Default "{topic}": with the default exchange, the queue named like
	// the topic.
	RoutingKey string
	// WriteTimeout bounds one Write: connecting when needed, publishing and
	// waiting for every publisher confirm. Default 10s.
	WriteTimeout time.Duration
	// DialTimeout bounds connecting: TCP, TLS and the AMQP handshake.
	// Default 5s.
	DialTimeout time.Duration
	// Heartbeat is the AMQP heartbeat interval asked of the broker; a peer
	// silent for two intervals is taken for dead. Default 10s; the URL's
	// heartbeat parameter wins.
	Heartbeat time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between connection
	// attempts (exponential with jitter, reset by a successful connection).
	// While the backoff runs, Write fails at once with the last connection
	// error. Defaults 100ms and 5s.
	ReconnectMin, ReconnectMax time.Duration
	// UnroutableGrace is how long a destination keeps failing transiently
	// while the broker cannot route to it — the message came back with
	// basic.return NO_ROUTE (no queue bound; with the default exchange: no
	// queue of that name), or the exchange does not exist — before its
	// messages fail permanently (dead-lettered) with reason "unroutable" or
	// "no_exchange". It runs from the first time this Writer saw the
	// destination unroutable; a delivery to it resets it. Default 5m;
	// negative means no grace.
	UnroutableGrace time.Duration
	// TLS configures amqps:// connections (see TLSConfig); nil = the
	// system roots and the URL's host as server name. Ignored for amqp://.
	TLS *tls.Config
	// Logger receives state changes (broker reachable or not, blocked,
	// authentication failing, destinations turning permanent). nil = no
	// logs.
	Logger *slog.Logger
	// Metrics receives the sink's metrics. nil = no metrics.
	Metrics *metrics.Set
	// Now is the clock for UnroutableGrace. nil = time.Now.
	Now func() time.Time
}

// config is Options with defaults applied and templates parsed.
type config struct {
	Options
	uri        amqp.URI
	exchange   dest.Template
	routingKey dest.Template
	redacted   string // URL without the password, for logs
}

func (o Options) withDefaults() (config, error) {
	c := config{Options: o}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.URL == "" {
		return c, errors.New("rabbitmq: no URL")
	}
	uri, err := amqp.ParseURI(c.URL)
	if err != nil {
		// The parse error may quote the URL: do not repeat it.
		return c, errors.New("rabbitmq: URL is not an amqp:// or amqps:// URL (user:password@host:port/vhost)")
	}
	c.uri = uri
	c.redacted = redactURL(c.URL)
	if c.RoutingKey == "" {
		c.RoutingKey = DefaultRoutingKey
	}
	if c.exchange, err = dest.Parse(c.Exchange); err != nil {
		return c, fmt.Errorf("rabbitmq: exchange: %w", err)
	}
	if c.routingKey, err = dest.Parse(c.RoutingKey); err != nil {
		return c, fmt.Errorf("rabbitmq: routing key: %w", err)
	}
	if s, ok := c.exchange.Static(); ok && len(s) > maxShortstr {
		return c, fmt.Errorf("rabbitmq: exchange %q is longer than %d bytes", s, maxShortstr)
	}
	if s, ok := c.routingKey.Static(); ok && len(s) > maxShortstr {
		return c, fmt.Errorf("rabbitmq: routing key %q is longer than %d bytes", s, maxShortstr)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"write timeout", &c.WriteTimeout, DefaultWriteTimeout},
		{"dial timeout", &c.DialTimeout, DefaultDialTimeout},
		{"heartbeat", &c.Heartbeat, DefaultHeartbeat},
		{"reconnect min", &c.ReconnectMin, DefaultReconnectMin},
		{"reconnect max", &c.ReconnectMax, DefaultReconnectMax},
	} {
		switch {
		case *d.v < 0:
			return c, fmt.Errorf("rabbitmq: negative %s %v", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if c.ReconnectMax < c.ReconnectMin {
		return c, fmt.Errorf("rabbitmq: reconnect max %v is below reconnect min %v", c.ReconnectMax, c.ReconnectMin)
	}
	switch {
	case c.UnroutableGrace == 0:
		c.UnroutableGrace = DefaultUnroutableGrace
	case c.UnroutableGrace < 0:
		c.UnroutableGrace = 0
	}
	if c.TLS != nil {
		c.TLS = c.TLS.Clone()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// redactURL returns u with its password replaced, for logs; "" when u
// does not parse.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Redacted()
}
