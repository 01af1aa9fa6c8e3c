// Package configtest holds the checks every service's configuration test makes,
// so that the services' config tests state only what differs: their variable
// prefix and their own validation cases. Only tests import it.
package configtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/deploy/compose"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// Config is what the checks need of a service's configuration.
type Config interface {
	// Validate reports every invalid field.
	Validate() error
}

// ComposeSetsOnlyKnownVariables checks that every environment variable
// deploy/compose gives the container of service is one cfg (the service's
// configuration struct) or main reads, since a typo there would be silently
// ignored, and that compose sets the service's address, DSN and brokers
// (prefix, e.g. "ORDER_", then HTTP_ADDR, DB_DSN, KAFKA_BROKERS).
func ComposeSetsOnlyKnownVariables(t *testing.T, service, prefix string, cfg any) {
	t.Helper()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	known := compose.EnvNames(cfg)
	known["LOG_LEVEL"] = true // read by main (servicemain.LogLevel)
	// OpenTelemetry's standard exporter variables: main passes them to
	// tracing.Config.FromStandardEnv, and the OTLP exporter reads them itself.
	known["OTEL_EXPORTER_OTLP_ENDPOINT"] = true
	known["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = true
	env := p.Services[service].Environment
	for name := range env {
		if !known[name] {
			t.Errorf("compose sets %s, which the %s service does not read", name, service)
		}
	}
	for _, must := range []string{"HTTP_ADDR", "DB_DSN", "KAFKA_BROKERS"} {
		if _, ok := env[prefix+must]; !ok {
			t.Errorf("compose does not set %s", prefix+must)
		}
	}
	if len(known) < 20 || !known[prefix+"OUTBOX_BATCH_SIZE"] || !known[prefix+"RETRY_MAX_RETRIES"] || !known[prefix+"STOP_DRAIN_TIMEOUT"] {
		t.Fatalf("EnvNames found only %d variables: %v", len(known), known)
	}
}

// Case is one validation case: Mutate changes a valid configuration, and
// Validate must then fail with an error mentioning WantErr ("" for success).
type Case[C Config] struct {
	Name    string
	Mutate  func(*C)
	WantErr string
}

// Validation runs cases, each on valid() (the defaults plus what a deployment
// must pass), and then the cases every service shares: messaging (DSN, failure
// mode, retries, outbox) and the graceful stop, reached through m and stop.
func Validation[C Config](t *testing.T, valid func() C, m func(*C) *servicemain.Messaging, stop func(*C) *lifecycle.Config, cases ...Case[C]) {
	t.Helper()
	shared := []Case[C]{
		{"defaults and a DSN", func(*C) {}, ""},
		{"no DSN", func(c *C) { m(c).DB.DSN = "" }, "no DSN configured"},
		{"bad DSN", func(c *C) { m(c).DB.DSN = "not a dsn" }, "DSN"},
		{"unknown failure mode", func(c *C) { m(c).FailureMode = "ignore" }, "failure mode"},
		{"negative retries", func(c *C) { m(c).Retry.MaxRetries = -5 }, "max retries"},
		{"zero startup timeout is the default", func(c *C) { m(c).DB.StartupTimeout = 0 }, ""},
		{"negative poll interval", func(c *C) { m(c).Outbox.PollInterval = -time.Second }, "poll interval"},
		{"inbox window below a day", func(c *C) { m(c).Retention.InboxMaxAge = time.Hour }, "inbox max age"},
		{"huge retention batch", func(c *C) { m(c).Retention.BatchSize = 1_000_000 }, "batch size"},
		{"drain timeout too short", func(c *C) { stop(c).DrainTimeout = 100 * time.Millisecond }, "drain timeout"},
		{"unready delay too long", func(c *C) { stop(c).UnreadyDelay = 10 * time.Second }, "unready delay"},
	}
	for _, tt := range append(shared, cases...) {
		t.Run(tt.Name, func(t *testing.T) {
			c := valid()
			tt.Mutate(&c)
			err := c.Validate()
			if tt.WantErr == "" && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if tt.WantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.WantErr)) {
				t.Fatalf("Validate() = %v, want an error mentioning %q", err, tt.WantErr)
			}
		})
	}
}

// NoCompiledInCredentials checks that the defaults hold no database DSN (so no
// development password a production service could silently fall back to), and
// that a service left without one fails validation with sqldb.ErrNoDSN,
// naming the variable to set.
func NoCompiledInCredentials[C Config](t *testing.T, defaults C, m servicemain.Messaging) {
	t.Helper()
	if m.DB.DSN != "" {
		t.Fatalf("the default configuration has the DSN %q compiled in, want none", m.DB.DSN)
	}
	err := defaults.Validate()
	if !errors.Is(err, sqldb.ErrNoDSN) || !strings.Contains(err.Error(), "_DB_DSN") {
		t.Fatalf("Validate() without a DSN = %v, want sqldb.ErrNoDSN naming the variable", err)
	}
}
