package service

import (
	"testing"

	"github.com/caarlos0/env/v11"

	"github.com/onceflow/onceflow/pkg/events"
)

// TestEventVersionsFromEnvironment: ORDER_EVENT_VERSIONS is read as
// "type:version,..." (as main reads it), and its absence leaves every type at
// its default write version.
func TestEventVersionsFromEnvironment(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want events.Versions
	}{
		{"unset", map[string]string{}, nil},
		{"order.placed v2", map[string]string{"ORDER_EVENT_VERSIONS": "order.placed:2"}, events.Versions{events.TypeOrderPlaced: 2}},
		{"two types", map[string]string{"ORDER_EVENT_VERSIONS": "order.placed:2,order.cancelled:1"},
			events.Versions{events.TypeOrderPlaced: 2, events.TypeOrderCancelled: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if err := env.ParseWithOptions(&cfg, env.Options{Environment: tt.env}); err != nil {
				t.Fatal(err)
			}
			if cfg.EventVersions.String() != tt.want.String() {
				t.Fatalf("EventVersions = %q, want %q", cfg.EventVersions, tt.want)
			}
		})
	}
}
