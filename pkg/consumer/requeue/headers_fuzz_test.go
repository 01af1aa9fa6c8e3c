package requeue

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/trace"

	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/msgtrace"
)

// FuzzConsumedHeaders gives the consumer stack's own header reads any values:
// the W3C trace context (msgtrace.Extract) and the requeue count
// (the requeue step). The properties: no panic; a span context taken from the
// headers is either invalid (ignored) or carries the traceparent's trace id;
// the requeue count is never negative and is the header's number when that is
// one, so a message is requeued at most MaxRequeues times whatever its headers
// say. (This package's tests cannot import internal/fuzzseed, which imports
// this package: the seeds are added here.)
func FuzzConsumedHeaders(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=opaque", "2")
	f.Add("", "", "")
	f.Add("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", "-9223372036854775808")
	f.Fuzz(func(t *testing.T, traceparent, tracestate, requeues string) {
		msg := message.NewMessage("id-1", nil)
		for k, v := range map[string]string{msgtrace.MetadataTraceparent: traceparent, msgtrace.MetadataTracestate: tracestate, delayed.MetadataRequeues: requeues} {
			if v != "" {
				msg.Metadata.Set(k, v)
			}
		}
		sc := trace.SpanContextFromContext(msgtrace.Extract(context.Background(), msg))
		if sc.IsValid() && !strings.Contains(strings.ToLower(traceparent), sc.TraceID().String()) {
			t.Fatalf("span context %s from traceparent %q", sc.TraceID(), traceparent)
		}
		n := count(msg)
		if want, err := strconv.Atoi(requeues); n < 0 || (err == nil && want >= 0 && n != want) {
			t.Fatalf("requeue count %d from header %q", n, requeues)
		}
	})
}
