package servicemain

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/onceflow/onceflow/pkg/httpserver"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/tracing"
)

// Common is the configuration every service has. A service embeds it in its
// own Config under its variable prefix, e.g. `envPrefix:"ORDER_"`, which gives
// ORDER_HTTP_ADDR, ORDER_HTTP_*, ORDER_DEBUG_ADDR, ORDER_ADMIN_TOKEN, ORDER_DB_*, ORDER_KAFKA_*,
// ORDER_OUTBOX_*, ORDER_RETRY_*, ORDER_RETENTION_*, ORDER_CONSUMER_GROUP,
// ORDER_POISON_TOPIC, ORDER_FAILURE_MODE, ORDER_STOP_*, ORDER_TRACING_* and
// ORDER_METRICS_SAMPLE_INTERVAL.
type Common struct {
	// HTTPAddr is where the service's HTTP server listens (host:port).
	HTTPAddr string `env:"HTTP_ADDR"`
	// HTTP: the server's timeouts, header limit and allowed host names
	// (HTTP_READ_HEADER_TIMEOUT, HTTP_READ_TIMEOUT, HTTP_WRITE_TIMEOUT,
	// HTTP_IDLE_TIMEOUT, HTTP_MAX_HEADER_BYTES, HTTP_ALLOWED_HOSTS; see
	// httpserver.Config).
	HTTP httpserver.Config `envPrefix:"HTTP_"`
	// DebugAddr, if set, is where the Go profiler (net/http/pprof) listens
	// (host:port; DEBUG_ADDR). Empty, the default, turns it off. It is not
	// part of the API: bind it to a loopback or otherwise private address.
	DebugAddr string `env:"DEBUG_ADDR"`
	// AdminToken protects the admin endpoints (/admin/poison); empty disables them.
	AdminToken string `env:"ADMIN_TOKEN"`
	// Messaging: DB_DSN, DB_MAX_OPEN_CONNS, DB_STARTUP_TIMEOUT, KAFKA_*,
	// OUTBOX_*, RETRY_*, RETENTION_*, CONSUMER_GROUP, POISON_TOPIC, FAILURE_MODE
	// (see servicemain.Messaging).
	Messaging Messaging
	// Stop: the graceful stop's STOP_DRAIN_TIMEOUT and STOP_UNREADY_DELAY (see
	// lifecycle.Config).
	Stop lifecycle.Config `envPrefix:"STOP_"`
	// Tracing: TRACING_EXPORTER (none or otlp), TRACING_ENDPOINT and
	// TRACING_SAMPLE_RATIO (see tracing.Config). Main installs it
	// before Run, so a service only starts spans.
	Tracing tracing.Config `envPrefix:"TRACING_"`
	// MetricsSampleInterval is how often the sampled gauges of GET /metrics
	// (outbox backlog and age, parked rows, consumer lag) are refreshed
	// (METRICS_SAMPLE_INTERVAL). Default 2 s; 100 ms..1 min. A scrape reads
	// the last sample, so the gauges are at most this old.
	MetricsSampleInterval time.Duration `env:"METRICS_SAMPLE_INTERVAL"`
}

// DefaultMetricsSampleInterval is MetricsSampleInterval's default.
const DefaultMetricsSampleInterval = 2 * time.Second

// SampleInterval returns MetricsSampleInterval, or its default if zero.
func (c Common) SampleInterval() time.Duration {
	if c.MetricsSampleInterval == 0 {
		return DefaultMetricsSampleInterval
	}
	return c.MetricsSampleInterval
}

// Validate reports every invalid field (defaults applied), naming the
// variables with prefix where the error is the service's own.
func (c Common) Validate(prefix string) error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("%sHTTP_ADDR %q: %w", prefix, c.HTTPAddr, err))
	}
	if c.DebugAddr != "" {
		if _, _, err := net.SplitHostPort(c.DebugAddr); err != nil {
			errs = append(errs, fmt.Errorf("%sDEBUG_ADDR %q: %w", prefix, c.DebugAddr, err))
		}
	}
	if d := c.SampleInterval(); d < 100*time.Millisecond || d > time.Minute {
		errs = append(errs, fmt.Errorf("%sMETRICS_SAMPLE_INTERVAL %s: must be between 100ms and 1m", prefix, d))
	}
	return errors.Join(append(errs, c.HTTP.Defaults().Validate(), c.Messaging.Defaults().Validate(), c.Stop.Defaults().Validate(), c.Tracing.Validate())...)
}
