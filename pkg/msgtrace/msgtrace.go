package msgtrace

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// The metadata keys of the W3C trace context. The outbox row stores them with
// the event, and the Kafka marshaler turns them into record headers.
const (
	// MetadataTraceparent is the W3C traceparent of the span that caused the
	// event: written by the outbox from its context (the HTTP request's span,
	// or the consumer span of the message being handled), then replaced by
	// the forwarder's publish span, the parent of the consumer's span.
	MetadataTraceparent = "traceparent"
	// MetadataTracestate is the W3C tracestate that goes with it, if any.
	MetadataTracestate = "tracestate"
)

// tracerName names the spans of this package.
const tracerName = "github.com/onceflow/onceflow/pkg/msgtrace"

// traceContext is the propagation format, W3C trace context, used whatever
// global propagator the process installed.
var traceContext = propagation.TraceContext{}

// Inject stores the span context of ctx, if any, in the metadata of msgs.
// Without a valid span context it writes nothing (a message keeps no stale one).
func Inject(ctx context.Context, msgs []*message.Message) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	for _, m := range msgs {
		traceContext.Inject(ctx, propagation.MapCarrier(m.Metadata))
	}
}

// Extract returns ctx with the remote span context stored in msg's metadata.
func Extract(ctx context.Context, msg *message.Message) context.Context {
	return traceContext.Extract(ctx, propagation.MapCarrier(msg.Metadata))
}

// Publisher is a forwarder's outermost publisher: each message gets a producer
// span, child of the context stored with it, and carries that span's context
// to Kafka instead. A failed publish puts the stored context back, so that the
// next attempt's span is again a child of it.
type Publisher struct {
	message.Publisher
}

// Publish implements message.Publisher.
func (p Publisher) Publish(topic string, msgs ...*message.Message) error {
	tracer := otel.Tracer(tracerName)
	type saved struct {
		span           trace.Span
		parent, tstate string
	}
	spans := make([]saved, len(msgs))
	for i, m := range msgs {
		ctx := Extract(context.Background(), m)
		ctx, span := tracer.Start(ctx, "publish "+topic, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.operation.type", "publish"),
				attribute.String("messaging.destination.name", topic),
				attribute.String("messaging.message.id", m.UUID)))
		spans[i] = saved{span: span, parent: m.Metadata.Get(MetadataTraceparent), tstate: m.Metadata.Get(MetadataTracestate)}
		Inject(ctx, []*message.Message{m})
	}
	err := p.Publisher.Publish(topic, msgs...)
	for i, s := range spans {
		if err != nil {
			s.span.RecordError(err)
			s.span.SetStatus(codes.Error, "publish failed")
			restoreMetadata(msgs[i], MetadataTraceparent, s.parent)
			restoreMetadata(msgs[i], MetadataTracestate, s.tstate)
		}
		s.span.End()
	}
	return err
}

// restoreMetadata sets key to value in msg's metadata, or deletes it if value is empty.
func restoreMetadata(msg *message.Message, key, value string) {
	if value == "" {
		delete(msg.Metadata, key)
		return
	}
	msg.Metadata.Set(key, value)
}

// Middleware returns the consumer span step of handler (in consumer group
// group): a consumer span for each delivery of a message, child of the
// producer context in the message's metadata, put in the message's context,
// so that the outbox stores it with the events the handler writes and the log
// lines carry its trace_id. FailedAttempt and GivenUp add events to it.
func Middleware(handler, group string) message.HandlerMiddleware {
	tracer := otel.Tracer(tracerName)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := Extract(msg.Context(), msg)
			attrs := []attribute.KeyValue{
				attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.consumer.group.name", group),
				attribute.String("messaging.message.id", msg.UUID),
				attribute.String("onceflow.handler", handler),
			}
			if partition, offset, _, ok := kafka.Position(msg); ok {
				attrs = append(attrs, attribute.Int("messaging.destination.partition.id", int(partition)),
					attribute.Int64("messaging.kafka.offset", offset))
			}
			ctx, span := tracer.Start(ctx, "process "+handler, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
			defer span.End()
			msg.SetContext(ctx)
			out, err := h(msg)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, failure.ReasonCode(err))
			}
			return out, err
		}
	}
}

// FailedAttempt records on msg's consumer span that attempt (1 = first try)
// failed with err, with the error's reason code.
func FailedAttempt(msg *message.Message, attempt int, err error) {
	trace.SpanFromContext(msg.Context()).AddEvent("attempt failed", trace.WithAttributes(
		attribute.Int("onceflow.attempt", attempt), attribute.String("onceflow.reason_code", failure.ReasonCode(err))))
}

// GivenUp records on msg's consumer span that the consumer stack gave up on
// the message (what: "poisoned", "parked", "skipped", "requeued", ...) and
// its reason code.
func GivenUp(msg *message.Message, what, reasonCode string) {
	trace.SpanFromContext(msg.Context()).AddEvent(what, trace.WithAttributes(attribute.String("onceflow.reason_code", reasonCode)))
}
