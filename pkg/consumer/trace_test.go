package consumer

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/go-sql-driver/mysql"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/onceflow/onceflow/internal/spantest"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/msgtrace"
)

// TestTraceConsumer: the consumer span is the child of the context in the
// message's metadata, is in the message's context for the handler, and holds
// an event per failed attempt and one for the poisoned message.
func TestTraceConsumer(t *testing.T) {
	rec := spantest.Record(t)
	ctx, producer := otel.Tracer("test").Start(context.Background(), "publish orders")
	producer.End()
	msg := message.NewMessage("m1", []byte("{}"))
	msgtrace.Inject(ctx, []*message.Message{msg})

	var inHandler trace.SpanContext
	attempts := 0
	handler := func(msg *message.Message) ([]*message.Message, error) {
		inHandler = trace.SpanContextFromContext(msg.Context())
		if attempts++; attempts < 3 {
			return nil, errors.New("not yet")
		}
		return nil, failure.Permanent(errors.New("never"))
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
			msg.Metadata.Set(failure.MetadataReasonCode, failure.ReasonCode(err))
			return nil, poisonOrigin{Publisher: spantest.PublishFunc(func(string, ...*message.Message) error { return nil }), group: "g"}.Publish("poison", msg)
		}
	}
	cs := &Consumers{retrying: newRetrying(RetryConfig{}.Defaults())}
	if _, err := msgtrace.Middleware("payment.order-events", "g")(cs.countAttempts(retryThenPoison(cs.attempt("payment.order-events")(handler))))(msg); err != nil {
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
			desc += " " + string(a.Key) + "=" + a.Value.String()
		}
		got = append(got, desc)
	}
	want := []string{
		"attempt failed onceflow.attempt=1 onceflow.reason_code=" + failure.ReasonCode(errors.New("not yet")),
		"attempt failed onceflow.attempt=2 onceflow.reason_code=" + failure.ReasonCode(errors.New("not yet")),
		"attempt failed onceflow.attempt=3 onceflow.reason_code=" + failure.ReasonCode(failure.Permanent(errors.New("never"))),
		"poisoned onceflow.reason_code=" + failure.ReasonCode(failure.Permanent(errors.New("never"))),
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

// unitConsumers returns Consumers of c (group "g", poison topic "p", unless
// c names them) for tests that need no server: their database pool never
// connects, their poison publisher drops everything.
func unitConsumers(t *testing.T, c Config) *Consumers {
	t.Helper()
	db, err := sql.Open("mysql", "test@tcp(127.0.0.1:1)/none")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if c.ConsumerGroup == "" {
		c.ConsumerGroup = "g"
	}
	if c.PoisonTopic == "" {
		c.PoisonTopic = "p"
	}
	c.DB, c.Poison = db, spantest.PublishFunc(func(string, ...*message.Message) error { return nil })
	cs, err := NewConsumers(c)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
