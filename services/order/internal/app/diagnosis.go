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
	poisoned, err := s.poisoned(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, candidates := range [][]Hold{report.Holds, poisoned, incoming} {
		if len(candidates) > 0 {
			d.Cause = &candidates[0]
			return d, nil
		}
	}
	due := o.CreatedAt.Add(cfg.PaymentTimeout)
	detail := fmt.Sprintf("its event is in Kafka and nothing holds it; the payment service has not answered yet (payment: %q)", report.PaymentStatus)
	remedy := "wait: the consumers take it in turn (watch onceflow_consumer_lag_messages)"
	if o.Status == domain.StatusPending {
		remedy += "; the payment timeout cancels it at " + due.UTC().Format(time.RFC3339)
	}
	d.Cause = &Hold{Code: CauseNotConsumedYet, Service: "payment", Since: o.UpdatedAt, Detail: detail, Remedy: remedy}
	return d, nil
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

// poisoned returns the order's poisoned messages not replayed since, from the
// timeline (read by its order index), oldest first: a message poisoned again
// after its replay counts again.
func (s *Service) poisoned(ctx context.Context, id string) ([]Hold, error) {
	entries, err := s.timeline.ForOrder(ctx, id)
	if err != nil {
		return nil, err
	}
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
	return slices.DeleteFunc(holds, func(h Hold) bool { return h.Code == "" }), nil
}
