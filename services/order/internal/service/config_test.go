package service

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/deploy/compose"
)

// TestComposeSetsOnlyKnownVariables: every environment variable deploy/compose
// gives the order container is one the service reads (a typo there would be
// silently ignored), and the ones it must set are there.
func TestComposeSetsOnlyKnownVariables(t *testing.T) {
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	known := compose.EnvNames(Config{})
	known["LOG_LEVEL"] = true // read by main
	env := p.Services["order"].Environment
	for name := range env {
		if !known[name] {
			t.Errorf("compose sets %s, which the order service does not read", name)
		}
	}
	for _, must := range []string{"ORDER_HTTP_ADDR", "ORDER_DB_DSN", "ORDER_KAFKA_BROKERS"} {
		if _, ok := env[must]; !ok {
			t.Errorf("compose does not set %s", must)
		}
	}
	if len(known) < 20 || !known["ORDER_OUTBOX_BATCH_SIZE"] || !known["ORDER_RETRY_MAX_RETRIES"] {
		t.Fatalf("EnvNames found only %d variables: %v", len(known), known)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"bad listen address", func(c *Config) { c.HTTPAddr = "8080" }, "ORDER_HTTP_ADDR"},
		{"bad DSN", func(c *Config) { c.Messaging.DB.DSN = "not a dsn" }, "DSN"},
		{"no topic", func(c *Config) { c.OrdersTopic = "" }, "ORDER_TOPIC_ORDERS"},
		{"unknown failure mode", func(c *Config) { c.Messaging.FailureMode = "ignore" }, "failure mode"},
		{"negative retries", func(c *Config) { c.Messaging.Retry.MaxRetries = -5 }, "max retries"},
		{"zero startup timeout is the default", func(c *Config) { c.Messaging.DB.StartupTimeout = 0 }, ""},
		{"negative poll interval", func(c *Config) { c.Messaging.Outbox.PollInterval = -time.Second }, "poll interval"},
		{"request timeout not below write timeout", func(c *Config) { c.HTTP.WriteTimeout = c.RequestTimeout }, "ORDER_HTTP_WRITE_TIMEOUT"},
		{"header limit too small", func(c *Config) { c.HTTP.MaxHeaderBytes = 1024 }, "max header bytes"},
		{"header timeout above read timeout", func(c *Config) { c.HTTP.ReadHeaderTimeout, c.HTTP.ReadTimeout = 9*time.Second, 8*time.Second }, "read header timeout"},
		{"drain timeout too short", func(c *Config) { c.Messaging.Stop.DrainTimeout = 100 * time.Millisecond }, "drain timeout"},
		{"unready delay too long", func(c *Config) { c.Messaging.Stop.UnreadyDelay = 10 * time.Second }, "unready delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}
