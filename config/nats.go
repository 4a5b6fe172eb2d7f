package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// NATSSink holds the settings of a sink of type nats (JetStream).
type NATSSink struct {
	URL            string        `split_words:"true" required:"true" secret:"userinfo" example:"nats://sluice:change-me@nats.internal:4222" desc:"NATS server, or a comma list of servers of one cluster: nats://host:4222, or tls://host:4222 for TLS; user:password@ or token@ in the URL authenticate."`
	Subject        string        `split_words:"true" default:"{topic}" example:"events.{topic}" desc:"Subject template ({topic}, {key}); the stream whose subjects capture the subject stores the message."`
	AckTimeout     time.Duration `split_words:"true" default:"10s" example:"30s" desc:"How long a published message waits for its PubAck; then it counts as not delivered and is sent again (the stream drops the copy within its duplicate window)."`
	MaxPending     int           `split_words:"true" default:"1000" example:"4000" desc:"Most published messages awaiting their PubAck at once."`
	ConnectTimeout time.Duration `split_words:"true" default:"5s" example:"10s" desc:"Bound on one connection attempt (dial, TLS, authentication) and on a blocked socket write."`
	ReconnectWait  time.Duration `split_words:"true" default:"1s" example:"2s" desc:"Pause between rounds of connection attempts while no server can be reached."`
	NoStreamGrace  time.Duration `split_words:"true" default:"5m" example:"1m0s" desc:"How long a subject no stream captures is retried (the stream may be being created) before its messages are dead-lettered; 0 = dead-letter at once."`
	CredsFile      string        `split_words:"true" example:"/etc/sluice/nats.creds" desc:"NATS credentials file (user JWT and nkey seed); exclusive with NKEY_FILE."`
	NkeyFile       string        `split_words:"true" example:"/etc/sluice/nats.nk" desc:"File holding a user nkey seed (SU...)."`
	// TLSCaFile is spelled so that split_words gives TLS_CA_FILE.
	TLSCaFile             string `split_words:"true" example:"/etc/sluice/nats-ca.pem" desc:"PEM CA bundle that verifies the servers (any TLS_* setting turns TLS on); empty = system roots."`
	TLSCertFile           string `split_words:"true" example:"/etc/sluice/nats-client.pem" desc:"PEM client certificate for mutual TLS (with TLS_KEY_FILE)."`
	TLSKeyFile            string `split_words:"true" example:"/etc/sluice/nats-client-key.pem" desc:"PEM private key of TLS_CERT_FILE."`
	TLSServerName         string `split_words:"true" example:"nats.internal" desc:"Name verified in the servers' certificates instead of the dialled host."`
	TLSInsecureSkipVerify bool   `split_words:"true" default:"false" example:"true" desc:"Skip verifying the servers' certificates (testing only)."`
}

// TLS reports whether any TLS setting is set: then the sink requires TLS.
func (n *NATSSink) TLS() bool {
	return n.TLSCaFile != "" || n.TLSCertFile != "" || n.TLSKeyFile != "" || n.TLSServerName != "" || n.TLSInsecureSkipVerify
}

func (c *checker) validateNATS(p string, n *NATSSink) {
	if c.ok(p + "_URL") {
		for _, raw := range strings.Split(n.URL, ",") {
			u, err := url.Parse(strings.TrimSpace(raw))
			switch {
			case err != nil:
				c.fail(p+"_URL", "not a URL: %v", unwrapURLError(err))
			case u.Scheme != "nats" && u.Scheme != "tls":
				c.fail(p+"_URL", "must be nats://host:port or tls://host:port, got scheme %q", u.Scheme)
			case u.Host == "":
				c.fail(p+"_URL", "has no host")
			}
		}
	}
	if c.ok(p+"_SUBJECT") && n.Subject != "" {
		if err := checkSubjectTemplate(n.Subject); err != nil {
			c.fail(p+"_SUBJECT", "%v", err)
		}
	}
	c.positive(p+"_ACK_TIMEOUT", int64(n.AckTimeout))
	c.positive(p+"_MAX_PENDING", int64(n.MaxPending))
	c.positive(p+"_CONNECT_TIMEOUT", int64(n.ConnectTimeout))
	c.positive(p+"_RECONNECT_WAIT", int64(n.ReconnectWait))
	if n.CredsFile != "" && n.NkeyFile != "" {
		c.fail(p+"_NKEY_FILE", "set together with %s_CREDS_FILE: set one of them", p)
	}
	switch {
	case n.TLSCertFile != "" && n.TLSKeyFile == "":
		c.fail(p+"_TLS_KEY_FILE", "required with %s_TLS_CERT_FILE", p)
	case n.TLSKeyFile != "" && n.TLSCertFile == "":
		c.fail(p+"_TLS_CERT_FILE", "required with %s_TLS_KEY_FILE", p)
	}
}

// checkSubjectTemplate checks a NATS subject template: placeholders are
// {topic} and {key} (the syntax of the sinks' destination templates), and
// the literal parts do not make the subject invalid whatever the
// placeholders render (empty tokens, wildcard tokens, whitespace).
func checkSubjectTemplate(s string) error {
	if err := checkDestTemplate(s); err != nil {
		return err
	}
	filled := strings.NewReplacer("{topic}", "t", "{key}", "k").Replace(s)
	for _, tok := range strings.Split(filled, ".") {
		switch {
		case tok == "":
			return fmt.Errorf("%q has an empty token (leading, trailing or double '.')", s)
		case tok == "*" || tok == ">":
			return fmt.Errorf("%q has wildcard token %q: publish subjects are literal", s, tok)
		case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return fmt.Errorf("%q holds whitespace or a control character", s)
		}
	}
	return nil
}
