package messaging

import (
	"log/slog"

	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/msgtrace"

	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// AlertMessageSkipped is the value of the "alert" attribute of the ERROR line
// FailureSkip writes for each message it skips: what an alert rule matches.
const AlertMessageSkipped = "message_skipped"

// Skipped returns how many messages the consumers that run FailureSkip have
// skipped since NewConsumers (acknowledged without their effect). It is a
// plain counter, safe for concurrent use.
func (cs *Consumers) Skipped() int64 { return cs.skipped.Load() }

// skipStep is FailureSkip's step: a message whose retries are spent and on
// whose error the stack may give up (givesUpOn) is logged at ERROR with all the
// context a person needs to redo its effect, counted, and acknowledged. Any
// other error (an outage, an interrupted stop) is returned unchanged, so the
// message is nacked and delivered again.
func (cs *Consumers) skipStep(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if err == nil || !givesUpOn(err) {
			return out, err
		}
		cs.skipped.Add(1)
		msgtrace.GivenUp(msg, "skipped", failure.ReasonCode(err))
		cs.hooks.skipped()
		cs.logger.LogAttrs(msg.Context(), slog.LevelError,
			"consumer gave up on a message and skipped it: its effect is lost",
			skipAttrs(msg, err)...)
		return nil, nil
	}
}

// skipAttrs describes a skipped message: where it came from, what it was, how
// hard the consumer tried and why it failed.
func skipAttrs(msg *message.Message, err error) []slog.Attr {
	ctx := msg.Context()
	attrs := []slog.Attr{
		slog.String("alert", AlertMessageSkipped),
		slog.String("handler", message.HandlerNameFromCtx(ctx)),
		slog.String("topic", message.SubscribeTopicFromCtx(ctx)),
	}
	if partition, offset, _, ok := kafka.Position(msg); ok {
		attrs = append(attrs, slog.Int64("partition", int64(partition)), slog.Int64("offset", offset))
	}
	key := msg.Metadata.Get(kafka.MetadataKey)
	if k, ok := wkafka.MessageKeyFromCtx(ctx); ok && key == "" {
		key = string(k)
	}
	attempts := causation.Attempt(ctx)
	return append(attrs,
		slog.String("key", key),
		slog.String("message_id", msg.UUID),
		slog.String("event_type", msg.Metadata.Get(kafka.MetadataEventType)),
		slog.String("correlation_id", middleware.MessageCorrelationID(msg)),
		slog.Int("attempts", attempts),
		slog.String("reason_code", failure.ReasonCode(err)),
		slog.String("err", err.Error()),
	)
}
