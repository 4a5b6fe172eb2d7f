package kafkaproto

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluiceio/sluice/agent"
)

// partitionsFile persists the mirrored partition counts, so that topics
// seen before are served while the cluster is down after a restart.
const partitionsFile = "partitions.json"

// maxMirrored bounds the mirrored topics (a "*" route lets producers name
// any topic).
const maxMirrored = 10000

// errNoCount: the topic's partition count is not known (cluster down and
// never seen): the producer gets a retriable error.
var errNoCount = errors.New("partition count unknown")

// mirror caches the upstream partition count of each topic, refreshing it
// in the background once older than ttl.
type mirror struct {
	path    string
	ttl     time.Duration
	timeout time.Duration

	mu         sync.Mutex
	counts     map[string]mirrored
	refreshing map[string]bool
}

type mirrored struct {
	N        int32     `json:"n"`
	MaxBytes int       `json:"max_message_bytes,omitempty"` // the topic's max.message.bytes; 0 = not known
	At       time.Time `json:"at"`
}

func openMirror(dir string, ttl, timeout time.Duration) *mirror {
	m := &mirror{path: filepath.Join(dir, partitionsFile), ttl: ttl, timeout: timeout,
		counts: map[string]mirrored{}, refreshing: map[string]bool{}}
	if b, err := os.ReadFile(m.path); err == nil {
		_ = json.Unmarshal(b, &m.counts) // a torn file only costs a refetch
	}
	return m
}

// maxBytes is topic's cached max.message.bytes, 0 when not known.
func (m *mirror) maxBytes(topic string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counts[topic].MaxBytes
}

// count returns topic's partition count: the cached one (refreshed in the
// background when stale), else one fetched now. explicit false means no
// sink has partitions: the caller falls back.
func (m *mirror) count(acc agent.Acceptor, topic string) (n int32, explicit bool, err error) {
	m.mu.Lock()
	c, ok := m.counts[topic]
	stale := ok && time.Since(c.At) > m.ttl && !m.refreshing[topic]
	if stale {
		m.refreshing[topic] = true
	}
	m.mu.Unlock()
	if ok {
		if stale {
			go func() { _, _, _ = m.fetch(acc, topic) }()
		}
		return c.N, true, nil
	}
	return m.fetch(acc, topic)
}

func (m *mirror) fetch(acc agent.Acceptor, topic string) (int32, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	info, err := acc.TopicInfo(ctx, topic)
	n := info.Partitions
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.refreshing, topic)
	switch {
	case errors.Is(err, agent.ErrNoPartitions):
		return 1, false, nil
	case err != nil || n <= 0:
		if c, ok := m.counts[topic]; ok {
			return c.N, true, nil // keep serving what we knew
		}
		return 0, false, errors.Join(errNoCount, err)
	}
	old, had := m.counts[topic]
	if !had && len(m.counts) >= maxMirrored {
		return int32(n), true, nil // served, not remembered
	}
	m.counts[topic] = mirrored{N: int32(n), MaxBytes: info.MaxMessageBytes, At: time.Now()}
	if !had || old.N != int32(n) || old.MaxBytes != info.MaxMessageBytes {
		if b, err := json.Marshal(m.counts); err == nil {
			_ = atomicWrite(m.path, b) // best effort: a lost file means a refetch
		}
	}
	return int32(n), true, nil
}
