package nats

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluiceio/sluice/sink/internal/dest"
)

// Defaults applied to zero-valued Options fields.
const (
	DefaultName           = "nats"
	DefaultClientName     = "sluice"
	DefaultSubject        = "{topic}"
	DefaultAckTimeout     = 10 * time.Second
	DefaultMaxPending     = 1000
	DefaultConnectTimeout = 5 * time.Second
	DefaultReconnectWait  = time.Second
	DefaultNoStreamGrace  = 5 * time.Minute
)

// MaxSubjectBytes is the longest subject the sink publishes to. The
// server closes a connection whose protocol line exceeds its
// max_control_line (default 4 KiB), so longer subjects fail per message
// (reason invalid_subject) before they are sent.
const MaxSubjectBytes = 2048

// Options configures a Writer. The zero value of every field except URL
// means the documented default.
type Options struct {
	// Name is the sink name, used as the metric label sink="<name>" and in
	// logs. Letters, digits, '_', '.' and '-' only. Default "nats".
	Name string
	// URL is the server to connect to, or a comma-separated list of
	// servers of one cluster (the client also learns the others from the
	// servers): nats://host:4222, or tls://host:4222 for TLS. Credentials
	// may be part of it: nats://user:password@host:4222 or
	// nats://token@host:4222. Required. Never logged with its credentials.
	URL string
	// Subject is the subject template (placeholders {topic} and {key}, see
	// sink/internal/dest). The server stores a message in the stream whose
	// subjects match it. Default "{topic}".
	Subject string
	// AckTimeout is how long a published message waits for its PubAck;
	// then it counts as not delivered (reason "timeout") and the forwarder
	// sends it again (the server drops the copy if the first one was
	// stored, within the stream's duplicate window). Default 10s.
	AckTimeout time.Duration
	// MaxPending is the most published messages awaiting their PubAck at
	// once; a Write with more waits for the oldest before publishing the
	// next. Default 1000.
	MaxPending int
	// ConnectTimeout bounds one connection attempt (dial, TLS handshake,
	// authentication); it also bounds how long a blocked socket write may
	// take before the connection is dropped and made again. Default 5s.
	ConnectTimeout time.Duration
	// ReconnectWait is the pause between two rounds of connection attempts
	// while the servers cannot be reached. Default 1s.
	ReconnectWait time.Duration
	// NoStreamGrace is how long a subject that no stream captures keeps
	// failing transiently (the stream may be about to be created) before
	// its messages fail permanently with reason "no_stream". It runs from
	// the first time this Writer saw the subject without a stream; a
	// delivery to the subject resets it. Default 5m; negative means no
	// grace.
	NoStreamGrace time.Duration
	// CredsFile is a NATS credentials file (user JWT and nkey seed), as
	// issued for servers in operator mode.
	CredsFile string
	// NkeyFile is a file holding a user nkey seed ("SU..."); the server
	// knows the user by its public key.
	NkeyFile string
	// TLS configures TLS to the servers; see TLSConfig. nil = plaintext,
	// unless the URL says tls:// or the server requires TLS (then the
	// system roots verify it).
	TLS *tls.Config
	// ClientName is the connection name servers show in their monitoring.
	// Default "sluice".
	ClientName string
	// Logger receives state changes (connected, disconnected,
	// authentication failing, subjects without a stream turning
	// permanent). nil = no logs.
	Logger *slog.Logger
	// Metrics receives the sink's metrics. nil = no metrics.
	Metrics *metrics.Set
	// Now is the clock for NoStreamGrace. nil = time.Now.
	Now func() time.Time
}

// config is Options with defaults applied and the subject parsed.
type config struct {
	Options
	subject dest.Template
	servers []string // URLs as given
	display []string // URLs with credentials redacted, for logs
}

func (o Options) withDefaults() (config, error) {
	c := config{Options: o}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if !validName(c.Name) {
		return c, fmt.Errorf("nats: invalid sink name %q (letters, digits, '_', '.', '-')", c.Name)
	}
	if strings.TrimSpace(c.URL) == "" {
		return c, errors.New("nats: no server URL")
	}
	for _, s := range strings.Split(c.URL, ",") {
		s = strings.TrimSpace(s)
		d, err := checkURL(s)
		if err != nil {
			return c, err
		}
		c.servers = append(c.servers, s)
		c.display = append(c.display, d)
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	t, err := dest.Parse(c.Subject)
	if err != nil {
		return c, fmt.Errorf("nats: subject: %w", err)
	}
	if s, ok := t.Static(); ok {
		if err := checkSubject(s); err != nil {
			return c, fmt.Errorf("nats: subject %q: %w", s, err)
		}
	}
	c.subject = t
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = DefaultReconnectWait
	}
	if c.NoStreamGrace == 0 {
		c.NoStreamGrace = DefaultNoStreamGrace
	}
	if c.NoStreamGrace < 0 {
		c.NoStreamGrace = 0
	}
	switch {
	case c.AckTimeout < 0, c.ConnectTimeout < 0, c.ReconnectWait < 0:
		return c, errors.New("nats: timeouts must not be negative")
	case c.MaxPending < 0:
		return c, fmt.Errorf("nats: max pending must be positive, got %d", c.MaxPending)
	case c.CredsFile != "" && c.NkeyFile != "":
		return c, errors.New("nats: a credentials file and an nkey file are exclusive")
	}
	if c.ClientName == "" {
		c.ClientName = DefaultClientName
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// checkURL checks one server URL and returns it with its credentials
// redacted. Errors never include the URL's credentials.
func checkURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return "", fmt.Errorf("nats: server URL is not a URL: %v", err)
	}
	switch u.Scheme {
	case "nats", "tls":
	default:
		return "", fmt.Errorf("nats: server URL must be nats:// or tls://, got scheme %q", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("nats: server URL has no host")
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return u.String(), nil
}

// validName reports whether s is a valid sink name for metric labels.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
