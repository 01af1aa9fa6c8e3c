package consumer

import (
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// Retrying is a delivery whose handler failed and that the consumer is
// retrying in place (Consumers.Retrying).
type Retrying struct {
	Consumer  string
	MessageID string
	// Key is the message's Kafka key (its kafka.MetadataKey).
	Key string
	// Attempts is how many attempts failed so far.
	Attempts int
	// ReasonCode is the last failure's reason code (failure.ReasonCode).
	ReasonCode string
	// Since is when the first attempt failed, LastFailure when the last did.
	Since, LastFailure time.Time
	// NextTry is about when the next attempt starts (the backoff's wait
	// before jitter); zero if the retries are spent and the strategy decides.
	NextTry time.Time
}

// retrying is the set of deliveries being retried in place, by message: one
// entry per delivery in flight at most, removed when the delivery ends.
type retrying struct {
	retry RetryConfig

	mu      sync.Mutex
	entries map[*message.Message]*Retrying
}

func newRetrying(c RetryConfig) *retrying {
	return &retrying{retry: c, entries: map[*message.Message]*Retrying{}}
}

// failed records that attempt n of msg's delivery to consumer failed with err.
func (r *retrying) failed(consumer string, msg *message.Message, n int, err error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[msg]
	if !ok {
		e = &Retrying{Consumer: consumer, MessageID: msg.UUID, Key: msg.Metadata.Get(kafka.MetadataKey), Since: now}
		r.entries[msg] = e
	}
	e.Attempts, e.ReasonCode, e.LastFailure, e.NextTry = n, failure.ReasonCode(err), now, time.Time{}
	if n <= r.retry.MaxRetries {
		e.NextTry = now.Add(r.backoff(n))
	}
}

// backoff is the wait after failed attempt n, before jitter.
func (r *retrying) backoff(n int) time.Duration {
	wait := float64(r.retry.InitialInterval)
	for range n - 1 {
		wait *= r.retry.Multiplier
		if wait >= float64(r.retry.MaxInterval) {
			return r.retry.MaxInterval
		}
	}
	return time.Duration(wait)
}

// ended forgets msg's delivery.
func (r *retrying) ended(msg *message.Message) {
	r.mu.Lock()
	delete(r.entries, msg)
	r.mu.Unlock()
}

// ofKey returns the deliveries of key being retried, oldest first.
func (r *retrying) ofKey(key string) []Retrying {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Retrying
	for _, e := range r.entries {
		if e.Key == key {
			out = append(out, *e)
		}
	}
	slices.SortFunc(out, func(a, b Retrying) int { return a.Since.Compare(b.Since) })
	return out
}

// Retrying returns the deliveries of key that the consumers are retrying in
// place right now, oldest first (read from memory; a delivery leaves the list
// when it ends, however it ends).
func (cs *Consumers) Retrying(key string) []Retrying { return cs.retrying.ofKey(key) }

// Paused is a consumer that holds every message at its gate until its
// dependency answers again (the pause strategy).
type Paused struct {
	Consumer string
	// Since is when it paused; Held is how many messages wait at its gate.
	Since time.Time
	Held  int
}

// PauseReporter is a strategy that pauses consumers (package pause).
type PauseReporter interface {
	Paused() []Paused
}

// Paused returns the consumers paused now (read from memory).
func (cs *Consumers) Paused() []Paused {
	var out []Paused
	for _, s := range cs.strategies() {
		if pr, ok := s.(PauseReporter); ok {
			out = append(out, pr.Paused()...)
		}
	}
	return out
}
