package messaging

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/events"
)

// Config is the messaging part of a service's configuration: its database (which
// holds the outbox and the inbox), Kafka, the forwarder and the consumer. A
// service nests it under its own environment prefix, e.g. ORDER_DB_DSN,
// ORDER_KAFKA_BROKERS or PAYMENT_OUTBOX_BATCH_SIZE. Zero fields take the defaults
// of each part.
type Config struct {
	DB     DBConfig     `envPrefix:"DB_"`
	Kafka  KafkaConfig  `envPrefix:"KAFKA_"`
	Outbox OutboxConfig `envPrefix:"OUTBOX_"`
	Retry  RetryConfig  `envPrefix:"RETRY_"`
	// Retention bounds the inbox and the poison replay records (ADR 0025).
	Retention RetentionConfig `envPrefix:"RETENTION_"`
	// ConsumerGroup is the service's Kafka consumer group; it also scopes the inbox.
	// Required.
	ConsumerGroup string `env:"CONSUMER_GROUP"`
	// PoisonTopic receives what the service's consumer gives up on. Required.
	PoisonTopic string `env:"POISON_TOPIC"`
	// FailureMode is what the consumer does when a message's retries are spent:
	// "poison" (default) or "block" (ADR 14).
	FailureMode FailureMode `env:"FAILURE_MODE"`
}

// Defaults returns c with zero fields set to their defaults.
func (c Config) Defaults() Config {
	if c.FailureMode == "" {
		c.FailureMode = FailurePoison
	}
	c.DB = c.DB.Defaults()
	c.Kafka = c.Kafka.Defaults()
	c.Outbox = c.Outbox.Defaults()
	c.Retry = c.Retry.Defaults()
	c.Retention = c.Retention.Defaults()
	return c
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.FailureMode != FailurePoison && c.FailureMode != FailureBlock {
		errs = append(errs, fmt.Errorf("failure mode %q is neither %q nor %q", c.FailureMode, FailurePoison, FailureBlock))
	}
	if c.ConsumerGroup == "" {
		errs = append(errs, errors.New("consumer group is required"))
	}
	if c.PoisonTopic == "" {
		errs = append(errs, errors.New("poison topic is required"))
	}
	return errors.Join(append(errs, c.DB.Validate(), c.Kafka.Validate(), c.Outbox.Validate(), c.Retry.Validate(), c.Retention.Validate())...)
}

// Node is the messaging side of one service process: the forwarder that relays
// the service's outbox to Kafka, and a router that runs the service's consumers
// behind the middleware stack (Middlewares) and the Inbox.
//
// Kafka being down, at start-up or later, never stops a Node from starting: the
// forwarder retries each row until Kafka takes it, and consumers subscribe once
// Kafka answers. The service's HTTP API keeps working meanwhile.
type Node struct {
	slog   *slog.Logger
	config Config
	db     *sql.DB
	logger watermill.LoggerAdapter
	topics []events.TopicSpec

	outbox *Outbox
	inbox  Inbox
	// inboxMiddleware wraps every consumer (not projections): the inbox's, unless
	// an Option replaced or wrapped it.
	inboxMiddleware message.HandlerMiddleware
	out             message.Publisher
	poison          message.Publisher
	handlers        []consumer
	// forwarderMiddlewares wrap the forwarder's handler (set by Options).
	forwarderMiddlewares []message.HandlerMiddleware
	jobs                 []job
	// topicsCreated is set once EnsureTopics succeeded.
	topicsCreated atomic.Bool
}

type job struct {
	name  string
	every time.Duration
	run   func(ctx context.Context) error
}

type consumer struct {
	name, topic string
	handler     message.NoPublishHandlerFunc
	// projection: own consumer group, retried but never poisoned, no inbox.
	projection bool
}

// Start prepares a Node for config (defaults applied): it opens the service's
// database, waiting up to config.DB.StartupTimeout for it to answer, and brings it
// up to date with Migrate (this package's tables, then the service's migrations
// from serviceMigrations: *.sql files under a "migrations" directory). topics are
// created in Kafka, if missing, when the consumers start. opts adjust the node
// last. Start fails on an invalid config, an unreachable database or a failed
// migration; it never waits for Kafka.
func Start(ctx context.Context, config Config, serviceMigrations fs.FS, topics []events.TopicSpec, logger *slog.Logger, opts ...Option) (*Node, error) {
	config = config.Defaults()
	if err := config.Validate(); err != nil {
		return nil, fmt.Errorf("messaging config: %w", err)
	}
	outbox, err := NewOutbox(config.Outbox)
	if err != nil {
		return nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, config.DB.StartupTimeout)
	defer cancel()
	db, err := OpenDB(startCtx, config.DB.DSN, config.DB.MaxOpenConns)
	if err != nil {
		return nil, err
	}
	migrations, err := fs.Sub(serviceMigrations, "migrations")
	if err == nil {
		err = Migrate(startCtx, db, migrations, logger)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	wlog := watermill.NewSlogLogger(logger)
	n := &Node{
		slog:   logger,
		config: config,
		db:     db,
		logger: wlog,
		topics: topics,
		outbox: outbox,
		inbox:  Inbox{DB: db, ConsumerGroup: config.ConsumerGroup},
		out:    config.Kafka.NewPublisher(wlog),
		poison: config.Kafka.NewPoisonPublisher(wlog),
	}
	n.inboxMiddleware = n.inbox.Middleware
	outbox.topicCreated = n.topicCreated
	n.Retain("processed_messages", "processed_at", config.Retention.InboxMaxAge)
	n.Retain("poison_replays", "replayed_at", config.Retention.PoisonReplaysMaxAge)
	for _, opt := range opts {
		opt(n)
	}
	return n, nil
}

// topicCreated reports whether topic is one of the node's topics and they have
// been created in Kafka (so that an unknown-topic refusal is not a start-up race).
func (n *Node) topicCreated(topic string) bool {
	if !n.topicsCreated.Load() {
		return false
	}
	for _, t := range n.topics {
		if t.Name == topic {
			return true
		}
	}
	return false
}

// Option adjusts a Node before it runs. The package's options live in builds
// that need them (the fault-injection build's are in faults_enabled.go, ADR 21);
// production services pass none.
type Option func(*Node)

// DB is the service's database pool (closed when Run returns).
func (n *Node) DB() *sql.DB { return n.db }

// Outbox is where the service's repositories write their events.
func (n *Node) Outbox() *Outbox { return n.outbox }

// Inbox returns the node's inbox (to ask whether a message was processed).
func (n *Node) Inbox() *Inbox { return &n.inbox }

// PoisonPublisher is the publisher the poison queue uses; poison tooling reuses it
// to replay messages.
func (n *Node) PoisonPublisher() message.Publisher { return n.poison }

// Consume registers h as the consumer of topic. h runs inside the inbox's
// transaction (repositories join it through the message context), behind the
// middleware stack. h must not publish by returning messages: it writes events
// to the outbox, in the same transaction. Call before Run.
func (n *Node) Consume(name, topic string, h message.NoPublishHandlerFunc) {
	n.handlers = append(n.handlers, consumer{name: name, topic: topic, handler: h})
}

// Project registers h as a projection of topic: a read model that records what
// passes on the topic (the order timeline). It runs in its own consumer group
// (the node's group, then "." and name), without the inbox and without a poison
// queue: h must accept any message, be idempotent by itself (e.g. keyed on the
// message's Kafka partition and offset, see KafkaPosition), and its errors are
// retried until it succeeds. Call before Run.
func (n *Node) Project(name, topic string, h message.NoPublishHandlerFunc) {
	n.handlers = append(n.handlers, consumer{name: name, topic: topic, handler: h, projection: true})
}

// Every registers a job that Run runs every interval (the first time one
// interval after start) until ctx ends. A failing run is logged and the job runs
// again at the next tick. Call before Run.
func (n *Node) Every(name string, interval time.Duration, run func(ctx context.Context) error) {
	n.jobs = append(n.jobs, job{name: name, every: interval, run: run})
}

func (n *Node) runJob(ctx context.Context, j job) {
	t := time.NewTicker(j.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := j.run(ctx); err != nil && ctx.Err() == nil {
				n.slog.Warn("periodic job failed", "job", j.name, "err", err)
			}
		}
	}
}

// Run runs the forwarder and the consumers until ctx ends, then stops them and
// returns nil; it returns an error only if one of them fails for good.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	fwd, err := n.outbox.NewForwarder(n.db, n.out, n.logger, n.forwarderMiddlewares...)
	if err != nil {
		return err
	}
	errs := make(chan error, 2)
	go func() { errs <- fwd.Run(ctx) }()
	go func() { errs <- n.runConsumers(ctx) }()
	for _, j := range n.jobs {
		go n.runJob(ctx, j)
	}

	var runErr error
	for range 2 {
		if err := <-errs; err != nil && ctx.Err() == nil {
			runErr = errors.Join(runErr, err)
			cancel()
		}
	}
	return errors.Join(runErr, n.out.Close(), n.poison.Close(), n.db.Close())
}

func (n *Node) runConsumers(ctx context.Context) error {
	if len(n.handlers) == 0 {
		<-ctx.Done()
		return nil
	}
	if err := n.config.Kafka.EnsureTopics(ctx, n.topics); err != nil {
		return nil // ctx ended while Kafka was unreachable
	}
	n.topicsCreated.Store(true)
	// Topics created before their settings existed (the poison topics' unlimited
	// retention, ADR 0025) get them now; failing to is worth a warning, not a stop.
	if err := n.config.Kafka.ApplyTopicConfigs(n.topics); err != nil {
		n.slog.Warn("could not apply topic settings", "err", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, n.logger)
	if err != nil {
		return err
	}
	stack, err := Middlewares(n.config.FailureMode, n.config.PoisonTopic, n.poison, n.config.Retry, n.logger)
	if err != nil {
		return err
	}
	projectionStack, err := Middlewares(FailureBlock, n.config.PoisonTopic, n.poison, n.config.Retry, n.logger)
	if err != nil {
		return err
	}
	for _, c := range n.handlers {
		group := n.config.ConsumerGroup
		if c.projection {
			group += "." + c.name
		}
		sub, err := n.config.Kafka.NewSubscriber(group, n.logger)
		if err != nil {
			return err
		}
		h := router.AddConsumerHandler(c.name, c.topic, sub, c.handler)
		if c.projection {
			h.AddMiddleware(projectionStack...)
			continue
		}
		h.AddMiddleware(stack...)
		h.AddMiddleware(n.inboxMiddleware)
	}
	return router.Run(ctx)
}

// RunWithHTTP runs the node (see Run) and the service's HTTP server on l until
// ctx ends or either fails, then shuts the server down gracefully (in-flight
// requests get 10 s) and stops the node. It returns the first failure, or nil
// after a clean shutdown.
func (n *Node) RunWithHTTP(ctx context.Context, server *http.Server, l net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- n.Run(ctx) }()
	httpDone := make(chan error, 1)
	go func() { httpDone <- server.Serve(l) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-httpDone:
	case err = <-nodeDone:
		nodeDone <- err
	}
	shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if shutErr := server.Shutdown(shutdownCtx); shutErr != nil {
		err = errors.Join(err, shutErr)
	}
	cancel()
	err = errors.Join(err, <-nodeDone)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	n.slog.Info("stopped", "err", err)
	return err
}
