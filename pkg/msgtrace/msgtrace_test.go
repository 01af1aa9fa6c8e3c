package msgtrace_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/onceflow/onceflow/internal/spantest"
	"github.com/onceflow/onceflow/pkg/msgtrace"
)

// TestTraceCrossesThePublisher: the context stored with an event (as
// Outbox.Publish writes it) is the parent of the forwarder's publish span,
// whose context goes to Kafka in the metadata; a refused publish puts the
// stored context back, so the next attempt is again its child.
func TestTraceCrossesThePublisher(t *testing.T) {
	rec := spantest.Record(t)
	ctx, request := otel.Tracer("test").Start(context.Background(), "POST /orders")
	msg := message.NewMessage("m1", []byte("{}"))
	msgtrace.Inject(ctx, []*message.Message{msg})
	request.End()
	stored := msg.Metadata.Get(msgtrace.MetadataTraceparent)
	if stored == "" {
		t.Fatal("Inject stored no traceparent")
	}

	var sent string
	refuse := true
	pub := msgtrace.Publisher{Publisher: spantest.PublishFunc(func(_ string, msgs ...*message.Message) error {
		if refuse {
			return errors.New("kafka says no")
		}
		sent = msgs[0].Metadata.Get(msgtrace.MetadataTraceparent)
		return nil
	})}
	if err := pub.Publish("orders", msg); err == nil {
		t.Fatal("the refused publish returned no error")
	}
	if got := msg.Metadata.Get(msgtrace.MetadataTraceparent); got != stored {
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

// TestInjectTraceWithoutSpan: a context without a span writes no traceparent.
func TestInjectTraceWithoutSpan(t *testing.T) {
	msg := message.NewMessage("m1", nil)
	msgtrace.Inject(context.Background(), []*message.Message{msg})
	if got := msg.Metadata.Get(msgtrace.MetadataTraceparent); got != "" {
		t.Fatalf("traceparent %q without a span", got)
	}
}
