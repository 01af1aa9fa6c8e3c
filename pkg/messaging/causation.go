package messaging

import (
	"context"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys the outbox adds to events written while handling a message, so
// that tools (the order timeline) can tell what caused an event and how hard it
// was to process.
const (
	// MetadataCausationID is the id of the consumed message that caused the event.
	MetadataCausationID = "causation_id"
	// MetadataCausationAttempts is how many attempts handling that message took in
	// its successful delivery (1 = first try).
	MetadataCausationAttempts = "causation_attempts"
	// MetadataReplayedAt marks a message re-published from a poison topic.
	MetadataReplayedAt = "replayed_at"
)

type attemptsKey struct{}
type causeKey struct{}

type cause struct {
	id       string
	attempts int
}

// countAttempts sits just outside Retry: it gives every delivery one attempt
// counter that survives Retry's context resets; cs.attempt, just inside Retry,
// advances it.
func countAttempts(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		msg.SetContext(context.WithValue(msg.Context(), attemptsKey{}, new(int)))
		return h(msg)
	}
}

// attempt sits just inside Retry and numbers each attempt of a delivery (1 =
// first try): an attempt after the first is a retry, told to Hooks.Retried
// (Watermill's OnRetryHook is not used: it is called for failed attempts, the
// last one included, not for retries), and a failed attempt is an event of
// the delivery's span (ADR 0039). The inbox records the number as the
// causation attempts of the events the handler writes.
func (cs *Consumers) attempt(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if n, ok := msg.Context().Value(attemptsKey{}).(*int); ok {
			if *n++; *n > 1 {
				cs.hooks.retried()
			}
		}
		out, err := h(msg)
		if err != nil {
			traceFailedAttempt(msg, attemptOf(msg.Context()), err)
		}
		return out, err
	}
}

// attemptOf returns the number of the attempt of the message in ctx (1 if it
// was not counted: a message outside the consumer stack).
func attemptOf(ctx context.Context) int {
	if n, ok := ctx.Value(attemptsKey{}).(*int); ok && *n > 0 {
		return *n
	}
	return 1
}

func withCause(ctx context.Context, id string, attempts int) context.Context {
	return context.WithValue(ctx, causeKey{}, cause{id: id, attempts: attempts})
}

// addCausation copies the cause in ctx, if any, into the metadata of msgs.
func addCausation(ctx context.Context, msgs []*message.Message) {
	c, ok := ctx.Value(causeKey{}).(cause)
	if !ok {
		return
	}
	for _, m := range msgs {
		m.Metadata.Set(MetadataCausationID, c.id)
		m.Metadata.Set(MetadataCausationAttempts, strconv.Itoa(c.attempts))
	}
}

// KafkaPosition returns where a consumed message sits in Kafka (partition,
// offset) and the broker's timestamp; ok is false for a message that did not
// come from Kafka.
func KafkaPosition(msg *message.Message) (partition int32, offset int64, at time.Time, ok bool) {
	ctx := msg.Context()
	partition, ok1 := kafka.MessagePartitionFromCtx(ctx)
	offset, ok2 := kafka.MessagePartitionOffsetFromCtx(ctx)
	at, _ = kafka.MessageTimestampFromCtx(ctx)
	return partition, offset, at, ok1 && ok2
}
