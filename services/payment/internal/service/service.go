// Package service is the payment service's composition root: its configuration
// and the one place where the database, the outbox and forwarder, the Kafka
// consumer and the HTTP endpoint are wired together and run.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/httpserver"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/pkg/messaging/poison"
	paymenthttp "github.com/onceflow/onceflow/services/payment/internal/adapters/http"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/kafka"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/payment/internal/app"
)

// Config is the payment service's configuration. main fills it from environment
// variables (the env tags) on top of DefaultConfig.
type Config struct {
	// HTTPAddr is where health, readiness (and admin) endpoints listen.
	HTTPAddr string `env:"PAYMENT_HTTP_ADDR"`
	// OrdersTopic is what the service consumes; PaymentsTopic is where its events go.
	OrdersTopic   string `env:"PAYMENT_TOPIC_ORDERS"`
	PaymentsTopic string `env:"PAYMENT_TOPIC_PAYMENTS"`
	// AdminToken protects the admin endpoints (/admin/poison); empty disables them.
	AdminToken string `env:"PAYMENT_ADMIN_TOKEN"`
	// HTTP: the server's timeouts and header limit, PAYMENT_HTTP_READ_HEADER_TIMEOUT,
	// PAYMENT_HTTP_READ_TIMEOUT, PAYMENT_HTTP_WRITE_TIMEOUT, PAYMENT_HTTP_IDLE_TIMEOUT,
	// PAYMENT_HTTP_MAX_HEADER_BYTES (see httpserver.Config).
	HTTP httpserver.Config `envPrefix:"PAYMENT_HTTP_"`
	// Messaging: PAYMENT_DB_DSN, PAYMENT_DB_MAX_OPEN_CONNS, PAYMENT_DB_STARTUP_TIMEOUT,
	// PAYMENT_KAFKA_BROKERS, PAYMENT_OUTBOX_*, PAYMENT_RETRY_*, PAYMENT_RETENTION_*,
	// PAYMENT_CONSUMER_GROUP, PAYMENT_POISON_TOPIC,
	// and the graceful stop's PAYMENT_STOP_DRAIN_TIMEOUT and PAYMENT_STOP_UNREADY_DELAY.
	Messaging messaging.Config `envPrefix:"PAYMENT_"`
}

// DefaultConfig is the configuration of `make run`: everything on 127.0.0.1,
// except the database DSN, which has no default (it holds credentials; a
// service started without PAYMENT_DB_DSN says so and exits non-zero, ADR 0026).
// deploy/local/run.sh, compose and the e2e harness pass it explicitly.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:      "127.0.0.1:8081",
		OrdersTopic:   events.TopicOrders,
		PaymentsTopic: events.TopicPayments,
		Messaging: messaging.Config{
			// DB.DSN: no default, see above.
			ConsumerGroup: "payment-service",
			PoisonTopic:   events.TopicPaymentPoison,
		},
	}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("PAYMENT_HTTP_ADDR %q: %w", c.HTTPAddr, err))
	}
	if c.OrdersTopic == "" || c.PaymentsTopic == "" {
		errs = append(errs, errors.New("PAYMENT_TOPIC_ORDERS and PAYMENT_TOPIC_PAYMENTS are required"))
	}
	return errors.Join(append(errs, c.HTTP.Defaults().Validate(), c.Messaging.Defaults().Validate())...)
}

// Option adjusts how Run wires the service. Production passes none; the
// fault-injection build's live in faults_enabled.go (ADR 21).
type Option func(*wiring)

// wiring is what an Option may adjust.
type wiring struct {
	logger *slog.Logger
	// node adjusts the messaging node.
	node []messaging.Option
	// payments, if set, wraps the repository the use cases see.
	payments func(app.Payments) app.Payments
}

// Run starts the payment service and blocks until ctx ends, then stops
// gracefully within PAYMENT_STOP_DRAIN_TIMEOUT: /readyz answers 503, in-flight
// messages finish, the forwarder commits its batch (messaging.Node.RunWithHTTP). It fails if the config is invalid, the database does not answer
// within the DB startup timeout, migrations fail or the HTTP address cannot be bound.
// Kafka being unreachable never makes it fail: it consumes once Kafka answers.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, opts ...Option) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	topics := []events.TopicSpec{
		{Name: cfg.OrdersTopic, Partitions: events.DefaultPartitions},
		{Name: cfg.PaymentsTopic, Partitions: events.DefaultPartitions},
		events.PoisonTopicSpec(cfg.Messaging.PoisonTopic),
	}
	w := wiring{logger: logger}
	for _, opt := range opts {
		opt(&w)
	}
	node, err := messaging.Start(ctx, cfg.Messaging, mariadb.Migrations, topics, logger, w.node...)
	if err != nil {
		return err
	}

	var payments app.Payments = mariadb.NewPayments(node.DB(), node.Outbox(), cfg.PaymentsTopic)
	if w.payments != nil {
		payments = w.payments(payments)
	}
	svc := app.New(payments, logger)
	node.Consume("payment.order-events", cfg.OrdersTopic, kafka.OrderEvents(svc))

	listener, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	poisonTool := poison.New(cfg.Messaging.Kafka, cfg.Messaging.PoisonTopic, node.DB())
	defer poisonTool.Close()
	api := paymenthttp.NewServer(node.Ready(node.DB().PingContext), logger)
	poison.Routes(api.Group("/admin/poison"), poisonTool, cfg.AdminToken)
	logger.Info("payment service starting", "http", listener.Addr().String())
	return node.RunWithHTTP(ctx, cfg.HTTP.Server(api), listener)
}
