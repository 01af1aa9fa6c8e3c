// Package service is the payment service's composition root: its configuration
// and the one place where the database, the outbox and forwarder, the Kafka
// consumer, the retention jobs and the HTTP endpoint are wired together and run
// (Run, read top to bottom).
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/deploy/dbusers"
	"github.com/onceflow/onceflow/pkg/apidoc"
	"github.com/onceflow/onceflow/pkg/audit"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/diagnose"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/httpserver"
	"github.com/onceflow/onceflow/pkg/jobs"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/lifecycle"
	"github.com/onceflow/onceflow/pkg/metrics"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/poison/poisonhttp"
	"github.com/onceflow/onceflow/pkg/problem"
	"github.com/onceflow/onceflow/pkg/servicedb"
	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/pkg/sqldb"
	paymenthttp "github.com/onceflow/onceflow/services/payment/internal/adapters/http"
	kafkaadapter "github.com/onceflow/onceflow/services/payment/internal/adapters/kafka"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/payment/internal/app"
)

// Config is the payment service's configuration. main fills it from environment
// variables (the env tags) on top of DefaultConfig.
type Config struct {
	// Common: where health, readiness and the admin endpoints listen
	// (PAYMENT_HTTP_ADDR), the server's limits (PAYMENT_HTTP_*),
	// PAYMENT_ADMIN_TOKEN, the messaging parts (PAYMENT_DB_*, PAYMENT_KAFKA_*,
	// PAYMENT_OUTBOX_*, PAYMENT_RETRY_*, PAYMENT_RETENTION_*,
	// PAYMENT_CONSUMER_GROUP, PAYMENT_POISON_TOPIC, PAYMENT_FAILURE_MODE), the
	// graceful stop (PAYMENT_STOP_*) and PAYMENT_METRICS_SAMPLE_INTERVAL.
	servicemain.Common `envPrefix:"PAYMENT_"`
	// OrdersTopic is what the service consumes; PaymentsTopic is where its events go.
	OrdersTopic   string `env:"PAYMENT_TOPIC_ORDERS"`
	PaymentsTopic string `env:"PAYMENT_TOPIC_PAYMENTS"`
}

// DefaultConfig fits `make run`: 127.0.0.1:8081, the saga's topics, and no
// database DSN, which holds credentials (PAYMENT_DB_DSN must be passed, ADR
// 0026; a service started without it says so and exits non-zero).
func DefaultConfig() Config {
	return Config{
		Common: servicemain.Common{
			HTTPAddr:  "127.0.0.1:8081",
			Messaging: servicemain.Messaging{ConsumerGroup: "payment-service", PoisonTopic: events.TopicPaymentPoison},
		},
		OrdersTopic:   events.TopicOrders,
		PaymentsTopic: events.TopicPayments,
	}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.OrdersTopic == "" || c.PaymentsTopic == "" {
		errs = append(errs, errors.New("PAYMENT_TOPIC_ORDERS and PAYMENT_TOPIC_PAYMENTS are required"))
	}
	return errors.Join(append(errs, c.Common.Validate("PAYMENT_"))...)
}

// Option adjusts how Run wires the service. Production passes none; the
// fault-injection build's live in faults_enabled.go.
type Option func(*wiring)

// wiring is what an Option may adjust.
type wiring struct {
	logger *slog.Logger
	// outbox adjusts the forwarder, consumer the consumers.
	outbox   []outbox.Option
	consumer []consumer.Option
	// payments, if set, wraps the repository the use cases see.
	payments func(app.Payments) app.Payments
	// migrations are more tables for the database, and appSQL the service
	// user's privileges on them (deploy/dbusers' -app.sql form).
	migrations []sqldb.Migrations
	appSQL     string
}

// OpenAPI returns the OpenAPI document the service serves at /openapi.json:
// the payment endpoint's own document with the Problem schema and the poison admin endpoints
// merged in (apidoc.Build). "payment openapi" prints it.
func OpenAPI() ([]byte, error) {
	return apidoc.Build(paymenthttp.OpenAPI, problem.OpenAPI, httpserver.OpenAPI, poisonhttp.OpenAPI, diagnose.OpenAPI)
}

// mountRoutes mounts on api, beside health and readiness, the poison admin
// endpoints with the dry run of a replay, the diagnosis of an order (behind the admin token too), GET /openapi.json and GET /metrics (with HTTP metrics for every
// route). Run and the route-coverage test share it, so the test sees the
// routes production serves. It fails if the OpenAPI document does not build.
func mountRoutes(api *echo.Echo, cfg Config, poisonTool *poison.Tool, dryRun poison.DryRunConfig, diagnosis echo.HandlerFunc, mx *metrics.Metrics) error {
	admin := api.Group("/admin/poison")
	poisonhttp.Routes(admin, poisonTool, cfg.AdminToken)
	poisonhttp.DryRunRoute(admin, poisonTool, cfg.AdminToken, dryRun)
	api.GET("/admin/diagnosis/orders/:id", diagnosis, poisonhttp.AdminOnly(cfg.AdminToken)...)
	doc, err := OpenAPI()
	if err != nil {
		return err
	}
	api.GET(apidoc.Path, apidoc.Handler(doc))
	mx.Register(api) // GET /metrics, and HTTP metrics for every route
	return nil
}

// Run starts the payment service and blocks until ctx ends, then stops
// gracefully within PAYMENT_STOP_DRAIN_TIMEOUT: /readyz answers 503, in-flight
// messages finish, the forwarder commits its batch (lifecycle.Run). It fails if
// the config is invalid, the database does not answer within the DB startup
// timeout, migrations fail or the HTTP address cannot be bound. Kafka being
// unreachable never makes it fail: it consumes once Kafka answers.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, opts ...Option) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	w := wiring{logger: logger}
	for _, opt := range opts {
		opt(&w)
	}
	m, wlog := cfg.Messaging.Defaults(), watermill.NewSlogLogger(logger)

	// The database: the patterns' tables (outbox, inbox, ...), then accounts,
	// payments and the ledger, migrated as the migration user
	// (PAYMENT_DB_MIGRATE_DSN, closed after), who then grants the service user
	// its privileges, table by table (deploy/dbusers/payment-app.sql); the
	// service works as that user (PAYMENT_DB_DSN).
	users := dbusers.Payment
	users.AppSQL += w.appSQL
	db, err := users.OpenAndMigrate(ctx, m.DB, logger, append(servicedb.Migrations(mariadb.Migrations), w.migrations...)...)
	if err != nil {
		return err
	}
	// Kafka: the topics this service creates (when Kafka answers), and the
	// publishers of the outbox's relay and of the poison queue.
	topics := kafka.NewTopics(m.Kafka, logger,
		kafka.TopicSpec{Name: cfg.OrdersTopic, Partitions: events.DefaultPartitions},
		kafka.TopicSpec{Name: cfg.PaymentsTopic, Partitions: events.DefaultPartitions},
		kafka.PoisonTopicSpec(m.PoisonTopic))
	// Metrics: this service's own registry; Watermill's component
	// measures the publishers, the consumers' router and handlers.
	mx := metrics.New()
	kafkaOut, poisonOut := mx.Publisher(m.Kafka.NewPublisher(wlog)), mx.Publisher(m.Kafka.NewPoisonPublisher(wlog))
	// The outbox the repository writes to and its relay to Kafka: the
	// forwarder (parking the rows Kafka can never take), or with
	// PAYMENT_OUTBOX_RELAY=debezium none (Debezium tails the binary log).
	ob, forwarder, err := servicemain.NewOutbox(ctx, m, db, kafkaOut, topics, mx.Forwarded, nil, wlog, w.outbox...)
	if err != nil {
		return err
	}

	// The application, and the consumer of order events (inbox + retry +
	// poison queue).
	repo := mariadb.NewPayments(db, ob, cfg.PaymentsTopic)
	var payments app.Payments = repo
	if w.payments != nil {
		payments = w.payments(payments)
	}
	svc := app.New(payments, logger)

	consumers, err := servicemain.NewConsumers(m, db, poisonOut, topics, mx, logger, w.consumer...)
	if err != nil {
		return err
	}
	consumers.Handle("payment.order-events", cfg.OrdersTopic, kafkaadapter.OrderEvents(svc))

	// Periodic jobs: retention of the inbox and the poison replay records.
	periodic := jobs.New(logger)
	servicemain.RetainTables(m, periodic, db)
	// The gauges of /metrics that need a query (outbox, parked rows, lag).
	lag := kafka.NewLagReader(m.Kafka)
	periodic.Every("metrics-sampler", cfg.SampleInterval(), mx.NewSampler(db, lag, consumers.Subscriptions, logger).Job)
	// The delivery auditor: the ledger's promises (no order charged twice, no
	// refund above its charge), proved from this service's own data.
	if !m.Audit.Disabled {
		auditor, err := audit.New(audit.Config{DB: db, Checks: repo.LedgerChecks(m.Audit.Settle), Registry: mx.Registry})
		if err != nil {
			return err
		}
		periodic.Every("audit", m.Audit.Interval, auditor.Run)
	}

	// Health (failing while a consumer gave up), readiness (also
	// failing from the moment the stop begins) and the
	// poison admin endpoints.
	stop := lifecycle.New(cfg.Stop, logger)
	poisonTool := poison.New(m.Kafka, m.PoisonTopic, db)
	defer poisonTool.Close()
	api := paymenthttp.NewServer(stop.Ready(func(ctx context.Context) error {
		return errors.Join(consumers.Health(), db.PingContext(ctx))
	}), consumers.HealthCheck, logger)
	// What the order service's diagnosis asks: the order's payment and what
	// holds its messages here.
	prober := diagnose.Prober{Service: "payment", DB: db, Group: m.ConsumerGroup, Consumers: consumers}
	diagnosis := paymenthttp.Diagnosis(func(ctx context.Context, orderID string) (paymenthttp.DiagnosisReport, error) {
		// A paused consumer's database may not answer: what the consumers
		// know from memory is reported even then.
		holds, err := prober.Holds(ctx, orderID)
		if err != nil {
			return paymenthttp.DiagnosisReport{}, err
		}
		status, err := repo.Status(ctx, orderID)
		if err != nil && len(holds) == 0 {
			return paymenthttp.DiagnosisReport{}, err
		}
		return paymenthttp.DiagnosisReport{OrderID: orderID, PaymentStatus: status, ConsumerGroup: m.ConsumerGroup, Holds: holds}, nil
	})
	// The dry run of a replay runs the consumer's handler, behind its inbox,
	// in a transaction that is rolled back.
	dryRun := poison.DryRunConfig{Handler: consumers.Handler, State: mariadb.PaymentState}
	if err := mountRoutes(api, cfg, poisonTool, dryRun, diagnosis, mx); err != nil {
		return err
	}

	// Run everything until ctx ends, then stop in ADR 24's order.
	return stop.Run(ctx, lifecycle.Parts{
		HTTP: cfg.HTTP.Server(api), HTTPAddr: cfg.HTTPAddr,
		Debug: cfg.DebugServer(), DebugAddr: cfg.DebugAddr,
		Consumers: consumers, Forwarder: forwarder, Jobs: periodic,
		Clients: []io.Closer{kafkaOut, poisonOut, lag, db},
	})
}
