package messaging

import (
	"errors"
	"regexp"

	"github.com/ThreeDotsLabs/watermill/message"
)

// MetadataReasonCode is the metadata key of a poisoned message's reason code: a
// short, stable word (see ReasonCode) that is safe to show to anyone, next to
// Watermill's "reason_poisoned", which holds the full error text (SQL messages,
// ids, ...) and is shown only by the poison tooling (CLI and admin endpoints).
const MetadataReasonCode = "reason_code"

// The generic reason codes. Errors may name a more precise one (ReasonCode).
const (
	// ReasonInvalidEvent: the message is not a valid event of the contract
	// (malformed, unknown type, breaks a rule, has no id). A known type in a
	// schema version the consumer does not decode has its own code,
	// "unsupported_version" (events.ReasonUnsupportedVersion).
	ReasonInvalidEvent = "invalid_event"
	// ReasonHandlerFailed: the handler kept failing for another reason.
	ReasonHandlerFailed = "handler_failed"
	// ReasonUnclassified: a poisoned message that carries no valid code (poisoned
	// before codes existed, or by another tool).
	ReasonUnclassified = "unclassified"
)

var reasonCodeRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// ValidReasonCode reports whether s has the shape of a reason code: 1-40 lower-case
// letters, digits and underscores, starting with a letter. Anything else (free
// error text) must not be shown where a code is expected.
func ValidReasonCode(s string) bool { return reasonCodeRe.MatchString(s) }

// ReasonCode returns the public reason code of an error a consumer gives up on:
// the code of the first error in err's chain with a `ReasonCode() string` method
// (application errors, PermanentCode, a decoder's error such as
// *events.DecodeError, which says ReasonInvalidEvent or "unsupported_version")
// if it is a valid code; ReasonInvalidEvent for a message without id;
// ReasonHandlerFailed otherwise.
// It never returns error text.
func ReasonCode(err error) string {
	var c interface{ ReasonCode() string }
	if errors.As(err, &c) {
		if code := c.ReasonCode(); ValidReasonCode(code) {
			return code
		}
	}
	if errors.Is(err, ErrNoMessageID) {
		return ReasonInvalidEvent
	}
	return ReasonHandlerFailed
}

// PermanentCode is Permanent with a public reason code (see ReasonCode) for the
// poisoned message, e.g. "unhandled_event_type".
func PermanentCode(code string, err error) error {
	if err == nil {
		return nil
	}
	return codedError{permanentError{err}, code}
}

type codedError struct {
	permanentError
	code string
}

func (e codedError) ReasonCode() string { return e.code }

// tagReasonCode sets MetadataReasonCode on a message whose handler failed with an
// error that the poison queue will take (not an outage), so that the poisoned copy
// carries its public code.
func tagReasonCode(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if err != nil && !IsUnavailable(err) {
			msg.Metadata.Set(MetadataReasonCode, ReasonCode(err))
		}
		return out, err
	}
}
