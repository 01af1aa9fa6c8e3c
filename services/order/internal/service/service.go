// Package service is the order service's composition root: its configuration and
// the one place where the database, the outbox and forwarder, the Kafka consumer
// and the HTTP API are wired together and run.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/httpserver"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/pkg/messaging/poison"
	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
	"github.com/onceflow/onceflow/services/order/internal/adapters/kafka"
	"github.com/onceflow/onceflow/services/order/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// Config is the order service's configuration. main fills it from environment
// variables (the env tags) on top of DefaultConfig.
type Config struct {
	// HTTPAddr is where the order API listens.
	HTTPAddr string `env:"ORDER_HTTP_ADDR"`
	// RequestTimeout bounds the work of one HTTP request, reading its body
	// included. It must be less than ORDER_HTTP_WRITE_TIMEOUT.
	RequestTimeout time.Duration `env:"ORDER_REQUEST_TIMEOUT"`
	// HTTP: the server's timeouts and header limit, ORDER_HTTP_READ_HEADER_TIMEOUT,
	// ORDER_HTTP_READ_TIMEOUT, ORDER_HTTP_WRITE_TIMEOUT, ORDER_HTTP_IDLE_TIMEOUT,
	// ORDER_HTTP_MAX_HEADER_BYTES (see httpserver.Config).
	HTTP httpserver.Config `envPrefix:"ORDER_HTTP_"`
	// PaymentTimeout is how long an order may wait for its payment before the
	// service cancels it (reason payment_timeout); a charge that happens after
	// that is refunded.
	PaymentTimeout time.Duration `env:"ORDER_PAYMENT_TIMEOUT"`
	// TimeoutScanInterval is how often the service looks for such orders.
	TimeoutScanInterval time.Duration `env:"ORDER_TIMEOUT_SCAN_INTERVAL"`
	// OrdersTopic is where the service's events go; PaymentsTopic is what it consumes.
	OrdersTopic   string `env:"ORDER_TOPIC_ORDERS"`
	PaymentsTopic string `env:"ORDER_TOPIC_PAYMENTS"`
	// PaymentPoisonTopic is the payment service's poison topic, which the order
	// timeline reads too.
	PaymentPoisonTopic string `env:"ORDER_TOPIC_PAYMENT_POISON"`
	// IdempotencyKeyTTL is how long an Idempotency-Key is remembered after its
	// request took effect: a retry within it is answered from the stored result,
	// one after it runs as a new request. It must exceed the longest time a client
	// keeps retrying (ADR 23). Between 1 minute and 30 days.
	IdempotencyKeyTTL time.Duration `env:"ORDER_IDEMPOTENCY_KEY_TTL"`
	// IdempotencyCleanupInterval is how often expired keys are deleted.
	IdempotencyCleanupInterval time.Duration `env:"ORDER_IDEMPOTENCY_CLEANUP_INTERVAL"`
	// IdempotencyCleanupBatch bounds the rows one cleanup transaction deletes
	// (at most 10 such transactions per run); 1 to 10000.
	IdempotencyCleanupBatch int `env:"ORDER_IDEMPOTENCY_CLEANUP_BATCH"`
	// AdminToken protects the admin endpoints (/admin/poison); empty disables them.
	AdminToken string `env:"ORDER_ADMIN_TOKEN"`
	// TimelineMaxAge: order timeline entries older than this are deleted (in
	// batches, by the retention job, ADR 0025). Default 30 days.
	TimelineMaxAge time.Duration `env:"ORDER_RETENTION_TIMELINE_MAX_AGE"`
	// Messaging: ORDER_DB_DSN, ORDER_DB_MAX_OPEN_CONNS, ORDER_DB_STARTUP_TIMEOUT,
	// ORDER_KAFKA_BROKERS, ORDER_OUTBOX_*, ORDER_RETRY_*, ORDER_RETENTION_*,
	// ORDER_CONSUMER_GROUP, ORDER_POISON_TOPIC,
	// and the graceful stop's ORDER_STOP_DRAIN_TIMEOUT and ORDER_STOP_UNREADY_DELAY.
	Messaging messaging.Config `envPrefix:"ORDER_"`
}

// DefaultConfig is the configuration of `make run`: everything on 127.0.0.1,
// except the database DSN, which has no default (it holds credentials; a
// service started without ORDER_DB_DSN says so and exits non-zero, ADR 0026).
// deploy/local/run.sh, compose and the e2e harness pass it explicitly.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:                   "127.0.0.1:8080",
		RequestTimeout:             5 * time.Second,
		PaymentTimeout:             2 * time.Minute,
		TimeoutScanInterval:        time.Second,
		IdempotencyKeyTTL:          app.DefaultKeyTTL,
		IdempotencyCleanupInterval: time.Minute,
		IdempotencyCleanupBatch:    500,
		OrdersTopic:                events.TopicOrders,
		PaymentsTopic:              events.TopicPayments,
		PaymentPoisonTopic:         events.TopicPaymentPoison,
		TimelineMaxAge:             30 * 24 * time.Hour,
		Messaging: messaging.Config{
			// DB.DSN: no default, see above.
			ConsumerGroup: "order-service",
			PoisonTopic:   events.TopicOrderPoison,
		},
	}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("ORDER_HTTP_ADDR %q: %w", c.HTTPAddr, err))
	}
	if c.RequestTimeout <= 0 || c.PaymentTimeout <= 0 || c.TimeoutScanInterval <= 0 {
		errs = append(errs, errors.New("ORDER_REQUEST_TIMEOUT, ORDER_PAYMENT_TIMEOUT and ORDER_TIMEOUT_SCAN_INTERVAL must be positive"))
	}
	if c.IdempotencyKeyTTL < time.Minute || c.IdempotencyKeyTTL > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("ORDER_IDEMPOTENCY_KEY_TTL %s: must be between 1m and 720h", c.IdempotencyKeyTTL))
	}
	if c.IdempotencyCleanupInterval <= 0 {
		errs = append(errs, errors.New("ORDER_IDEMPOTENCY_CLEANUP_INTERVAL must be positive"))
	}
	if c.IdempotencyCleanupBatch < 1 || c.IdempotencyCleanupBatch > 10000 {
		errs = append(errs, fmt.Errorf("ORDER_IDEMPOTENCY_CLEANUP_BATCH %d: must be between 1 and 10000", c.IdempotencyCleanupBatch))
	}
	if c.TimelineMaxAge <= 0 {
		errs = append(errs, errors.New("ORDER_RETENTION_TIMELINE_MAX_AGE must be positive"))
	}
	if c.OrdersTopic == "" || c.PaymentsTopic == "" || c.PaymentPoisonTopic == "" {
		errs = append(errs, errors.New("ORDER_TOPIC_ORDERS, ORDER_TOPIC_PAYMENTS and ORDER_TOPIC_PAYMENT_POISON are required"))
	}
	httpCfg := c.HTTP.Defaults()
	if c.RequestTimeout >= httpCfg.WriteTimeout {
		errs = append(errs, fmt.Errorf("ORDER_REQUEST_TIMEOUT %s must be less than ORDER_HTTP_WRITE_TIMEOUT %s", c.RequestTimeout, httpCfg.WriteTimeout))
	}
	return errors.Join(append(errs, httpCfg.Validate(), c.Messaging.Defaults().Validate())...)
}

// Option adjusts how Run wires the service. Production passes none; the
// fault-injection build's live in faults_enabled.go (ADR 21).
type Option func(*wiring)

// wiring is what an Option may adjust.
type wiring struct {
	// node adjusts the messaging node.
	node []messaging.Option
	// unboundedRequestID: see orderhttp.Config.UnboundedRequestID.
	unboundedRequestID bool
}

// Run starts the order service and blocks until ctx ends, then stops gracefully
// within ORDER_STOP_DRAIN_TIMEOUT: /readyz answers 503, in-flight HTTP requests
// and messages finish, the forwarder commits its batch (messaging.Node.RunWithHTTP).
// It fails if the config is invalid, the database does not answer within
// the DB startup timeout, migrations fail or the HTTP address cannot be bound. Kafka being
// unreachable never makes it fail: orders are accepted and their events wait in
// the outbox.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, opts ...Option) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	topics := []events.TopicSpec{
		{Name: cfg.OrdersTopic, Partitions: events.DefaultPartitions},
		{Name: cfg.PaymentsTopic, Partitions: events.DefaultPartitions},
		events.PoisonTopicSpec(cfg.Messaging.PoisonTopic),
		events.PoisonTopicSpec(cfg.PaymentPoisonTopic),
	}
	var w wiring
	for _, opt := range opts {
		opt(&w)
	}
	node, err := messaging.Start(ctx, cfg.Messaging, mariadb.Migrations, topics, logger, w.node...)
	if err != nil {
		return err
	}

	svc := app.New(mariadb.NewOrders(node.DB(), node.Outbox(), cfg.OrdersTopic), mariadb.NewTimeline(node.DB()), logger)
	svc.KeyTTL = cfg.IdempotencyKeyTTL
	node.Consume("order.payment-events", cfg.PaymentsTopic, kafka.PaymentEvents(svc))
	for _, p := range kafka.TimelineProjections(kafka.TimelineTopics{Orders: cfg.OrdersTopic, Payments: cfg.PaymentsTopic,
		OrderPoison: cfg.Messaging.PoisonTopic, PaymentPoison: cfg.PaymentPoisonTopic}, svc) {
		node.Project(p.Name, p.Topic, p.Handler)
	}
	node.Retain("order_timeline", "kafka_time", cfg.TimelineMaxAge)
	node.Every("payment-timeout", cfg.TimeoutScanInterval, func(ctx context.Context) error {
		n, err := svc.CancelStalePending(ctx, cfg.PaymentTimeout, 100)
		if n > 0 {
			logger.Info("cancelled orders whose payment timed out", "count", n)
		}
		return err
	})

	node.Every("idempotency-key-cleanup", cfg.IdempotencyCleanupInterval, func(ctx context.Context) error {
		n, err := svc.DeleteExpiredKeys(ctx, cfg.IdempotencyCleanupBatch, 10)
		if n > 0 {
			logger.Info("deleted expired idempotency keys", "count", n)
		}
		return err
	})

	poisonTool := poison.New(cfg.Messaging.Kafka, cfg.Messaging.PoisonTopic, node.DB())
	defer poisonTool.Close()
	api := orderhttp.NewServer(svc, orderhttp.Config{
		RequestTimeout: cfg.RequestTimeout,
		Ready:          node.Ready(node.DB().PingContext),

		UnboundedRequestID: w.unboundedRequestID,
	}, logger)
	poison.Routes(api.Group("/admin/poison"), poisonTool, cfg.AdminToken)
	listener, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	logger.Info("order service starting", "http", listener.Addr().String())
	return node.RunWithHTTP(ctx, cfg.HTTP.Server(api), listener)
}
