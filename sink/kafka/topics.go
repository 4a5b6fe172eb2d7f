package kafka

import (
	"sync"
	"time"
)

// kafkaTopic maps a sluice topic to the Kafka topic it is written to:
// TopicMap first, then TopicPrefix.
func (c *config) kafkaTopic(topic string) string {
	if to, ok := c.TopicMap[topic]; ok {
		topic = to
	}
	return c.TopicPrefix + topic
}

// maxUnknownTopics bounds the unknown-topic table: apps can push to any
// number of topic names.
const maxUnknownTopics = 4096

// unknownTopics remembers since when each topic has been unknown to the
// cluster, for UnknownTopicGrace.
type unknownTopics struct {
	mu    sync.Mutex
	since map[string]unknownSince
}

type unknownSince struct {
	first, last time.Time

	// The last confirmation by a request naming the topic.
	confirmedAt time.Time
	confirmErr  error
	confirmed   bool
	permanent   bool // logged as permanent
}

// seen records that topic is unknown at now and returns since when it has
// been unknown.
func (u *unknownTopics) seen(topic string, now time.Time) time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.since == nil {
		u.since = make(map[string]unknownSince)
	}
	s, ok := u.since[topic]
	if !ok {
		if len(u.since) >= maxUnknownTopics {
			u.evictLocked()
		}
		s.first = now
	}
	s.last = now
	u.since[topic] = s
	return s.first
}

// evictLocked drops the entry seen least recently.
func (u *unknownTopics) evictLocked() {
	var (
		oldest string
		at     time.Time
	)
	for t, s := range u.since {
		if oldest == "" || s.last.Before(at) {
			oldest, at = t, s.last
		}
	}
	delete(u.since, oldest)
}

// known forgets topic: it took a delivery.
func (u *unknownTopics) known(topic string) {
	u.mu.Lock()
	delete(u.since, topic)
	u.mu.Unlock()
}

// confirmation returns the last confirmation of topic if it is younger
// than ttl.
func (u *unknownTopics) confirmation(topic string, now time.Time, ttl time.Duration) (fresh bool, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.since[topic]
	if !ok || !s.confirmed || now.Sub(s.confirmedAt) >= ttl || now.Before(s.confirmedAt) {
		return false, nil
	}
	return true, s.confirmErr
}

// confirm records the outcome of a request naming topic.
func (u *unknownTopics) confirm(topic string, now time.Time, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s, ok := u.since[topic]; ok {
		s.confirmedAt, s.confirmErr, s.confirmed = now, err, true
		u.since[topic] = s
	}
}

// markPermanent records that topic's messages now fail permanently and
// reports whether that is news.
func (u *unknownTopics) markPermanent(topic string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.since[topic]
	if !ok || s.permanent {
		return false
	}
	s.permanent = true
	u.since[topic] = s
	return true
}
