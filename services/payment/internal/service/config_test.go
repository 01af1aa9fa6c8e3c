package service

import (
	"testing"

	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/pkg/servicemain/configtest"
)

// TestConfigValidation: the cases every service shares (configtest.Validation),
// then the payment service's own.
func TestConfigValidation(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.Messaging.DB.DSN = "app:secret@tcp(db:3306)/x" // what the deployment passes
		return c
	}
	messagingOf := func(c *Config) *servicemain.Messaging { return &c.Messaging }
	stopOf := func(c *Config) *lifecycle.Config { return &c.Stop }
	configtest.Validation(t, valid, messagingOf, stopOf,
		configtest.Case[Config]{Name: "bad listen address", Mutate: func(c *Config) { c.HTTPAddr = "8080" }, WantErr: "PAYMENT_HTTP_ADDR"},
		configtest.Case[Config]{Name: "no topic", Mutate: func(c *Config) { c.OrdersTopic = "" }, WantErr: "PAYMENT_TOPIC_ORDERS"},
		configtest.Case[Config]{Name: "header limit too small", Mutate: func(c *Config) { c.HTTP.MaxHeaderBytes = 1024 }, WantErr: "max header bytes"},
	)
}

// TestNoCompiledInCredentials: see configtest.NoCompiledInCredentials.
func TestNoCompiledInCredentials(t *testing.T) {
	configtest.NoCompiledInCredentials(t, DefaultConfig(), DefaultConfig().Messaging)
}

// TestComposeSetsOnlyKnownVariables: see configtest.ComposeSetsOnlyKnownVariables.
func TestComposeSetsOnlyKnownVariables(t *testing.T) {
	configtest.ComposeSetsOnlyKnownVariables(t, "payment", "PAYMENT_", Config{})
}
