package app

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// TimelineEntry is one message about an order that passed on a saga topic.
type TimelineEntry struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	At        time.Time `json:"at"`
	EventID   string    `json:"event_id"`
	EventType string    `json:"type"`
	// CorrelationID ties the entry to the request that started the saga.
	CorrelationID string `json:"correlation_id,omitempty"`
	// CausedBy is the event whose handling produced this one, and CausedByAttempts
	// how many attempts that handling took.
	CausedBy         string `json:"caused_by,omitempty"`
	CausedByAttempts int    `json:"caused_by_attempts,omitempty"`
	// Retries is how many times handling this event failed before it succeeded
	// (known once its effect appears on the timeline).
	Retries int `json:"retries"`
	// Poisoned is set for a message that a consumer gave up on.
	Poisoned *Poisoned `json:"poisoned,omitempty"`
	// ReplayedAt is set for a message re-published from a poison topic.
	ReplayedAt string `json:"replayed_at,omitempty"`

	// OrderID is the order the entry is about.
	OrderID string `json:"-"`
}

// Poisoned says why and where a message was poisoned. The timeline is public, so
// it holds only a reason code (e.g. invalid_event, unknown_order,
// handler_failed; see messaging.ReasonCode), never the error text: that may carry
// SQL messages and internals, and is shown only by the poison tooling (CLI and
// admin endpoints).
type Poisoned struct {
	ReasonCode string `json:"reason_code"`
	FromTopic  string `json:"from_topic"`
}

// Timeline is the port of the timeline read model.
type Timeline interface {
	// Record stores an entry once: recording the same Kafka position again is a no-op.
	Record(ctx context.Context, e TimelineEntry) error
	// ForOrder returns the entries of an order in Kafka-time order.
	ForOrder(ctx context.Context, orderID string) ([]TimelineEntry, error)
}

// OrderTimeline returns everything that happened to an order across both
// services, in order: its events, the payment service's answers, poisoned and
// replayed messages, and how many retries each event needed. It is a read model
// filled asynchronously from Kafka, so the newest entries may lag by a moment.
// Errors: CodeNotFound for an unknown order, CodeUnavailable, CodeInternal.
func (s *Service) OrderTimeline(ctx context.Context, id string) ([]TimelineEntry, error) {
	if _, err := s.orders.Get(ctx, id); errors.Is(err, domain.ErrNotFound) {
		return nil, &Error{Code: CodeNotFound, Message: "no order with id " + id, Err: err}
	} else if err != nil {
		return nil, err
	}
	entries, err := s.timeline.ForOrder(ctx, id)
	if err != nil {
		return nil, err
	}
	attempts := map[string]int{}
	for _, e := range entries {
		if e.CausedBy != "" && e.CausedByAttempts > attempts[e.CausedBy] {
			attempts[e.CausedBy] = e.CausedByAttempts
		}
	}
	for i := range entries {
		if n := attempts[entries[i].EventID]; n > 1 {
			entries[i].Retries = n - 1
		}
		// Rows recorded before reason codes existed hold the raw error text.
		if p := entries[i].Poisoned; p != nil && !messaging.ValidReasonCode(p.ReasonCode) {
			entries[i].Poisoned = &Poisoned{ReasonCode: messaging.ReasonUnclassified, FromTopic: p.FromTopic}
		}
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].At.Before(entries[j].At) })
	return entries, nil
}
