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
// gives the payment container is one the service reads (a typo there would be
// silently ignored), and the ones it must set are there.
func TestComposeSetsOnlyKnownVariables(t *testing.T) {
	t.Parallel()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	known := compose.EnvNames(Config{})
	known["LOG_LEVEL"] = true // read by main
	env := p.Services["payment"].Environment
	for name := range env {
		if !known[name] {
			t.Errorf("compose sets %s, which the payment service does not read", name)
		}
	}
	for _, must := range []string{"PAYMENT_HTTP_ADDR", "PAYMENT_DB_DSN", "PAYMENT_KAFKA_BROKERS"} {
		if _, ok := env[must]; !ok {
			t.Errorf("compose does not set %s", must)
		}
	}
	if len(known) < 20 || !known["PAYMENT_OUTBOX_BATCH_SIZE"] || !known["PAYMENT_RETRY_MAX_RETRIES"] {
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
		{"bad listen address", func(c *Config) { c.HTTPAddr = "8080" }, "PAYMENT_HTTP_ADDR"},
		{"bad DSN", func(c *Config) { c.Messaging.DB.DSN = "not a dsn" }, "DSN"},
		{"no topic", func(c *Config) { c.OrdersTopic = "" }, "PAYMENT_TOPIC_ORDERS"},
		{"unknown failure mode", func(c *Config) { c.Messaging.FailureMode = "ignore" }, "failure mode"},
		{"negative retries", func(c *Config) { c.Messaging.Retry.MaxRetries = -5 }, "max retries"},
		{"zero startup timeout is the default", func(c *Config) { c.Messaging.DB.StartupTimeout = 0 }, ""},
		{"negative poll interval", func(c *Config) { c.Messaging.Outbox.PollInterval = -time.Second }, "poll interval"},
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
