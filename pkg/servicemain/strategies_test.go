package servicemain_test

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/pkg/consumer/strategies"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/servicemain"
)

// TestFailureModesNameConsumers: a per-consumer strategy for a name that is not
// a consumer of the service (a typo, a renamed handler, a projection) fails the
// start instead of being ignored, and an unknown strategy fails the config.
func TestFailureModesNameConsumers(t *testing.T) {
	tests := []struct {
		name  string
		modes map[string]strategies.Mode
		want  string // "" = starts
	}{
		{"unknown consumer", map[string]strategies.Mode{"payment.order-event": strategies.Block}, "not a consumer"},
		{"projection", map[string]strategies.Mode{"timeline": strategies.Block}, "not a consumer"},
		{"unknown strategy", map[string]strategies.Mode{"payment.order-events": "ignore"}, "failure mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := servicemain.Messaging{ConsumerGroup: "g", PoisonTopic: "p", FailureModes: tt.modes}
			db, err := sql.Open("mysql", "test@tcp(127.0.0.1:1)/none") // never connects
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			poison := kafka.Config{Brokers: []string{"127.0.0.1:1"}}.NewPoisonPublisher(watermill.NopLogger{})
			cs, err := servicemain.NewConsumers(cfg, db, poison, nil, nil, slog.New(slog.DiscardHandler))
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
