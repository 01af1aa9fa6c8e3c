package messaging

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// How a trace crosses the outbox and Kafka (ADR 0039): the W3C trace context
// travels in the message metadata, which the outbox row stores with the event
// and the Kafka marshaler turns into record headers.
const (
	// MetadataTraceparent is the W3C traceparent of the span that caused the
	// event: written by Outbox.Publish from its context (the HTTP request's
	// span, or the consumer span of the message being handled), then replaced
	// by the forwarder's publish span, the parent of the consumer's span.
	MetadataTraceparent = "traceparent"
	// MetadataTracestate is the W3C tracestate that goes with it, if any.
	MetadataTracestate = "tracestate"
)

// tracerName names the spans of this package.
const tracerName = "github.com/onceflow/onceflow/pkg/messaging"

// traceContext is the propagation format, W3C trace context, used whatever
// global propagator the process installed.
var traceContext = propagation.TraceContext{}

// injectTrace stores the span context of ctx, if any, in the metadata of msgs.
// Without a valid span context it writes nothing (a message keeps no stale one).
func injectTrace(ctx context.Context, msgs []*message.Message) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	for _, m := range msgs {
		traceContext.Inject(ctx, propagation.MapCarrier(m.Metadata))
	}
}

// extractTrace returns ctx with the remote span context stored in msg's metadata.
func extractTrace(ctx context.Context, msg *message.Message) context.Context {
	return traceContext.Extract(ctx, propagation.MapCarrier(msg.Metadata))
}

// tracingPublisher is the forwarder's outermost publisher: each message gets a
// producer span, child of the context stored with it in the outbox, and
// carries that span's context to Kafka instead. A failed publish puts the
// stored context back, so that the next attempt's span is again a child of it.
type tracingPublisher struct {
	message.Publisher
}

// Publish implements message.Publisher.
func (p tracingPublisher) Publish(topic string, msgs ...*message.Message) error {
	tracer := otel.Tracer(tracerName)
	type saved struct {
		span           trace.Span
		parent, tstate string
	}
	spans := make([]saved, len(msgs))
	for i, m := range msgs {
		ctx := extractTrace(context.Background(), m)
		ctx, span := tracer.Start(ctx, "publish "+topic, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.operation.type", "publish"),
				attribute.String("messaging.destination.name", topic),
				attribute.String("messaging.message.id", m.UUID)))
		spans[i] = saved{span: span, parent: m.Metadata.Get(MetadataTraceparent), tstate: m.Metadata.Get(MetadataTracestate)}
		injectTrace(ctx, []*message.Message{m})
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

// traceConsumer returns the outermost step of the consumer stack (after the
// drain): a consumer span for each delivery of a message to handler name,
// child of the producer context in the message's metadata, put in the
// message's context, so that the outbox stores it with the events the handler
// writes and the log lines carry its trace_id. Attempts that fail, and the
// message being poisoned, parked, skipped or requeued, are events of that span.
func traceConsumer(name, group string) message.HandlerMiddleware {
	tracer := otel.Tracer(tracerName)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := extractTrace(msg.Context(), msg)
			attrs := []attribute.KeyValue{
				attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.consumer.group.name", group),
				attribute.String("messaging.message.id", msg.UUID),
				attribute.String("onceflow.handler", name),
			}
			if partition, offset, _, ok := KafkaPosition(msg); ok {
				attrs = append(attrs, attribute.Int("messaging.destination.partition.id", int(partition)),
					attribute.Int64("messaging.kafka.offset", offset))
			}
			ctx, span := tracer.Start(ctx, "process "+name, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
			defer span.End()
			msg.SetContext(ctx)
			out, err := h(msg)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, ReasonCode(err))
			}
			return out, err
		}
	}
}

// traceFailedAttempt records on msg's consumer span that attempt (1 = first
// try) failed with err, with the error's reason code.
func traceFailedAttempt(msg *message.Message, attempt int, err error) {
	trace.SpanFromContext(msg.Context()).AddEvent("attempt failed", trace.WithAttributes(
		attribute.Int("onceflow.attempt", attempt), attribute.String("onceflow.reason_code", ReasonCode(err))))
}

// traceGivenUp records on msg's consumer span that the stack gave up on the
// message (what: "poisoned", "parked", "skipped", "requeued") and why.
func traceGivenUp(msg *message.Message, what, reason string) {
	trace.SpanFromContext(msg.Context()).AddEvent(what, trace.WithAttributes(attribute.String("onceflow.reason_code", reason)))
}
