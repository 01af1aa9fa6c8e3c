package causation

import (
	"context"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys of an event written while a message was handled.
const (
	// MetadataCausationID is the id of the consumed message that caused the event.
	MetadataCausationID = "causation_id"
	// MetadataCausationAttempts is how many attempts handling that message took in
	// its successful delivery (1 = first try).
	MetadataCausationAttempts = "causation_attempts"
)

type attemptsKey struct{}
type causeKey struct{}

type cause struct {
	id       string
	attempts int
}

// WithAttemptCounter returns ctx with a fresh attempt counter for one
// delivery. A retry middleware that resets the message's context between
// attempts keeps the counter if it derives each attempt's context from ctx.
func WithAttemptCounter(ctx context.Context) context.Context {
	return context.WithValue(ctx, attemptsKey{}, new(int))
}

// NextAttempt advances the delivery's attempt counter in ctx and returns the
// new attempt number (1 = first try); ok is false if ctx has no counter.
func NextAttempt(ctx context.Context) (attempt int, ok bool) {
	n, ok := ctx.Value(attemptsKey{}).(*int)
	if !ok {
		return 0, false
	}
	*n++
	return *n, true
}

// Attempt returns the number of the current attempt of the delivery in ctx
// (1 if it was not counted: a message outside a consumer stack).
func Attempt(ctx context.Context) int {
	if n, ok := ctx.Value(attemptsKey{}).(*int); ok && *n > 0 {
		return *n
	}
	return 1
}

// WithCause returns ctx marked as handling message id in its attempt-th
// attempt: Stamp copies that onto the events written with it.
func WithCause(ctx context.Context, id string, attempt int) context.Context {
	return context.WithValue(ctx, causeKey{}, cause{id: id, attempts: attempt})
}

// Stamp copies the cause in ctx, if any, into the metadata of msgs.
func Stamp(ctx context.Context, msgs []*message.Message) {
	c, ok := ctx.Value(causeKey{}).(cause)
	if !ok {
		return
	}
	for _, m := range msgs {
		m.Metadata.Set(MetadataCausationID, c.id)
		m.Metadata.Set(MetadataCausationAttempts, strconv.Itoa(c.attempts))
	}
}
