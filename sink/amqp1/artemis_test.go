package amqp1

import (
	"testing"
)

// TestArtemis runs everything that needs a broker with auto-create on, on
// one broker (its start-up is the expensive part).
func TestArtemis(t *testing.T) {
	b := startBroker(t, artemisOptions())
	t.Run("Conformance", func(t *testing.T) { conformance(t, b) })
}
