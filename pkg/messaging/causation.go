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

// countAttempts sits just outside Retry: it gives every delivery a counter that
// survives Retry's context resets, which the inbox increments on each attempt.
func countAttempts(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := context.WithValue(msg.Context(), attemptsKey{}, new(int))
		msg.SetContext(context.WithValue(ctx, retriesKey{}, new(int)))
		return h(msg)
	}
}

// retriesKey holds the delivery's count of attempts that reached countRetries.
type retriesKey struct{}

// countRetries sits just inside Retry: each attempt of a delivery after its
// first is a retry, told to Hooks.Retried.
func (cs *Consumers) countRetries(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if n, ok := msg.Context().Value(retriesKey{}).(*int); ok {
			if *n > 0 {
				cs.hooks.retried()
			}
			*n++
		}
		return h(msg)
	}
}

// nextAttempt counts one more attempt of the message in ctx and returns its number.
func nextAttempt(ctx context.Context) int {
	n, ok := ctx.Value(attemptsKey{}).(*int)
	if !ok {
		return 1
	}
	*n++
	return *n
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
