package app

import "fmt"

// Code classifies an application error. The HTTP adapter maps each code to a
// status once, at the edge; the consumer treats Invalid, NotFound and Conflict as
// permanent (the poison queue takes the message at once).
type Code string

// The codes of application errors.
const (
	// CodeInvalid: the input breaks a rule; the caller must change it.
	CodeInvalid Code = "invalid"
	// CodeNotFound: the addressed resource does not exist.
	CodeNotFound Code = "not_found"
	// CodeConflict: the request is valid but not in the resource's current state.
	CodeConflict Code = "conflict"
	// CodeUnavailable: a dependency (the database) cannot be reached; retry later.
	CodeUnavailable Code = "unavailable"
	// CodeInternal: a bug or an unexpected failure.
	CodeInternal Code = "internal"
	// CodeInvalidKey: the Idempotency-Key is malformed (too long, bad characters).
	CodeInvalidKey Code = "invalid_idempotency_key"
	// CodeKeyReused: the Idempotency-Key was already used for a different request.
	CodeKeyReused Code = "idempotency_key_reused"
	// CodeKeyInFlight: the first request with this Idempotency-Key has not
	// finished yet; retry later.
	CodeKeyInFlight Code = "idempotency_key_in_flight"
)

// Error is the one error type the application returns.
type Error struct {
	Code Code
	// Message is safe to show to the caller.
	Message string
	// Fields names the invalid input fields (CodeInvalid only).
	Fields map[string]string
	// Err is the cause, for logs; never shown to callers.
	Err error
	// Reason is a public reason code for a consumer that gives up on an event
	// (see ReasonCode); empty means the code's default.
	Reason string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether retrying the same request cannot succeed.
func (e *Error) Permanent() bool {
	switch e.Code {
	case CodeInvalid, CodeNotFound, CodeConflict, CodeInvalidKey, CodeKeyReused:
		return true
	}
	return false
}

// Public reason codes of the events the order service's consumer gives up on
// (shown on the order timeline; the full error text is only on the admin
// poison endpoints).
const (
	ReasonUnknownOrder       = "unknown_order"
	ReasonInvalidEvent       = "invalid_event"
	ReasonInconsistentEvent  = "inconsistent_event"
	ReasonPaymentMismatch    = "payment_mismatch"
	ReasonUnhandledEventType = "unhandled_event_type"
	ReasonHandlerFailed      = "handler_failed"
)

// ReasonCode is the public code of a failed event handling (messaging.ReasonCode
// reads it for a poisoned message): Reason if set, else unknown_order for
// CodeNotFound, invalid_event for CodeInvalid and CodeConflict, handler_failed
// otherwise. It never contains error text.
func (e *Error) ReasonCode() string {
	switch {
	case e.Reason != "":
		return e.Reason
	case e.Code == CodeNotFound:
		return ReasonUnknownOrder
	case e.Code == CodeInvalid, e.Code == CodeConflict:
		return ReasonInvalidEvent
	}
	return ReasonHandlerFailed
}
