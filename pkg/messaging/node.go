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
	"sync"
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
	// Stop bounds a graceful stop (ADR 24).
	Stop StopConfig `envPrefix:"STOP_"`
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
	c.Stop = c.Stop.Defaults()
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
	return errors.Join(append(errs, c.DB.Validate(), c.Kafka.Validate(), c.Outbox.Validate(), c.Retry.Validate(), c.Retention.Validate(), c.Stop.Validate())...)
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

	// drain lets in-flight handlers finish on a stop (ADR 24).
	drain *drain
	// stopping is set when the stop begins; Ready reports it.
	stopping atomic.Bool
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
		drain:  newDrain(),
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

// Ready wraps check (normally the database's ping) for a readiness endpoint: it
// fails with ErrStopping from the moment the node begins to stop (before the
// HTTP server closes its listener), and otherwise returns check's result.
func (n *Node) Ready(check func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if n.stopping.Load() {
			return ErrStopping
		}
		return check(ctx)
	}
}

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

// Run runs the forwarder and the consumers until ctx ends, then stops them
// gracefully (see RunWithHTTP, without the HTTP steps) and returns nil; it
// returns an error if one of them fails for good, or if the stop could not
// finish within config.Stop.DrainTimeout.
func (n *Node) Run(ctx context.Context) error { return n.run(ctx, nil, nil) }

// RunWithHTTP runs the node and the service's HTTP server on l until ctx ends
// or a part fails, then stops gracefully, in this order (ADR 24):
//
//  1. Ready (/readyz) fails with ErrStopping, the periodic jobs stop, and the
//     server keeps serving for config.Stop.UnreadyDelay.
//  2. At the same time: the HTTP server closes its listener and lets its
//     in-flight requests finish; the consumers take no new message and let
//     their in-flight handlers finish. Handlers run on contexts the stop does
//     not cancel, so their transactions commit and their messages are
//     acknowledged. Both get until the drain deadline (DrainTimeout minus a
//     reserve); a handler still running then is abandoned: its context ends,
//     its transaction rolls back, and its message is neither acknowledged nor
//     poisoned, so Kafka delivers it again after the restart.
//  3. The consumers' subscriptions close (committing their offsets).
//  4. The forwarder, which kept relaying what the drained work wrote, stops:
//     its polling transaction deletes the rows Kafka acknowledged and commits
//     (or, past the deadline, rolls back: those rows are published again).
//  5. The Kafka clients and the database pool close.
//
// It returns the first failure, or nil after a clean stop; if the stop takes
// longer than DrainTimeout it gives up waiting and returns an error (whatever
// was not committed by then is redelivered or republished after the restart).
func (n *Node) RunWithHTTP(ctx context.Context, server *http.Server, l net.Listener) error {
	return n.run(ctx, server, l)
}

func (n *Node) run(ctx context.Context, server *http.Server, l net.Listener) error {
	stopCfg := n.config.Stop
	// The parts run on a context the stop signal does not cancel: the stop ends
	// them one after another.
	partsCtx, cancelParts := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelParts()
	fwd, err := n.outbox.newForwarder(n.db, n.out, n.logger, n.drain.abandonCtx, stopCfg.reserve(), n.forwarderMiddlewares...)
	if err != nil {
		return err
	}
	fwdDone := make(chan error, 1)
	go func() { fwdDone <- fwd.Run(partsCtx) }()
	consumersStop := make(chan struct{})
	consDone := make(chan error, 1)
	go func() { consDone <- n.runConsumers(partsCtx, consumersStop) }()
	jobsCtx, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	for _, j := range n.jobs {
		go n.runJob(jobsCtx, j)
	}
	httpDone := make(chan error, 1)
	if server != nil {
		go func() { httpDone <- server.Serve(l) }()
	}

	var failure error
	select {
	case <-ctx.Done():
	case err := <-fwdDone:
		failure = errors.Join(errors.New("the forwarder stopped"), err)
		fwdDone <- nil
	case err := <-consDone:
		failure = errors.Join(errors.New("the consumers stopped"), err)
		consDone <- nil
	case err := <-httpDone:
		failure = fmt.Errorf("http server: %w", err)
		httpDone <- http.ErrServerClosed
	}

	// 1. Not ready any more.
	start := time.Now()
	deadline := start.Add(stopCfg.DrainTimeout)
	workDeadline := deadline.Add(-stopCfg.reserve())
	n.stopping.Store(true)
	stopJobs()
	n.slog.Info("stopping", "drain_timeout", stopCfg.DrainTimeout, "unready_delay", stopCfg.UnreadyDelay, "cause", failure)
	if failure == nil && stopCfg.UnreadyDelay > 0 {
		time.Sleep(stopCfg.UnreadyDelay)
	}
	// 2. Drain HTTP and the consumers.
	errs := []error{failure}
	var wg sync.WaitGroup
	if server != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithDeadline(context.Background(), workDeadline)
			defer cancel()
			if err := server.Shutdown(sctx); err != nil {
				_ = server.Close()
				n.slog.Warn("stop: HTTP requests still running at the drain deadline were cut", "err", err)
			}
		}()
	}
	if n.drain.stop(workDeadline) {
		n.slog.Warn("stop: the drain time is up; in-flight messages abandoned (rolled back, not acknowledged, delivered again after the restart)")
	}
	wg.Wait()
	// 3. Close the consumers.
	close(consumersStop)
	var consErr error
	if !waitUntil(consDone, deadline, &consErr) {
		errs = append(errs, errors.New("stop: the consumers did not close within the drain timeout"))
	} else if consErr != nil {
		n.slog.Warn("stop: closing the consumers", "err", consErr)
	}
	// 4. Stop the forwarder: it finishes or abandons its batch cleanly.
	go func() {
		if err := fwd.Close(); err != nil {
			n.slog.Warn("stop: closing the forwarder", "err", err)
		}
	}()
	var fwdErr error
	if !waitUntil(fwdDone, deadline, &fwdErr) {
		errs = append(errs, errors.New("stop: the forwarder did not stop within the drain timeout"))
	}
	n.drain.abandon(errAbandoned) // whatever still runs past this point is cut
	cancelParts()
	if server != nil {
		var httpErr error
		if waitUntil(httpDone, deadline, &httpErr) && !errors.Is(httpErr, http.ErrServerClosed) {
			errs = append(errs, httpErr)
		}
	}
	// 5. Close the clients.
	closed := make(chan error, 1)
	go func() { closed <- errors.Join(n.out.Close(), n.poison.Close(), n.db.Close()) }()
	var closeErr error
	if !waitUntil(closed, deadline, &closeErr) {
		closeErr = errors.New("stop: the Kafka clients and the database pool did not close within the drain timeout")
	}
	err = errors.Join(append(errs, closeErr)...)
	n.slog.Info("stopped", "took", time.Since(start).Round(time.Millisecond), "err", err)
	return err
}

// runConsumers runs the consumers until stop is closed (after the drain) or ctx
// ends, then closes the router, which closes the subscriptions.
func (n *Node) runConsumers(ctx context.Context, stop <-chan struct{}) error {
	if len(n.handlers) == 0 {
		select {
		case <-stop:
		case <-ctx.Done():
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := make(chan struct{})
	ensureCtx, cancelEnsure := context.WithCancel(ctx)
	defer cancelEnsure()
	go func() {
		select {
		case <-stop:
			close(stopped)
			cancelEnsure()
		case <-ctx.Done():
		}
	}()
	if err := n.config.Kafka.EnsureTopics(ensureCtx, n.topics); err != nil {
		return nil // stopped while Kafka was unreachable
	}
	n.topicsCreated.Store(true)
	// Topics created before their settings existed (the poison topics' unlimited
	// retention, ADR 0025) get them now; failing to is worth a warning, not a stop.
	if err := n.config.Kafka.ApplyTopicConfigs(n.topics); err != nil {
		n.slog.Warn("could not apply topic settings", "err", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: n.config.Stop.reserve()}, n.logger)
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
		h.AddMiddleware(n.drain.Middleware)
		if c.projection {
			h.AddMiddleware(projectionStack...)
			continue
		}
		h.AddMiddleware(stack...)
		h.AddMiddleware(n.inboxMiddleware)
	}
	go func() {
		select {
		case <-stopped:
		case <-ctx.Done():
			return
		}
		select {
		case <-router.Running(): // subscribed: close gracefully (offsets are committed)
			if err := router.Close(); err != nil {
				n.slog.Warn("stop: closing the consumers' router", "err", err)
			}
		default: // still subscribing (Kafka unreachable): give up
		}
		cancel()
	}()
	err = router.Run(ctx)
	select {
	case <-stopped:
		if err != nil {
			n.slog.Info("consumers stopped", "err", err)
		}
		return nil
	default:
		return err
	}
}
