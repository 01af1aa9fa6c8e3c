package app

import "github.com/onceflow/onceflow/pkg/apperr"

// Errors: every use case returns an *apperr.Error (the error model both services
// share) or an error that counts as apperr.CodeInternal. Besides apperr's codes,
// the order service has its own, which its HTTP edge maps to statuses.
const (
	// CodeInvalidKey: the Idempotency-Key is malformed (too long, bad characters).
	CodeInvalidKey apperr.Code = "invalid_idempotency_key"
	// CodeKeyReused: the Idempotency-Key was already used for a different request.
	CodeKeyReused apperr.Code = "idempotency_key_reused"
	// CodeKeyInFlight: the first request with this Idempotency-Key has not
	// finished yet; retry later.
	CodeKeyInFlight apperr.Code = "idempotency_key_in_flight"
)

// Public reasons (apperr.Error.Reason) of the payment reports the order service
// refuses; the Kafka edge makes them the poisoned message's reason code, which
// the order timeline shows.
const (
	// ReasonUnknownOrder: the report names an order this service does not have.
	ReasonUnknownOrder = "unknown_order"
	// ReasonInconsistentEvent: the report does not fit the order's history (a
	// version the order never had, or a transition its status does not allow).
	ReasonInconsistentEvent = "inconsistent_event"
	// ReasonPaymentMismatch: a completed payment names another amount or
	// currency than the order's; the order stays unconfirmed.
	ReasonPaymentMismatch = "payment_mismatch"
)

// notFound is the error of a use case addressed to an unknown order.
func notFound(id string, err error) error {
	return &apperr.Error{Code: apperr.CodeNotFound, Message: "no order with id " + id, Err: err}
}
