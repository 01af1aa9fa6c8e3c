package app

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// TimelineEntry is one message about an order that passed on a saga topic.
type TimelineEntry struct {
	// OrderID is the order the entry is about.
	OrderID   string
	Topic     string
	Partition int32
	Offset    int64
	At        time.Time
	EventID   string
	EventType string
	// CorrelationID ties the entry to the request that started the saga.
	CorrelationID string
	// CausedBy is the event whose handling produced this one, and CausedByAttempts
	// how many attempts that handling took.
	CausedBy         string
	CausedByAttempts int
	// Retries is how many times handling this event failed before it succeeded
	// (known once its effect appears on the timeline; OrderTimeline fills it in).
	Retries int
	// Poisoned is set for a message that a consumer gave up on.
	Poisoned *Poisoned
	// ReplayedAt is set for a message re-published from a poison topic.
	ReplayedAt string
}

// Poisoned says why and where a message was poisoned. The timeline is public, so
// it holds only a reason code (e.g. invalid_event, unknown_order,
// handler_failed; see failure.ReasonCode), never the error text: that may carry
// SQL messages and internals, and is shown only by the poison tooling (CLI and
// admin endpoints).
type Poisoned struct {
	ReasonCode string
	FromTopic  string
}

// UnknownEventType is the EventType of an entry whose message named none.
const UnknownEventType = "unknown"

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
// Errors: apperr.CodeNotFound for an unknown order, apperr.CodeUnavailable,
// apperr.CodeInternal.
func (s *Service) OrderTimeline(ctx context.Context, id string) ([]TimelineEntry, error) {
	if _, err := s.orders.Get(ctx, id); errors.Is(err, domain.ErrNotFound) {
		return nil, notFound(id, err)
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
		if p := entries[i].Poisoned; p != nil && !apperr.ValidReason(p.ReasonCode) {
			entries[i].Poisoned = &Poisoned{ReasonCode: apperr.ReasonUnclassified, FromTopic: p.FromTopic}
		}
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].At.Before(entries[j].At) })
	return entries, nil
}

// RecordTimeline records one message about an order on the timeline (the read
// model's projections call it for every message on the saga's topics and the
// poison topics). An entry without an order is skipped (nil); a missing event
// type is recorded as UnknownEventType; a poisoned entry whose reason code is not
// a valid code (free text) is recorded as apperr.ReasonUnclassified, so that
// the public timeline never shows error text. Recording the same Kafka position
// twice is a no-op. Errors: apperr.CodeUnavailable, apperr.CodeInternal (the
// projection retries them).
func (s *Service) RecordTimeline(ctx context.Context, e TimelineEntry) error {
	if e.OrderID == "" {
		return nil
	}
	if e.EventType == "" {
		e.EventType = UnknownEventType
	}
	if p := e.Poisoned; p != nil && !apperr.ValidReason(p.ReasonCode) {
		e.Poisoned = &Poisoned{ReasonCode: apperr.ReasonUnclassified, FromTopic: p.FromTopic}
	}
	return s.timeline.Record(ctx, e)
}
