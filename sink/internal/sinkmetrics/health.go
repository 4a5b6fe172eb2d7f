package sinkmetrics

import (
	"log/slog"
	"sync"

	"github.com/sluiceio/sluice/sink"
)

// Health tracks what a sink's writes learnt about its server, for the
// broker_up and auth_failing gauges and a log line at each change. Make it
// with NewHealth.
type Health struct {
	m      *Metrics
	log    *slog.Logger
	server string // "kafka brokers": what is reachable or not
	name   string // "kafka": whose authentication fails
	hint   string // appended to the authentication failure line

	mu          sync.Mutex
	up          int8 // -1 unknown, 0, 1
	authFailing bool
}

// NewHealth returns a tracker logging as server ("rabbitmq broker") and
// name ("rabbitmq"); hint, when set, ends the authentication failure line.
func NewHealth(m *Metrics, log *slog.Logger, server, name, hint string) *Health {
	return &Health{m: m, log: log, server: server, name: name, hint: hint, up: -1}
}

// Update records what the last Write learnt. reached: the server
// answered; down: it could not be reached or the connection was lost;
// auth: authentication or authorization failed. cause is the error.
func (h *Health) Update(reached, down, auth bool, cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case reached && h.up != 1:
		if h.up == 0 {
			h.log.Info(h.server + " reachable again")
		}
		h.up = 1
		h.m.SetBrokerUp(true)
	case down && !reached && h.up != 0:
		h.log.Warn(h.server+" unreachable", slog.String("reason", sink.Reason(cause)), slog.Any("error", cause))
		h.up = 0
		h.m.SetBrokerUp(false)
	}
	switch {
	case auth && !h.authFailing:
		h.log.Error(h.name+" authentication or authorization failing; retrying"+h.hint, slog.Any("error", cause))
		h.authFailing = true
		h.m.SetAuthFailing(true)
	case !auth && reached && h.authFailing:
		h.log.Info(h.name + " authentication and authorization ok again")
		h.authFailing = false
		h.m.SetAuthFailing(false)
	}
}
