package amqp1

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/sink/internal/dest"
	"github.com/sluiceio/sluice/sink/internal/tlsconf"
)

// Defaults applied to zero-valued Options fields.
const (
	DefaultName                = "amqp1"
	DefaultAddress             = "{topic}"
	DefaultWriteTimeout        = 10 * time.Second
	DefaultDialTimeout         = 5 * time.Second
	DefaultMaxInFlight         = 1000
	DefaultMaxLinks            = 64
	DefaultUnknownAddressGrace = 5 * time.Minute
	// DefaultCapability is the target capability sent when attaching a
	// link: it asks brokers that auto-create (Artemis, Qpid Broker-J) for
	// a queue, where a message is stored until consumed, rather than a
	// topic, where Artemis accepts and drops a message no subscription
	// takes.
	DefaultCapability = "queue"
)

// Reconnect backoff after a failed connection attempt: capped exponential
// with jitter, reset by a successful connection.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 5 * time.Second
)

// Options configures a Writer. The zero value of every field except URL
// means the documented default.
type Options struct {
	// Name is the sink name: the metric label sink="<name>" and the log
	// attribute. Default "amqp1".
	Name string
	// URL is the broker: amqp://[user:password@]host[:port] or amqps://...
	// (default ports 5672 and 5671). With user information the sink
	// authenticates with SASL PLAIN, without it with SASL ANONYMOUS. The
	// password is never logged nor part of an error. Required.
	URL string
	// Address is the template of a message's target address, with the
	// placeholders {topic} and {key} (sink/internal/dest). Default
	// "{topic}": the address is the message's topic.
	Address string
	// TargetCapabilities are sent in the target of every link the sink
	// attaches. nil means {"queue"} (see DefaultCapability); an empty,
	// non-nil slice sends none.
	TargetCapabilities []string
	// WriteTimeout bounds one Write: connecting, attaching, sending and
	// waiting for every disposition. Default 10s.
	WriteTimeout time.Duration
	// DialTimeout bounds connecting: TCP, TLS, SASL, open and begin.
	// Default 5s.
	DialTimeout time.Duration
	// MaxInFlight is the most messages sent and not yet settled at once
	// (the broker's link credit bounds it too). Default 1000.
	MaxInFlight int
	// MaxLinks is the most sender links kept open, one per address; the
	// least recently used one is closed beyond it. Default 64.
	MaxLinks int
	// UnknownAddressGrace is how long an address the broker says does not
	// exist (amqp:not-found) keeps failing transiently (it may be about to
	// be created) before its messages fail permanently with reason
	// "unknown_address". A delivery to the address resets it. Default 5m;
	// negative means no grace.
	UnknownAddressGrace time.Duration
	// TLS configures amqps:// connections; nil = system roots and the
	// URL's host as server name. See TLSConfig. Ignored for amqp://.
	TLS *tls.Config
	// Logger receives state changes (connected, disconnected,
	// authentication failing, links detached, addresses turning
	// permanent). nil = no logs.
	Logger *slog.Logger
	// Metrics receives the sink's metrics. nil = no metrics.
	Metrics *metrics.Set
	// Now is the clock for UnknownAddressGrace. nil = time.Now.
	Now func() time.Time
}

// String describes o without the password.
func (o Options) String() string {
	return fmt.Sprintf("name=%s url=%s address=%s write_timeout=%s", o.Name, RedactURL(o.URL), o.Address, o.WriteTimeout)
}

// GoString is String, so %#v does not print the password either.
func (o Options) GoString() string { return "amqp1.Options{" + o.String() + "}" }

// LogValue implements slog.LogValuer without the password.
func (o Options) LogValue() slog.Value { return slog.StringValue(o.String()) }

// RedactURL returns u with its password replaced, or a placeholder when it
// does not parse (the text could hold a password).
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	return p.Redacted()
}

// config is Options with defaults applied and the URL taken apart.
type config struct {
	Options
	addr     dest.Template
	hostPort string // host:port to dial
	host     string // for the open frame and TLS
	useTLS   bool
	user     string // "" = SASL ANONYMOUS
	password string
	caps     []string
}

func (o Options) config() (config, error) {
	c := config{Options: o}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.URL == "" {
		return c, errors.New("amqp1: URL is required")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return c, fmt.Errorf("amqp1: URL %s does not parse", RedactURL(c.URL))
	}
	switch u.Scheme {
	case "amqp":
	case "amqps":
		c.useTLS = true
	default:
		return c, fmt.Errorf("amqp1: URL %s: scheme must be amqp or amqps", u.Redacted())
	}
	if u.Hostname() == "" {
		return c, fmt.Errorf("amqp1: URL %s has no host", u.Redacted())
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return c, fmt.Errorf("amqp1: URL %s: AMQP 1.0 URLs have no path or query; the target address is the Address setting", u.Redacted())
	}
	c.host = u.Hostname()
	port := u.Port()
	if port == "" {
		port = "5672"
		if c.useTLS {
			port = "5671"
		}
	}
	c.hostPort = net.JoinHostPort(c.host, port)
	if u.User != nil {
		c.user = u.User.Username()
		c.password, _ = u.User.Password()
		if c.user == "" {
			return c, fmt.Errorf("amqp1: URL %s: empty user name", u.Redacted())
		}
	}

	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.addr, err = dest.Parse(c.Address); err != nil {
		return c, fmt.Errorf("amqp1: address: %w", err)
	}
	switch {
	case c.TargetCapabilities == nil:
		c.caps = []string{DefaultCapability}
	default:
		for _, cp := range c.TargetCapabilities {
			if strings.TrimSpace(cp) == "" {
				return c, errors.New("amqp1: empty target capability")
			}
		}
		c.caps = c.TargetCapabilities
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"write timeout", &c.WriteTimeout, DefaultWriteTimeout},
		{"dial timeout", &c.DialTimeout, DefaultDialTimeout},
	} {
		switch {
		case *d.v < 0:
			return c, fmt.Errorf("amqp1: negative %s %v", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case c.UnknownAddressGrace == 0:
		c.UnknownAddressGrace = DefaultUnknownAddressGrace
	case c.UnknownAddressGrace < 0:
		c.UnknownAddressGrace = 0
	}
	switch {
	case c.MaxInFlight < 0:
		return c, fmt.Errorf("amqp1: negative max in flight %d", c.MaxInFlight)
	case c.MaxInFlight == 0:
		c.MaxInFlight = DefaultMaxInFlight
	}
	switch {
	case c.MaxLinks < 0:
		return c, fmt.Errorf("amqp1: negative max links %d", c.MaxLinks)
	case c.MaxLinks == 0:
		c.MaxLinks = DefaultMaxLinks
	}
	if c.TLS != nil {
		c.TLS = c.TLS.Clone()
	} else if c.useTLS {
		c.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if c.useTLS && c.TLS.ServerName == "" && !c.TLS.InsecureSkipVerify {
		c.TLS.ServerName = c.host
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// TLSConfig returns the TLS settings for amqps:// URLs: caFile (PEM) holds
// the CAs that verify the broker ("" = the system roots), serverName the
// name checked in its certificate ("" = the URL's host).
func TLSConfig(caFile, serverName string) (*tls.Config, error) {
	return tlsconf.Client("amqp1", caFile, "", "", serverName, false)
}
