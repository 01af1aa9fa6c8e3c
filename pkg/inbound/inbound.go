// Package inbound is what every service's Kafka inbound adapter shares: it
// decodes a message into an event of the contract (package events), lets the
// service's adapter turn the event into a typed application command, and maps
// the command's error once for the consumer stack (package consumer):
//
//   - a message that does not decode is permanent, with the decoder's reason
//     code: unsupported_version for a schema version this build does not
//     decode (a producer moved before this consumer did: replay it from the
//     poison queue after the upgrade), invalid_event otherwise;
//   - an event type the service does not consume is permanent, reason code
//     unhandled_event_type;
//   - an application error (package apperr) with code invalid, not found or
//     conflict is permanent, with the error's Reason as its public reason code
//     (invalid_event if it has none): retrying the same message cannot succeed,
//     so the consumer stack poisons it at once;
//   - anything else (unavailable, internal, an error that is not an
//     *apperr.Error) is returned unchanged: the consumer stack retries it, and
//     never poisons an outage (failure.IsUnavailable still sees the cause).
//
// The application layer therefore never sees a wire type on the inbound side,
// and never knows that a consumer stack exists.
package inbound

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
)

// ReasonUnhandledEventType is the public reason code of an event that decodes
// but that the consuming service does not handle (e.g. a payment event on the
// orders topic).
const ReasonUnhandledEventType = "unhandled_event_type"

// Dispatch turns one decoded event into the service's application command and
// runs it. ctx is the message's context: it carries the inbox's transaction,
// which the repositories join. An event type the service does not handle
// returns Unhandled(e).
type Dispatch func(ctx context.Context, e events.Event) error

// Handler returns the consumer handler of a service's inbound adapter: it
// decodes msg (events.Decode), calls dispatch with the message's context and
// maps the result with ConsumerError. A message that does not decode is a
// permanent error with the decoder's reason code (events.DecodeError.ReasonCode:
// unsupported_version or invalid_event); dispatch is not called.
func Handler(dispatch Dispatch) func(msg *message.Message) error {
	return func(msg *message.Message) error {
		e, err := events.Decode(msg)
		if err != nil {
			return failure.PermanentCode(failure.ReasonCode(err), err)
		}
		return ConsumerError(dispatch(msg.Context(), e))
	}
}

// Unhandled is the permanent error for an event type the service does not
// consume (reason code unhandled_event_type).
func Unhandled(e events.Event) error {
	return failure.PermanentCode(ReasonUnhandledEventType,
		fmt.Errorf("event %s: this service does not handle %s events", e.ID, e.Type()))
}

// ConsumerError maps an application error for the consumer stack (see the
// package documentation): invalid, not found and conflict become permanent,
// with the error's Reason (or invalid_event) as their reason code; every other
// error, and nil, is returned unchanged.
func ConsumerError(err error) error {
	ae := apperr.As(err)
	if ae == nil {
		return err
	}
	switch ae.Code {
	case apperr.CodeInvalid, apperr.CodeNotFound, apperr.CodeConflict:
		reason := ae.Reason
		if reason == "" {
			reason = failure.ReasonInvalidEvent
		}
		return failure.PermanentCode(reason, err)
	}
	return err
}
