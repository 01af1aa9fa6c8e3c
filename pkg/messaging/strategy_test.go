package messaging_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/messaging"
)

// TestFailureModesNameConsumers: a per-consumer strategy for a name that is not
// a consumer of the service (a typo, a renamed handler, a projection) fails the
// start instead of being ignored, and an unknown strategy fails the config.
func TestFailureModesNameConsumers(t *testing.T) {
	tests := []struct {
		name  string
		modes map[string]messaging.FailureMode
		want  string // "" = starts
	}{
		{"unknown consumer", map[string]messaging.FailureMode{"payment.order-event": messaging.FailureBlock}, "not a consumer"},
		{"projection", map[string]messaging.FailureMode{"timeline": messaging.FailureBlock}, "not a consumer"},
		{"unknown strategy", map[string]messaging.FailureMode{"payment.order-events": "ignore"}, "failure mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := messaging.Config{ConsumerGroup: "g", PoisonTopic: "p", FailureModes: tt.modes}
			cs, err := messaging.NewConsumers(cfg, nil, nil, nil, slog.New(slog.DiscardHandler))
			if err == nil {
				noop := func(*message.Message) error { return nil }
				cs.Handle("payment.order-events", "orders", noop)
				cs.Project("timeline", "orders", noop)
				err = cs.Run(context.Background())
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
