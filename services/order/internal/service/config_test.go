package service

import (
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/pkg/servicemain/configtest"
)

// TestComposeSetsOnlyKnownVariables: see configtest.ComposeSetsOnlyKnownVariables.
func TestComposeSetsOnlyKnownVariables(t *testing.T) {
	configtest.ComposeSetsOnlyKnownVariables(t, "order", "ORDER_", Config{})
}

// TestConfigValidation: the cases every service shares (configtest.Validation),
// then the order service's own.
func TestConfigValidation(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.Messaging.DB.DSN = "app:secret@tcp(db:3306)/x" // what the deployment passes
		return c
	}
	configtest.Validation(t, valid,
		func(c *Config) *servicemain.Messaging { return &c.Messaging },
		func(c *Config) *lifecycle.Config { return &c.Stop },
		configtest.Case[Config]{Name: "no timeline retention", Mutate: func(c *Config) { c.TimelineMaxAge = 0 }, WantErr: "ORDER_RETENTION_TIMELINE_MAX_AGE"},
		configtest.Case[Config]{Name: "bad listen address", Mutate: func(c *Config) { c.HTTPAddr = "8080" }, WantErr: "ORDER_HTTP_ADDR"},
		configtest.Case[Config]{Name: "no topic", Mutate: func(c *Config) { c.OrdersTopic = "" }, WantErr: "ORDER_TOPIC_ORDERS"},
		configtest.Case[Config]{Name: "idempotency keys forgotten too soon", Mutate: func(c *Config) { c.IdempotencyKeyTTL = 30 * time.Second }, WantErr: "ORDER_IDEMPOTENCY_KEY_TTL"},
		configtest.Case[Config]{Name: "idempotency keys kept too long", Mutate: func(c *Config) { c.IdempotencyKeyTTL = 31 * 24 * time.Hour }, WantErr: "ORDER_IDEMPOTENCY_KEY_TTL"},
		configtest.Case[Config]{Name: "no cleanup interval", Mutate: func(c *Config) { c.IdempotencyCleanupInterval = 0 }, WantErr: "ORDER_IDEMPOTENCY_CLEANUP_INTERVAL"},
		configtest.Case[Config]{Name: "cleanup batch too large", Mutate: func(c *Config) { c.IdempotencyCleanupBatch = 100000 }, WantErr: "ORDER_IDEMPOTENCY_CLEANUP_BATCH"},
		configtest.Case[Config]{Name: "request timeout not below write timeout", Mutate: func(c *Config) { c.HTTP.WriteTimeout = c.RequestTimeout }, WantErr: "ORDER_HTTP_WRITE_TIMEOUT"},
		configtest.Case[Config]{Name: "event version of an unknown type", Mutate: func(c *Config) { c.EventVersions = events.Versions{"order.shipped": 1} }, WantErr: "ORDER_EVENT_VERSIONS"},
		configtest.Case[Config]{Name: "event version this build cannot write", Mutate: func(c *Config) { c.EventVersions = events.Versions{events.TypeOrderPlaced: 3} }, WantErr: "ORDER_EVENT_VERSIONS"},
		configtest.Case[Config]{Name: "console payment URL not http", Mutate: func(c *Config) { c.ConsolePaymentURL = "payment:8081" }, WantErr: "ORDER_CONSOLE_PAYMENT_URL"},
		configtest.Case[Config]{Name: "header limit too small", Mutate: func(c *Config) { c.HTTP.MaxHeaderBytes = 1024 }, WantErr: "max header bytes"},
		configtest.Case[Config]{Name: "header timeout above read timeout", Mutate: func(c *Config) { c.HTTP.ReadHeaderTimeout, c.HTTP.ReadTimeout = 9*time.Second, 8*time.Second }, WantErr: "read header timeout"},
	)
}

// TestNoCompiledInCredentials: see configtest.NoCompiledInCredentials.
func TestNoCompiledInCredentials(t *testing.T) {
	configtest.NoCompiledInCredentials(t, DefaultConfig(), DefaultConfig().Messaging)
}
