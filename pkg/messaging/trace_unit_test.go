package messaging

import (
	"context"
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recordSpans installs, for the test, a tracer provider that keeps every
// ended span in memory.
func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	return rec
}

// publishFunc is a message.Publisher made of a function.
type publishFunc func(topic string, msgs ...*message.Message) error

func (f publishFunc) Publish(topic string, msgs ...*message.Message) error { return f(topic, msgs...) }
func (publishFunc) Close() error                                           { return nil }

// TestTraceCrossesThePublisher: the context stored with an event (as
// Outbox.Publish writes it) is the parent of the forwarder's publish span,
// whose context goes to Kafka in the metadata; a refused publish puts the
// stored context back, so the next attempt is again its child.
func TestTraceCrossesThePublisher(t *testing.T) {
	rec := recordSpans(t)
	ctx, request := otel.Tracer("test").Start(context.Background(), "POST /orders")
	msg := message.NewMessage("m1", []byte("{}"))
	injectTrace(ctx, []*message.Message{msg})
	request.End()
	stored := msg.Metadata.Get(MetadataTraceparent)
	if stored == "" {
		t.Fatal("injectTrace stored no traceparent")
	}

	var sent string
	refuse := true
	pub := tracingPublisher{Publisher: publishFunc(func(_ string, msgs ...*message.Message) error {
		if refuse {
			return errors.New("kafka says no")
		}
		sent = msgs[0].Metadata.Get(MetadataTraceparent)
		return nil
	})}
	if err := pub.Publish("orders", msg); err == nil {
		t.Fatal("the refused publish returned no error")
	}
	if got := msg.Metadata.Get(MetadataTraceparent); got != stored {
		t.Fatalf("after a refused publish the traceparent is %q, want the stored %q back", got, stored)
	}
	refuse = false
	if err := pub.Publish("orders", msg); err != nil {
		t.Fatal(err)
	}

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans ended, want the request's and two publishes", len(spans))
	}
	for _, sp := range spans[1:] {
		if sp.Name() != "publish orders" || sp.SpanKind() != trace.SpanKindProducer {
			t.Fatalf("span %q (%s), want a producer span \"publish orders\"", sp.Name(), sp.SpanKind())
		}
		if sp.Parent().SpanID() != request.SpanContext().SpanID() || sp.SpanContext().TraceID() != request.SpanContext().TraceID() {
			t.Fatalf("publish span's parent is %s, want the request's span %s", sp.Parent().SpanID(), request.SpanContext().SpanID())
		}
	}
	last := spans[2].SpanContext()
	if want := "00-" + last.TraceID().String() + "-" + last.SpanID().String() + "-01"; sent != want {
		t.Fatalf("sent traceparent %q, want the publish span's %q", sent, want)
	}
}

// TestTraceConsumer: the consumer span is the child of the context in the
// message's metadata, is in the message's context for the handler, and holds
// an event per failed attempt and one for the poisoned message.
func TestTraceConsumer(t *testing.T) {
	rec := recordSpans(t)
	ctx, producer := otel.Tracer("test").Start(context.Background(), "publish orders")
	producer.End()
	msg := message.NewMessage("m1", []byte("{}"))
	injectTrace(ctx, []*message.Message{msg})

	var inHandler trace.SpanContext
	attempts := 0
	handler := func(msg *message.Message) ([]*message.Message, error) {
		inHandler = trace.SpanContextFromContext(msg.Context())
		if attempts++; attempts < 3 {
			return nil, errors.New("not yet")
		}
		return nil, Permanent(errors.New("never"))
	}
	// A stand-in for the retry and the poison step: three attempts, then the
	// message is poisoned.
	retryThenPoison := func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			var err error
			for range 3 {
				if _, err = h(msg); err == nil {
					return nil, nil
				}
			}
			msg.Metadata.Set(MetadataReasonCode, ReasonCode(err))
			return nil, poisonOrigin{Publisher: publishFunc(func(string, ...*message.Message) error { return nil }), group: "g"}.Publish("poison", msg)
		}
	}
	if _, err := traceConsumer("payment.order-events", "g")(countAttempts(retryThenPoison((&Consumers{}).attempt(handler))))(msg); err != nil {
		t.Fatal(err)
	}

	spans := rec.Ended()
	consumer := spans[len(spans)-1]
	if consumer.Name() != "process payment.order-events" || consumer.SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("span %q (%s), want a consumer span", consumer.Name(), consumer.SpanKind())
	}
	if consumer.Parent().SpanID() != producer.SpanContext().SpanID() || consumer.SpanContext().TraceID() != producer.SpanContext().TraceID() {
		t.Fatalf("consumer span's parent is %s, want the producer span %s", consumer.Parent().SpanID(), producer.SpanContext().SpanID())
	}
	if inHandler.SpanID() != consumer.SpanContext().SpanID() {
		t.Fatalf("the handler saw span %s, want the consumer span %s", inHandler.SpanID(), consumer.SpanContext().SpanID())
	}
	var got []string
	for _, ev := range consumer.Events() {
		desc := ev.Name
		for _, a := range ev.Attributes {
			desc += " " + string(a.Key) + "=" + a.Value.Emit()
		}
		got = append(got, desc)
	}
	want := []string{
		"attempt failed onceflow.attempt=1 onceflow.reason_code=" + ReasonCode(errors.New("not yet")),
		"attempt failed onceflow.attempt=2 onceflow.reason_code=" + ReasonCode(errors.New("not yet")),
		"attempt failed onceflow.attempt=3 onceflow.reason_code=" + ReasonCode(Permanent(errors.New("never"))),
		"poisoned onceflow.reason_code=" + ReasonCode(Permanent(errors.New("never"))),
	}
	if len(got) != len(want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d is %q, want %q", i, got[i], want[i])
		}
	}
}

// TestInjectTraceWithoutSpan: a context without a span writes no traceparent.
func TestInjectTraceWithoutSpan(t *testing.T) {
	msg := message.NewMessage("m1", nil)
	injectTrace(context.Background(), []*message.Message{msg})
	if got := msg.Metadata.Get(MetadataTraceparent); got != "" {
		t.Fatalf("traceparent %q without a span", got)
	}
}
