package skip_test

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/skip"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// timedOut is an attempt that ran past the handler timeout, as the stack
// reports it: a failure with its own reason code, not an outage.
type timedOut struct{}

func (timedOut) Error() string      { return consumer.ErrHandlerTimeout.Error() }
func (timedOut) ReasonCode() string { return consumer.ReasonHandlerTimeout }

// TestSkipStep: a failure the stack may give up on is logged at ERROR with the
// message's context, counted and acknowledged (nil); an outage or an
// interrupted stop is handed back (the message comes again), uncounted.
func TestSkipStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		err         error
		wantSkipped bool
		wantCode    string
	}{
		{"keeps failing", errors.New("constraint violated"), true, failure.ReasonHandlerFailed},
		{"permanent with a code", failure.PermanentCode("unhandled_event_type", errors.New("order.shipped")), true, "unhandled_event_type"},
		{"handler timeout", timedOut{}, true, consumer.ReasonHandlerTimeout},
		{"database unreachable", fmt.Errorf("insert: %w", driver.ErrBadConn), false, ""},
		{"interrupted by a shutdown", consumer.ErrShuttingDown, false, ""},
		{"succeeds", nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			sk := skip.New(skip.Config{})
			steps, err := sk.Steps(consumer.Consumer{Name: "test", Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			if err != nil || len(steps) != 1 {
				t.Fatalf("steps %d, %v; want one", len(steps), err)
			}
			msg := message.NewMessage("msg-1", nil)
			msg.Metadata.Set(kafka.MetadataKey, "order-7")
			msg.Metadata.Set(kafka.MetadataEventType, "payment.completed")
			middleware.SetCorrelationID("corr-9", msg)
			ctx := causation.WithAttemptCounter(context.Background())
			for range 3 {
				causation.NextAttempt(ctx)
			}
			msg.SetContext(ctx)
			_, err = steps[0](func(*message.Message) ([]*message.Message, error) { return nil, tt.err })(msg)

			if tt.err == nil || tt.wantSkipped {
				if err != nil {
					t.Fatalf("skip step returned %v, want nil (acknowledged)", err)
				}
			} else if !errors.Is(err, tt.err) {
				t.Fatalf("skip step returned %v, want %v (nacked, delivered again)", err, tt.err)
			}
			wantCount := int64(0)
			if tt.wantSkipped {
				wantCount = 1
			}
			if got := sk.Skipped(); got != wantCount {
				t.Fatalf("Skipped() = %d, want %d", got, wantCount)
			}
			if !tt.wantSkipped {
				if logs.Len() != 0 {
					t.Fatalf("logged %s, want nothing", logs.String())
				}
				return
			}
			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("log %q: %v", logs.String(), err)
			}
			want := map[string]any{"level": "ERROR", "alert": skip.AlertMessageSkipped, "key": "order-7", "message_id": "msg-1",
				"event_type": "payment.completed", "correlation_id": "corr-9", "attempts": float64(3),
				"reason_code": tt.wantCode, "err": tt.err.Error()}
			for k, v := range want {
				if line[k] != v {
					t.Errorf("log attribute %s = %v, want %v (line %s)", k, line[k], v, logs.String())
				}
			}
			for _, k := range []string{"handler", "topic"} {
				if _, ok := line[k]; !ok {
					t.Errorf("log has no %s attribute", k)
				}
			}
		})
	}
}
