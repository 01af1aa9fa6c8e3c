package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// Where an order is, as a diagnosis names it.
const (
	// StageDone: the saga is over for the order; nothing holds it.
	StageDone = "done"
	// StageAwaitingPayment: the order is PENDING, waiting for the payment
	// service's answer.
	StageAwaitingPayment = "awaiting_payment"
	// StageAwaitingRefund: the order was cancelled after its charge and waits
	// for the refund.
	StageAwaitingRefund = "awaiting_refund"
)

// The causes the order service itself names; the holds a service finds in
// its messaging (a stopped consumer, a parked key, a parked outbox row, the
// outbox backlog) keep the codes of package diagnose.
const (
	// CausePaymentUnreachable: the payment service did not answer the
	// diagnosis, so what holds the order there is unknown.
	CausePaymentUnreachable = "payment_service_unreachable"
	// CausePoisoned: a consumer gave up on one of the order's messages and put
	// it on its poison topic.
	CausePoisoned = "poisoned"
	// CauseNotConsumedYet: the order's event is in Kafka and nothing holds it;
	// the payment service has not processed it yet (or its answer is on the way).
	CauseNotConsumedYet = "not_consumed_yet"
	// CauseRefundFailed: the payment service could not refund the charge; a
	// person has to settle it.
	CauseRefundFailed = "refund_failed"
	// CausePaymentTimeoutPending: the payment service consumed the order's
	// event and answered nothing (a skip-mode consumer gave up on it); only
	// the payment timeout ends the order.
	CausePaymentTimeoutPending = "payment_timeout_pending"
)

// The codes of the holds in a service's outbox (package diagnose finds them);
// the order service's own come before the payment service is asked.
const (
	HoldOutboxParked  = "outbox_parked"
	HoldOutboxBacklog = "outbox_backlog"
)

// Hold is one thing that holds an order's messages in a service (or the
// order itself), with the command or endpoint that resolves it.
type Hold struct {
	Code    string
	Service string
	Detail  string
	Remedy  string
	Since   time.Time
}

// PaymentReport is what the payment service knows of an order.
type PaymentReport struct {
	// PaymentStatus is the order's payment's status there ("" if it has none).
	PaymentStatus string
	// ConsumerGroup is the payment service's consumer group.
	ConsumerGroup string
	// Holds are what holds the order's messages in the payment service, in the
	// order a message meets them.
	Holds []Hold
}

// Holds is the port that finds what holds an order's messages in the order
// service's own messaging (consumers, parked keys, outbox).
type Holds interface {
	Holds(ctx context.Context, orderID string) ([]Hold, error)
}

// PaymentProbe is the port to the payment service's diagnosis; an error means
// it did not answer.
type PaymentProbe interface {
	Report(ctx context.Context, orderID string) (PaymentReport, error)
}

// GroupPosition is where a consumer group stands on one partition.
type GroupPosition struct {
	// Committed is the next offset the group reads there (-1: none committed).
	Committed int64
	// Members is how many live members the group has.
	Members int
}

// Groups is the port that asks Kafka where a consumer group stands.
type Groups interface {
	Position(ctx context.Context, group, topic string, partition int32) (GroupPosition, error)
}

// DiagnosisConfig is what Diagnose reads besides the orders and the timeline.
type DiagnosisConfig struct {
	Holds   Holds
	Payment PaymentProbe
	// PaymentTimeout is when the payment timeout cancels a PENDING order.
	PaymentTimeout time.Duration
	// NotDone finds the orders the saga has not finished (StuckOrders,
	// OldestNotDoneAge).
	NotDone NotDone
	// PoisonTopics maps each poison topic to the service that owns it
	// ("order", "payment"): its poison command replays the message.
	PoisonTopics map[string]string
	// ConsumedBy maps each saga topic to the service that consumes it
	// ("order", "payment"); Group is the order service's consumer group (the
	// payment service's comes with its report). With Groups, a diagnosis
	// names how far the group consuming the order's last event stands.
	ConsumedBy map[string]string
	Group      string
	// Groups is nil: the diagnosis does not ask Kafka.
	Groups Groups
}

// Diagnosis says where an order is and the one cause that holds it.
type Diagnosis struct {
	Order *domain.Order
	// Stage is one of the Stage* constants.
	Stage string
	// Cause is the first thing on the order's path that holds it; nil when
	// the order is done (a failed refund is the cause of a done order).
	Cause *Hold
	// PaymentStatus is the payment service's status of the order's payment
	// ("" if none or unknown).
	PaymentStatus string
}

// Diagnose walks the order's path across both services and returns where the
// order is and the first thing on its path that holds it: the order
// service's outbox, then the payment service (unreachable; its stopped
// consumer, parked key or outbox), then a poisoned message of the order not
// replayed since (the timeline), then the order service's consumers (a
// stopped consumer, a parked key); if nothing holds it, its event is on its
// way (CauseNotConsumedYet, with the payment timeout's due time). Every
// probe is bounded (package diagnose). Errors: apperr.CodeNotFound for an
// unknown order, apperr.CodeUnavailable, apperr.CodeInternal; the payment
// service not answering is a cause, not an error.
func (s *Service) Diagnose(ctx context.Context, id string) (*Diagnosis, error) {
	o, err := s.orders.Get(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, notFound(id, err)
	} else if err != nil {
		return nil, err
	}
	d := &Diagnosis{Order: o, Stage: stageOf(o)}
	if d.Stage == StageDone {
		if o.RefundFailure != "" {
			d.Cause = &Hold{Code: CauseRefundFailed, Service: "payment", Since: o.UpdatedAt,
				Detail: fmt.Sprintf("the payment service could not refund the charge (%s); the order ends paid, not refunded", o.RefundFailure),
				Remedy: "refund the customer by hand: the saga does not retry a refund whose account is gone"}
		}
		return d, nil
	}
	cfg := s.Diagnosis
	own, err := cfg.Holds.Holds(ctx, id)
	if err != nil {
		return nil, err
	}
	var outgoing, incoming []Hold // the order service's outbox, and its consumers
	for _, h := range own {
		if h.Code == HoldOutboxParked || h.Code == HoldOutboxBacklog {
			outgoing = append(outgoing, h)
		} else {
			incoming = append(incoming, h)
		}
	}
	if len(outgoing) > 0 {
		d.Cause = &outgoing[0]
		return d, nil
	}
	report, err := cfg.Payment.Report(ctx, id)
	if err != nil {
		d.Cause = &Hold{Code: CausePaymentUnreachable, Service: "payment",
			Detail: "the payment service did not answer the diagnosis: " + err.Error(),
			Remedy: "start the payment service (or make it reachable), then ask again"}
		return d, nil //nolint:nilerr // the payment service not answering is the cause, not a failure of the diagnosis
	}
	d.PaymentStatus = report.PaymentStatus
	entries, err := s.timeline.ForOrder(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, candidates := range [][]Hold{report.Holds, s.poisoned(entries), incoming} {
		if len(candidates) > 0 {
			d.Cause = &candidates[0]
			return d, nil
		}
	}
	d.Cause = s.inKafka(ctx, o, report, entries)
	return d, nil
}

// inKafka is the cause of an order nothing holds: its last event (the
// timeline's last entry on a saga topic) not consumed yet, with its group's
// position and members; or, consumed by the payment service with no answer,
// the payment timeout to wait for. Without the group's position (no entry
// yet, Kafka not answering), the event is said to be on its way.
func (s *Service) inKafka(ctx context.Context, o *domain.Order, report PaymentReport, entries []TimelineEntry) *Hold {
	cfg := s.Diagnosis
	timeout := ""
	if o.Status == domain.StatusPending {
		timeout = "; the payment timeout cancels it at " + o.CreatedAt.Add(cfg.PaymentTimeout).UTC().Format(time.RFC3339)
	}
	onItsWay := &Hold{Code: CauseNotConsumedYet, Service: "payment", Since: o.UpdatedAt,
		Detail: fmt.Sprintf("its event is in Kafka and nothing holds it; the payment service has not answered yet (payment: %q)", report.PaymentStatus),
		Remedy: "wait: the consumers take it in turn (watch onceflow_consumer_lag_messages)" + timeout}
	var last *TimelineEntry
	for i := range entries {
		if _, ok := cfg.ConsumedBy[entries[i].Topic]; ok && entries[i].Poisoned == nil {
			last = &entries[i]
		}
	}
	if last == nil || cfg.Groups == nil {
		return onItsWay
	}
	service := cfg.ConsumedBy[last.Topic]
	group := cfg.Group
	if service == "payment" {
		group = report.ConsumerGroup
	}
	pos, err := cfg.Groups.Position(ctx, group, last.Topic, last.Partition)
	if group == "" || err != nil {
		return onItsWay
	}
	where := fmt.Sprintf("%s %s is at offset %d of %s partition %d", last.EventType, last.EventID, last.Offset, last.Topic, last.Partition)
	if pos.Committed <= last.Offset {
		h := &Hold{Code: CauseNotConsumedYet, Service: service, Since: last.At,
			Detail: fmt.Sprintf("%s; group %s has committed offset %d there (%d messages before it) and has %d live members",
				where, group, pos.Committed, last.Offset-max(pos.Committed, 0), pos.Members),
			Remedy: "wait: the consumers take it in turn (watch onceflow_consumer_lag_messages)" + timeout}
		if pos.Members == 0 {
			h.Remedy = fmt.Sprintf("start the %s service: group %s has no live member to consume it%s", service, group, timeout)
		}
		return h
	}
	if service == "payment" && o.Status == domain.StatusPending && report.PaymentStatus == "" {
		return &Hold{Code: CausePaymentTimeoutPending, Service: "payment", Since: last.At,
			Detail: fmt.Sprintf("%s; group %s consumed it (committed offset %d) and the payment service has no payment for it: its consumer gave up on it without an answer (the skip strategy)",
				where, group, pos.Committed),
			Remedy: "wait: nothing else will answer" + timeout + " (ORDER_PAYMENT_TIMEOUT)"}
	}
	return onItsWay
}

// stageOf says where o is.
func stageOf(o *domain.Order) string {
	switch {
	case o.Status == domain.StatusPending:
		return StageAwaitingPayment
	case o.Status == domain.StatusCancelled && o.Paid && !o.Refunded && o.RefundFailure == "":
		return StageAwaitingRefund
	}
	return StageDone
}

// poisoned returns the order's poisoned messages not replayed since, from its
// timeline entries (oldest first): a message poisoned again after its replay
// counts again.
func (s *Service) poisoned(entries []TimelineEntry) []Hold {
	var holds []Hold
	held := map[string]int{} // event id -> its poisoned message's index in holds
	for _, e := range entries {
		if e.Poisoned == nil {
			if i, ok := held[e.EventID]; ok && e.ReplayedAt != "" {
				holds[i].Code = "" // replayed after it was poisoned
				delete(held, e.EventID)
			}
			continue
		}
		owner := s.Diagnosis.PoisonTopics[e.Topic]
		held[e.EventID] = len(holds)
		holds = append(holds, Hold{Code: CausePoisoned, Service: owner, Since: e.At,
			Detail: fmt.Sprintf("%s %s from %s was poisoned (reason %s): it is at offset %d of %s",
				e.EventType, e.EventID, e.Poisoned.FromTopic, e.Poisoned.ReasonCode, e.Offset, e.Topic),
			Remedy: fmt.Sprintf("fix the cause, then %s poison replay %d (POST /admin/poison/%d/replay on the %s service)",
				owner, e.Offset, e.Offset, owner)})
	}
	return slices.DeleteFunc(holds, func(h Hold) bool { return h.Code == "" })
}
