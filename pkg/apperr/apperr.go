// Package apperr is the error model of every service's application layer: one
// type, Error, with a Code that says what kind of failure it is. The application
// decides the code; each edge maps codes once, in its own terms:
//
//   - HTTP (package problem): a status and an RFC 9457 problem+json body;
//   - Kafka consumers (package inbound): invalid, not found and conflict are
//     permanent (the message goes to the poison queue at once, with Reason as its
//     public reason code); unavailable and internal are retried.
//
// A service adds its own codes (the order service's idempotency-key codes) by
// declaring more Code constants and telling its HTTP edge their status.
//
// The package imports nothing but the standard library, so that application
// packages can use it without depending on HTTP or Kafka.
package apperr

import (
	"errors"
	"fmt"
)

// Code classifies an application error.
type Code string

// The codes every service shares.
const (
	// CodeInvalid: the input breaks a rule; the caller must change it.
	CodeInvalid Code = "invalid"
	// CodeNotFound: the addressed resource does not exist.
	CodeNotFound Code = "not_found"
	// CodeConflict: the input is valid but does not fit the resource's current
	// state or history.
	CodeConflict Code = "conflict"
	// CodeUnavailable: a dependency (the database) cannot be reached; retry later.
	CodeUnavailable Code = "unavailable"
	// CodeInternal: a bug or an unexpected failure. Any error that is not an
	// *Error counts as internal.
	CodeInternal Code = "internal"
)

// Error is the one error type the application layer returns.
type Error struct {
	Code Code
	// Message is safe to show to the caller.
	Message string
	// Fields names the invalid input fields (CodeInvalid only), with what is
	// wrong with each.
	Fields map[string]string
	// Reason is an optional public, stable word that refines Code (e.g.
	// "payment_mismatch"): shown where a machine-readable cause is needed (the
	// reason code of a poisoned message on the order timeline). It never holds
	// error text.
	Reason string
	// Err is the cause, for logs; never shown to callers.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause, so errors.Is and errors.As see through an Error
// (an unavailable database stays recognisable as such).
func (e *Error) Unwrap() error { return e.Err }

// As returns the first *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// CodeOf returns the code of the first *Error in err's chain, CodeInternal for
// any other non-nil error, and "" for nil.
func CodeOf(err error) Code {
	switch e := As(err); {
	case err == nil:
		return ""
	case e != nil:
		return e.Code
	}
	return CodeInternal
}

// ReasonUnclassified is the reason code shown for a failure that carries no
// valid one (free error text, or nothing).
const ReasonUnclassified = "unclassified"

// ValidReason reports whether s has the shape of a public reason code (an
// Error's Reason, or the reason code of a message a consumer gave up on): 1-40
// lower-case letters, digits and underscores, starting with a letter. Anything
// else (free error text) must not be shown where a code is expected.
func ValidReason(s string) bool {
	if len(s) == 0 || len(s) > 40 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
