// Package spantest records the spans a test makes, in memory, with
// OpenTelemetry's SDK. It imports nothing of this repository, so that any
// package's own tests can use it.
package spantest

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Record installs, for the test, a tracer provider that keeps every ended
// span in memory, and returns its recorder.
func Record(t *testing.T) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	return rec
}

// PublishFunc is a message.Publisher made of a function.
type PublishFunc func(topic string, msgs ...*message.Message) error

// Publish implements message.Publisher.
func (f PublishFunc) Publish(topic string, msgs ...*message.Message) error { return f(topic, msgs...) }

// Close implements message.Publisher.
func (PublishFunc) Close() error { return nil }
