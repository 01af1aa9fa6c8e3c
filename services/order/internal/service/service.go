// Package service is the order service's composition root: its configuration and
// the one place where the database, the outbox and forwarder, the Kafka
// consumers, the periodic jobs and the HTTP API are wired together and run
// (Run, read top to bottom).
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

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
	"github.com/onceflow/onceflow/services/order/internal/adapters/console"
	"github.com/onceflow/onceflow/services/order/internal/adapters/diagnosis"
	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
	kafkaadapter "github.com/onceflow/onceflow/services/order/internal/adapters/kafka"
	"github.com/onceflow/onceflow/services/order/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// Config is the order service's configuration. main fills it from environment
// variables (the env tags) on top of DefaultConfig.
type Config struct {
	// Common: where the order API listens (ORDER_HTTP_ADDR), its server limits
	// (ORDER_HTTP_*), ORDER_ADMIN_TOKEN, the messaging parts (ORDER_DB_*,
	// ORDER_KAFKA_*, ORDER_OUTBOX_*, ORDER_RETRY_*, ORDER_RETENTION_*,
	// ORDER_CONSUMER_GROUP, ORDER_POISON_TOPIC, ORDER_FAILURE_MODE), the
	// graceful stop (ORDER_STOP_*) and ORDER_METRICS_SAMPLE_INTERVAL.
	servicemain.Common `envPrefix:"ORDER_"`
	// RequestTimeout bounds the work of one HTTP request, reading its body
	// included. It must be less than ORDER_HTTP_WRITE_TIMEOUT.
	RequestTimeout time.Duration `env:"ORDER_REQUEST_TIMEOUT"`
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
	// keeps retrying. Between 1 minute and 30 days.
	IdempotencyKeyTTL time.Duration `env:"ORDER_IDEMPOTENCY_KEY_TTL"`
	// IdempotencyCleanupInterval is how often expired keys are deleted.
	IdempotencyCleanupInterval time.Duration `env:"ORDER_IDEMPOTENCY_CLEANUP_INTERVAL"`
	// IdempotencyCleanupBatch bounds the rows one cleanup transaction deletes
	// (at most 10 such transactions per run); 1 to 10000.
	IdempotencyCleanupBatch int `env:"ORDER_IDEMPOTENCY_CLEANUP_BATCH"`
	// TimelineMaxAge: order timeline entries older than this are deleted (in
	// batches, by the retention job). Default 30 days.
	TimelineMaxAge time.Duration `env:"ORDER_RETENTION_TIMELINE_MAX_AGE"`
	// EventVersions is the schema version the service writes per event type,
	// e.g. ORDER_EVENT_VERSIONS="order.placed:2"; a type not named is written
	// in its default write version (events.DefaultWriteVersion: 1 for every
	// type today). Name a new version only once every consumer of the type
	// decodes it: a consumer that does not poisons it (unsupported_version), and
	// a replay after its upgrade completes it. Unknown types and
	// versions this build cannot write fail the start.
	EventVersions events.Versions `env:"ORDER_EVENT_VERSIONS"`
	// ConsolePaymentURL is the payment service's base URL as this service
	// reaches it (default http://127.0.0.1:8081): the console (GET /console,
	// ADR 0041) reads its /metrics and proxies its /admin/poison endpoints,
	// and the diagnosis of an order asks its /admin/diagnosis/orders/{id}
	// with ORDER_ADMIN_TOKEN (give both services the same admin token).
	// Empty: the console shows the payment service as not configured and the
	// diagnosis names it unreachable.
	ConsolePaymentURL string `env:"ORDER_CONSOLE_PAYMENT_URL"`
}

// DefaultConfig is what `make run` needs: the API on 127.0.0.1:8080, the saga's
// topics, and no database DSN (credentials are never compiled in: without
// ORDER_DB_DSN the service says so and exits non-zero, ADR 0026; run.sh,
// compose and the e2e harness pass it).
func DefaultConfig() Config {
	return Config{
		Common: servicemain.Common{
			HTTPAddr:  "127.0.0.1:8080",
			Messaging: servicemain.Messaging{ConsumerGroup: "order-service", PoisonTopic: events.TopicOrderPoison},
		},
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
		ConsolePaymentURL:          "http://127.0.0.1:8081",
	}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
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
	if err := console.ValidURL(c.ConsolePaymentURL); err != nil {
		errs = append(errs, fmt.Errorf("ORDER_CONSOLE_PAYMENT_URL: %w", err))
	}
	if err := c.EventVersions.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("ORDER_EVENT_VERSIONS: %w", err))
	}
	httpCfg := c.HTTP.Defaults()
	if c.RequestTimeout >= httpCfg.WriteTimeout {
		errs = append(errs, fmt.Errorf("ORDER_REQUEST_TIMEOUT %s must be less than ORDER_HTTP_WRITE_TIMEOUT %s", c.RequestTimeout, httpCfg.WriteTimeout))
	}
	return errors.Join(append(errs, c.Common.Validate("ORDER_"))...)
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
	// migrations are more tables for the database, and appSQL the service
	// user's privileges on them (deploy/dbusers' -app.sql form).
	migrations []sqldb.Migrations
	appSQL     string
}

// OpenAPI returns the OpenAPI document the service serves at /openapi.json:
// the order API's own document with the Problem schema and the poison admin endpoints
// merged in (apidoc.Build). "order openapi" prints it.
func OpenAPI() ([]byte, error) {
	return apidoc.Build(orderhttp.OpenAPI, problem.OpenAPI, httpserver.OpenAPI, poisonhttp.OpenAPI, diagnose.OpenAPI)
}

// mountRoutes mounts on api, beside the order API's own routes, the poison
// admin endpoints with the dry run of a replay, the diagnosis of an order and
// the stuck list (behind the admin token too), the live console, GET
// /openapi.json and GET /metrics (with HTTP metrics for every route). Run and
// the route-coverage test share it, so the test sees the routes production
// serves. It fails if the OpenAPI
// document does not build (OpenAPI) or the console's payment URL is invalid.
func mountRoutes(api *echo.Echo, cfg Config, poisonTool *poison.Tool, dryRun poison.DryRunConfig, svc *app.Service, stats console.Store, mx *metrics.Metrics, logger *slog.Logger) error {
	admin := api.Group("/admin/poison")
	poisonhttp.Routes(admin, poisonTool, cfg.AdminToken)
	poisonhttp.DryRunRoute(admin, poisonTool, cfg.AdminToken, dryRun)
	api.GET("/orders/:id/diagnosis", orderhttp.Diagnosis(svc), poisonhttp.AdminOnly(cfg.AdminToken)...)
	api.GET("/admin/orders/stuck", orderhttp.Stuck(svc), poisonhttp.AdminOnly(cfg.AdminToken)...)
	// The live console: shows data to anyone who reaches the API; its actions
	// are the admin endpoints above (and the payment service's, proxied).
	if err := console.Routes(api, console.Config{
		Source: &console.Scraper{
			OrderMetricsURL:   "http://" + servicemain.LocalAddr(cfg.HTTPAddr) + "/metrics",
			PaymentMetricsURL: console.JoinURL(cfg.ConsolePaymentURL, "/metrics"),
			Store:             stats,
		},
		PaymentAdminURL: cfg.ConsolePaymentURL,
	}, logger); err != nil {
		return err
	}
	doc, err := OpenAPI()
	if err != nil {
		return err
	}
	api.GET(apidoc.Path, apidoc.Handler(doc))
	mx.Register(api) // GET /metrics, and HTTP metrics for every route
	return nil
}

// Run starts the order service and blocks until ctx ends, then stops gracefully
// within ORDER_STOP_DRAIN_TIMEOUT: /readyz answers 503, in-flight HTTP requests
// and messages finish, the forwarder commits its batch (lifecycle.Run).
// It fails if the config is invalid, the database does not answer within
// the DB startup timeout, migrations fail or the HTTP address cannot be bound. Kafka being
// unreachable never makes it fail: orders are accepted and their events wait in
// the outbox.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, opts ...Option) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	m, wlog := cfg.Messaging.Defaults(), watermill.NewSlogLogger(logger)
	w := wiring{logger: logger}
	for _, opt := range opts {
		opt(&w)
	}

	// The database: the patterns' tables (outbox, inbox, ...), then the order tables,
	// migrated as the migration user (ORDER_DB_MIGRATE_DSN, closed after), who
	// then grants the service user its privileges, table by table
	// (deploy/dbusers/order-app.sql); the service works as that user
	// (ORDER_DB_DSN).
	users := dbusers.Order
	users.AppSQL += w.appSQL
	db, err := users.OpenAndMigrate(ctx, m.DB, logger, append(servicedb.Migrations(mariadb.Migrations), w.migrations...)...)
	if err != nil {
		return err
	}
	// Kafka: the topics this service creates (when Kafka answers), and the
	// publishers of the forwarder and of the poison queue.
	topics := kafka.NewTopics(m.Kafka, logger,
		kafka.TopicSpec{Name: cfg.OrdersTopic, Partitions: events.DefaultPartitions},
		kafka.TopicSpec{Name: cfg.PaymentsTopic, Partitions: events.DefaultPartitions},
		kafka.PoisonTopicSpec(m.PoisonTopic),
		kafka.PoisonTopicSpec(cfg.PaymentPoisonTopic))
	// Metrics: this service's own registry; Watermill's component
	// measures the publishers, the consumers' router and handlers.
	mx := metrics.New(app.SagaOutcomes...)
	kafkaOut, poisonOut := mx.Publisher(m.Kafka.NewPublisher(wlog)), mx.Publisher(m.Kafka.NewPoisonPublisher(wlog))

	// The outbox the repositories write to and its relay to Kafka: the
	// forwarder (parking the rows Kafka can never take), or with
	// ORDER_OUTBOX_RELAY=debezium none (Debezium tails the binary log); and the
	// consumers (inbox + retry + poison queue).
	// Each event written leaves a receipt for the delivery auditor (below),
	// unless it is off or Debezium relays: its check needs a relay that
	// keeps a row until Kafka acknowledged it.
	var receipts outbox.Receipts
	if !m.Audit.Disabled && m.Outbox.Relay != outbox.RelayDebezium {
		receipts = audit.WriteReceipts
	}
	ob, forwarder, err := servicemain.NewOutbox(ctx, m, db, kafkaOut, topics, mx.Forwarded, receipts, wlog, w.outbox...)
	if err != nil {
		return err
	}
	consumers, err := servicemain.NewConsumers(m, db, poisonOut, topics, mx, logger, w.consumer...)
	if err != nil {
		return err
	}

	// The application, and what calls it from Kafka.
	orders := mariadb.NewOrders(db, ob, cfg.OrdersTopic)
	timeline := mariadb.NewTimeline(db)
	svc := app.New(orders, timeline, logger)
	svc.KeyTTL = cfg.IdempotencyKeyTTL
	svc.EventVersions = cfg.EventVersions
	svc.Outcomes = mx // onceflow_saga_outcomes_total
	svc.AfterCommit = func(ctx context.Context, fn func()) {
		if !sqldb.OnCommit(ctx, new(byte), fn) { // a key of its own: every outcome is told
			fn()
		}
	}
	// The diagnosis of an order and the stuck list: this service's own
	// holds, the payment service's (asked with this service's admin token),
	// the timeline and the consumer groups' positions in Kafka (over the
	// client that also samples the lag for /metrics).
	lag := kafka.NewLagReader(m.Kafka)
	svc.Diagnosis = app.DiagnosisConfig{
		Holds: diagnosis.Holds{Prober: diagnose.Prober{Service: "order", DB: db, Group: m.ConsumerGroup,
			Consumers: consumers}},
		Payment:        diagnosis.Payment{BaseURL: cfg.ConsolePaymentURL, Token: cfg.AdminToken},
		PaymentTimeout: cfg.PaymentTimeout,
		NotDone:        orders,
		PoisonTopics:   map[string]string{m.PoisonTopic: "order", cfg.PaymentPoisonTopic: "payment"},
		ConsumedBy:     map[string]string{cfg.OrdersTopic: "payment", cfg.PaymentsTopic: "order"},
		Group:          m.ConsumerGroup,
		Groups:         diagnosis.Groups{Lag: lag},
	}
	consumers.Handle("order.payment-events", cfg.PaymentsTopic, kafkaadapter.PaymentEvents(svc))
	for _, p := range kafkaadapter.TimelineProjections(kafkaadapter.TimelineTopics{Orders: cfg.OrdersTopic, Payments: cfg.PaymentsTopic,
		OrderPoison: m.PoisonTopic, PaymentPoison: cfg.PaymentPoisonTopic}, svc) {
		consumers.Project(p.Name, p.Topic, p.Handler)
	}

	// Periodic jobs: retention, payment timeouts, expired idempotency keys.
	periodic := jobs.New(logger)
	servicemain.RetainTables(m, periodic, db)
	m.Retention.Retain(periodic, db, "order_timeline", "kafka_time", cfg.TimelineMaxAge)
	periodic.Every("payment-timeout", cfg.TimeoutScanInterval, func(ctx context.Context) error {
		n, err := svc.CancelStalePending(ctx, cfg.PaymentTimeout, 100)
		if n > 0 {
			logger.Info("cancelled orders whose payment timed out", "count", n)
		}
		return err
	})
	// The gauges of /metrics that need a query (outbox, parked rows, lag).
	periodic.Every("metrics-sampler", cfg.SampleInterval(), mx.NewSampler(db, lag, consumers.Subscriptions, logger).Job)
	// The age of the oldest order the saga has not finished (two index reads).
	oldestNotDone := prometheus.NewGauge(prometheus.GaugeOpts{Name: "onceflow_orders_oldest_not_done_age_seconds",
		Help: "How long the oldest order the saga has not finished (PENDING, or cancelled and paid awaiting its refund) has waited."})
	mx.Registry.MustRegister(oldestNotDone)
	periodic.Every("oldest-not-done", cfg.SampleInterval(), func(ctx context.Context) error {
		age, err := svc.OldestNotDoneAge(ctx)
		if err == nil {
			oldestNotDone.Set(age.Seconds())
		}
		return err
	})
	// The delivery auditor: every order event the outbox wrote (its
	// receipt) reached Kafka, as the timeline's projection of the orders
	// topic read it back.
	if receipts != nil {
		reader := ""
		for _, sub := range consumers.Subscriptions() {
			if sub.Topic == cfg.OrdersTopic && sub.Group != m.ConsumerGroup {
				reader = sub.Group
			}
		}
		rows, ackedOffsets := ob.Tables()
		delivery, err := audit.DeliveryCheck(audit.DeliveryConfig{DB: db, Topic: cfg.OrdersTopic, OutboxTable: rows,
			AckedOffsets: ackedOffsets, Reader: reader, Kafka: lag, Settle: m.Audit.Settle,
			EventTypes: []string{string(events.TypeOrderPlaced), string(events.TypeOrderCancelled)},
			Seen: func(ctx context.Context, rs []audit.Receipt) (map[string]bool, error) {
				return timeline.Seen(ctx, cfg.OrdersTopic, rs)
			}})
		if err != nil {
			return err
		}
		auditor, err := audit.New(audit.Config{DB: db, Checks: []audit.Check{delivery}, Registry: mx.Registry})
		if err != nil {
			return err
		}
		periodic.Every("audit", m.Audit.Interval, auditor.Run)
	}
	periodic.Every("idempotency-key-cleanup", cfg.IdempotencyCleanupInterval, func(ctx context.Context) error {
		n, err := svc.DeleteExpiredKeys(ctx, cfg.IdempotencyCleanupBatch, 10)
		if n > 0 {
			logger.Info("deleted expired idempotency keys", "count", n)
		}
		return err
	})

	// The HTTP API, with the poison admin endpoints; /readyz fails from the
	// moment the stop begins.
	stop := lifecycle.New(cfg.Stop, logger)
	poisonTool := poison.New(m.Kafka, m.PoisonTopic, db)
	defer poisonTool.Close()
	api := orderhttp.NewServer(svc, orderhttp.Config{
		RequestTimeout: cfg.RequestTimeout,
		Ready: stop.Ready(func(ctx context.Context) error {
			return errors.Join(consumers.Health(), db.PingContext(ctx))
		}),
		Alive: consumers.HealthCheck, // fails while a consumer gave up
	}, logger)
	// The dry run of a replay runs the consumer's handler, behind its inbox,
	// in a transaction that is rolled back.
	dryRun := poison.DryRunConfig{Handler: consumers.Handler, State: mariadb.OrderState}
	if err := mountRoutes(api, cfg, poisonTool, dryRun, svc, mariadb.NewConsoleStats(db), mx, logger); err != nil {
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
