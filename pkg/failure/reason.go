package failure

import (
	"errors"

	"github.com/onceflow/onceflow/pkg/apperr"
)

// MetadataReasonCode is the metadata key of the reason code of a message a
// consumer gave up on (poisoned): a short, stable word (see ReasonCode) that
// is safe to show to anyone, next to Watermill's "reason_poisoned", which holds
// the full error text (SQL messages, ids, ...) and is shown only by the poison
// tooling (CLI and admin endpoints).
const MetadataReasonCode = "reason_code"

// MetadataPoisonedGroup is the metadata key of the consumer group that
// poisoned a message: a replay goes back to that group only.
const MetadataPoisonedGroup = "poisoned_group"

// MetadataReplayedAt is the metadata key that marks a message re-published
// from a poison topic, with the time of the replay.
const MetadataReplayedAt = "replayed_at"

// The generic reason codes. Errors may name a more precise one (ReasonCode).
const (
	// ReasonInvalidEvent: the message is not a valid event of the contract
	// (malformed, unknown type, breaks a rule, has no id). A known type in a
	// schema version the consumer does not decode has its own code,
	// "unsupported_version" (events.ReasonUnsupportedVersion).
	ReasonInvalidEvent = "invalid_event"
	// ReasonHandlerFailed: the handler kept failing for another reason.
	ReasonHandlerFailed = "handler_failed"
	// ReasonUnclassified: a poisoned message that carries no valid code
	// (poisoned by another tool, or its code is free text).
	ReasonUnclassified = apperr.ReasonUnclassified
)

// ValidReasonCode reports whether s has the shape of a reason code: 1-40
// lower-case letters, digits and underscores, starting with a letter
// (apperr.ValidReason). Anything else (free error text) must not be shown
// where a code is expected.
func ValidReasonCode(s string) bool { return apperr.ValidReason(s) }

// ReasonCode returns the public reason code of an error a consumer gives up on:
// the code of the first error in err's chain with a `ReasonCode() string` method
// (PermanentCode, a decoder's error such as *events.DecodeError, which says
// ReasonInvalidEvent or "unsupported_version") if it is a valid code;
// ReasonHandlerFailed otherwise. It never returns error text.
func ReasonCode(err error) string {
	var c interface{ ReasonCode() string }
	if errors.As(err, &c) {
		if code := c.ReasonCode(); ValidReasonCode(code) {
			return code
		}
	}
	return ReasonHandlerFailed
}

// PermanentCode is Permanent with a public reason code (see ReasonCode) for the
// message given up on, e.g. "unhandled_event_type".
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
