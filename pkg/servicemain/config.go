package servicemain

import (
	"errors"
	"fmt"
	"net"

	"github.com/onceflow/onceflow/pkg/httpserver"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/pkg/tracing"
)

// Common is the configuration every service has. A service embeds it in its
// own Config under its variable prefix, e.g. `envPrefix:"ORDER_"`, which gives
// ORDER_HTTP_ADDR, ORDER_HTTP_*, ORDER_ADMIN_TOKEN, ORDER_DB_*, ORDER_KAFKA_*,
// ORDER_OUTBOX_*, ORDER_RETRY_*, ORDER_RETENTION_*, ORDER_CONSUMER_GROUP,
// ORDER_POISON_TOPIC, ORDER_FAILURE_MODE, ORDER_STOP_* and ORDER_TRACING_*.
type Common struct {
	// HTTPAddr is where the service's HTTP server listens (host:port).
	HTTPAddr string `env:"HTTP_ADDR"`
	// HTTP: the server's timeouts and header limit (HTTP_READ_HEADER_TIMEOUT,
	// HTTP_READ_TIMEOUT, HTTP_WRITE_TIMEOUT, HTTP_IDLE_TIMEOUT,
	// HTTP_MAX_HEADER_BYTES; see httpserver.Config).
	HTTP httpserver.Config `envPrefix:"HTTP_"`
	// AdminToken protects the admin endpoints (/admin/poison); empty disables them.
	AdminToken string `env:"ADMIN_TOKEN"`
	// Messaging: DB_DSN, DB_MAX_OPEN_CONNS, DB_STARTUP_TIMEOUT, KAFKA_*,
	// OUTBOX_*, RETRY_*, RETENTION_*, CONSUMER_GROUP, POISON_TOPIC, FAILURE_MODE
	// (see messaging.Config).
	Messaging messaging.Config
	// Stop: the graceful stop's STOP_DRAIN_TIMEOUT and STOP_UNREADY_DELAY (see
	// lifecycle.Config).
	Stop lifecycle.Config `envPrefix:"STOP_"`
	// Tracing: TRACING_EXPORTER (none or otlp), TRACING_ENDPOINT and
	// TRACING_SAMPLE_RATIO (see tracing.Config; ADR 0039). Main installs it
	// before Run, so a service only starts spans.
	Tracing tracing.Config `envPrefix:"TRACING_"`
}

// Validate reports every invalid field (defaults applied), naming the
// variables with prefix where the error is the service's own.
func (c Common) Validate(prefix string) error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("%sHTTP_ADDR %q: %w", prefix, c.HTTPAddr, err))
	}
	return errors.Join(append(errs, c.HTTP.Defaults().Validate(), c.Messaging.Defaults().Validate(), c.Stop.Defaults().Validate(), c.Tracing.Validate())...)
}
