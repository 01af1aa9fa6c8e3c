package service

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/deploy/compose"
	"github.com/onceflow/onceflow/pkg/messaging"
)

// TestComposeSetsOnlyKnownVariables: every environment variable deploy/compose
// gives the order container is one the service reads (a typo there would be
// silently ignored), and the ones it must set are there.
func TestComposeSetsOnlyKnownVariables(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults and a DSN", func(*Config) {}, ""},
		{"no DSN", func(c *Config) { c.Messaging.DB.DSN = "" }, "no DSN configured"},
		{"no timeline retention", func(c *Config) { c.TimelineMaxAge = 0 }, "ORDER_RETENTION_TIMELINE_MAX_AGE"},
		{"inbox window below a day", func(c *Config) { c.Messaging.Retention.InboxMaxAge = time.Hour }, "inbox max age"},
		{"huge retention batch", func(c *Config) { c.Messaging.Retention.BatchSize = 1_000_000 }, "batch size"},
		{"bad listen address", func(c *Config) { c.HTTPAddr = "8080" }, "ORDER_HTTP_ADDR"},
		{"bad DSN", func(c *Config) { c.Messaging.DB.DSN = "not a dsn" }, "DSN"},
		{"no topic", func(c *Config) { c.OrdersTopic = "" }, "ORDER_TOPIC_ORDERS"},
		{"unknown failure mode", func(c *Config) { c.Messaging.FailureMode = "ignore" }, "failure mode"},
		{"negative retries", func(c *Config) { c.Messaging.Retry.MaxRetries = -5 }, "max retries"},
		{"zero startup timeout is the default", func(c *Config) { c.Messaging.DB.StartupTimeout = 0 }, ""},
		{"idempotency keys forgotten too soon", func(c *Config) { c.IdempotencyKeyTTL = 30 * time.Second }, "ORDER_IDEMPOTENCY_KEY_TTL"},
		{"idempotency keys kept too long", func(c *Config) { c.IdempotencyKeyTTL = 31 * 24 * time.Hour }, "ORDER_IDEMPOTENCY_KEY_TTL"},
		{"no cleanup interval", func(c *Config) { c.IdempotencyCleanupInterval = 0 }, "ORDER_IDEMPOTENCY_CLEANUP_INTERVAL"},
		{"cleanup batch too large", func(c *Config) { c.IdempotencyCleanupBatch = 100000 }, "ORDER_IDEMPOTENCY_CLEANUP_BATCH"},
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
			c.Messaging.DB.DSN = "app:secret@tcp(db:3306)/x" // what the deployment passes
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

// TestNoCompiledInCredentials: the defaults hold no database DSN (so no
// development password a production service could silently fall back to), and
// a service left without one fails validation, naming the variable to set.
func TestNoCompiledInCredentials(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	if c.Messaging.DB.DSN != "" {
		t.Fatalf("DefaultConfig has the DSN %q compiled in, want none", c.Messaging.DB.DSN)
	}
	err := c.Validate()
	if !errors.Is(err, messaging.ErrNoDSN) || !strings.Contains(err.Error(), "_DB_DSN") {
		t.Fatalf("Validate() without a DSN = %v, want messaging.ErrNoDSN naming the variable", err)
	}
}
