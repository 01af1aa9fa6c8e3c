package skip

import (
	"log/slog"
	"sync/atomic"

	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/msgtrace"
)

// AlertMessageSkipped is the value of the "alert" attribute of the ERROR line
// the strategy writes for each message it skips: what an alert rule matches.
const AlertMessageSkipped = "message_skipped"

// Config configures the skip strategy.
type Config struct {
	// OnSkipped, if not nil, is called for each message skipped. It must be
	// cheap and must not block.
	OnSkipped func()
}

// Skip is the skip strategy (a consumer.Strategy). Make it with New; one value
// serves every consumer given it.
type Skip struct {
	config  Config
	skipped atomic.Int64
}

// New returns the skip strategy of c.
func New(c Config) *Skip { return &Skip{config: c} }

// Skipped returns how many messages the strategy has skipped since New
// (acknowledged without their effect). Safe for concurrent use.
func (s *Skip) Skipped() int64 { return s.skipped.Load() }

// Retryable implements consumer.Strategy: the stack's usual rule.
func (s *Skip) Retryable(err error) bool { return consumer.RetryableInPlace(err) }

// Steps implements consumer.Strategy: a message whose retries are spent and on
// whose error the stack may give up (consumer.GivesUpOn) is logged at ERROR
// with all the context a person needs to redo its effect, counted, and
// acknowledged. Any other error (an outage, an interrupted shutdown) is
// returned unchanged, so the message is nacked and delivered again.
func (s *Skip) Steps(c consumer.Consumer) ([]message.HandlerMiddleware, error) {
	return []message.HandlerMiddleware{func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err == nil || !consumer.GivesUpOn(err) {
				return out, err
			}
			s.skipped.Add(1)
			msgtrace.GivenUp(msg, "skipped", failure.ReasonCode(err))
			if s.config.OnSkipped != nil {
				s.config.OnSkipped()
			}
			c.Logger.LogAttrs(msg.Context(), slog.LevelError,
				"consumer gave up on a message and skipped it: its effect is lost",
				attrs(msg, err)...)
			return nil, nil
		}
	}}, nil
}

// attrs describe a skipped message: where it came from, what it was, how
// hard the consumer tried and why it failed.
func attrs(msg *message.Message, err error) []slog.Attr {
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
	return append(attrs,
		slog.String("key", key),
		slog.String("message_id", msg.UUID),
		slog.String("event_type", msg.Metadata.Get(kafka.MetadataEventType)),
		slog.String("correlation_id", middleware.MessageCorrelationID(msg)),
		slog.Int("attempts", causation.Attempt(ctx)),
		slog.String("reason_code", failure.ReasonCode(err)),
		slog.String("err", err.Error()),
	)
}
