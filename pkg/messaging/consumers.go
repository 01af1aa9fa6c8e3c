package messaging

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/msgtrace"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Consumers run a service's Kafka consumers behind the consumer stack: a
// router in which every handler is wrapped, outermost first, by the drain
// (graceful stop, ADR 24), a consumer span (ADR 0039), Middlewares (recover, correlation id, poison queue,
// retry; ADR 10 and 14) and, for the service's own consumers, the Inbox
// (ADR 5). Register handlers with Handle and Project, then Run; stop with
// Drain, then Close (pkg/lifecycle does both in order).
//
// Kafka being unreachable never fails Run: it waits for Kafka (creating Topics
// first, if given), and the subscriptions reconnect by themselves later.
type Consumers struct {
	config Config
	poison message.Publisher
	topics *kafka.Topics
	logger *slog.Logger
	wlog   watermill.LoggerAdapter

	inbox Inbox
	// inboxMiddleware wraps every consumer (not projections): the inbox's,
	// unless the fault build replaced or wrapped it (ADR 21).
	inboxMiddleware message.HandlerMiddleware
	handlers        []consumer
	drain           *drain
	parkKey         parkKeyState
	skipped         atomic.Int64 // messages FailureSkip acknowledged without their effect
	// gates hold the messages of stopped and paused consumers (ADR 35).
	gates gates
	// hooks are told about retries, poisoned, duplicate and skipped messages
	// (SetHooks); onRouter see the router before it runs (OnRouter).
	hooks    Hooks
	onRouter []func(*message.Router)

	closeOnce sync.Once
	closing   chan struct{}
}

type consumer struct {
	name, topic string
	handler     message.NoPublishHandlerFunc
	// projection: own consumer group, retried but never poisoned, no inbox.
	projection bool
}

// consumersCloseTimeout bounds how long Close waits for handlers still running
// (after Drain there are none, or they were abandoned).
const consumersCloseTimeout = 3 * time.Second

// NewConsumers returns the consumers of a service whose messaging config is c
// (zero fields take their defaults): c.ConsumerGroup names the Kafka group and
// scopes the inbox in db, c.FailureMode, c.FailureModes and c.Retry shape the stack, and what
// the stack gives up on goes to c.PoisonTopic through poison (normally
// KafkaConfig.NewPoisonPublisher). topics, if not nil, are ensured before the
// first subscription. It fails on an invalid config (c.DB, c.Outbox and
// c.Retention are not used).
func NewConsumers(c Config, db *sql.DB, poison message.Publisher, topics *kafka.Topics, logger *slog.Logger) (*Consumers, error) {
	c = c.Defaults()
	if err := c.validateConsumers(); err != nil {
		return nil, err
	}
	cs := &Consumers{
		config:  c,
		topics:  topics,
		logger:  logger,
		wlog:    watermill.NewSlogLogger(logger),
		inbox:   Inbox{DB: db, ConsumerGroup: c.ConsumerGroup},
		drain:   newDrain(),
		closing: make(chan struct{}),
	}
	cs.poison = poisonOrigin{Publisher: poison, group: c.ConsumerGroup, hooks: &cs.hooks}
	cs.inbox.OnDuplicate = cs.hooks.duplicate
	cs.inboxMiddleware = cs.inbox.Middleware
	return cs, nil
}

// Inbox returns the consumers' inbox (to ask whether a message was processed).
func (cs *Consumers) Inbox() *Inbox { return &cs.inbox }

// Handle registers h as the consumer of topic. h runs inside the inbox's
// transaction (repositories join it through the message context, see InTx),
// behind the middleware stack. h must not publish by returning messages: it
// writes events to the outbox, in the same transaction. Call before Run.
func (cs *Consumers) Handle(name, topic string, h message.NoPublishHandlerFunc) {
	cs.handlers = append(cs.handlers, consumer{name: name, topic: topic, handler: h})
}

// Project registers h as a projection of topic: a read model that records what
// passes on the topic (the order timeline). It runs in its own consumer group
// (the service's group, then "." and name: keep name stable, a new name
// re-reads the topic from the start), without the inbox and without a poison
// queue: h must accept any message, be idempotent by itself (e.g. keyed on the
// message's Kafka partition and offset, see KafkaPosition), and its errors are
// retried until it succeeds. Call before Run.
func (cs *Consumers) Project(name, topic string, h message.NoPublishHandlerFunc) {
	cs.handlers = append(cs.handlers, consumer{name: name, topic: topic, handler: h, projection: true})
}

// Run ensures the topics, subscribes every handler and consumes until Close
// (then it returns nil) or until ctx ends or the router fails (then it returns
// the router's error). Call it once.
func (cs *Consumers) Run(ctx context.Context) error {
	if len(cs.handlers) == 0 {
		select {
		case <-cs.closing:
		case <-ctx.Done():
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ensureCtx, cancelEnsure := context.WithCancel(ctx)
	defer cancelEnsure()
	go func() {
		select {
		case <-cs.closing:
			cancelEnsure()
		case <-ctx.Done():
		}
	}()
	if cs.topics != nil {
		if err := cs.topics.Ensure(ensureCtx); err != nil {
			return nil // closed while Kafka was unreachable
		}
	}
	router, err := cs.router()
	if err != nil {
		return err
	}
	defer cs.startKeyReleases(ctx)()
	go func() {
		select {
		case <-cs.closing:
		case <-ctx.Done():
			return
		}
		select {
		case <-router.Running(): // subscribed: close gracefully (offsets are committed)
			if err := router.Close(); err != nil {
				cs.logger.Warn("stop: closing the consumers' router", "err", err)
			}
		default: // still subscribing (Kafka unreachable): give up
		}
		cancel()
	}()
	err = router.Run(ctx)
	select {
	case <-cs.closing:
		if err != nil {
			cs.logger.Info("consumers stopped", "err", err)
		}
		return nil
	default:
		return err
	}
}

// router builds the Watermill router with every handler and its stack.
func (cs *Consumers) router() (*message.Router, error) {
	c := cs.config
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: consumersCloseTimeout}, cs.wlog)
	if err != nil {
		return nil, err
	}
	for _, f := range cs.onRouter {
		f(router)
	}
	for name := range c.FailureModes {
		if !slices.ContainsFunc(cs.handlers, func(h consumer) bool { return h.name == name && !h.projection }) {
			return nil, fmt.Errorf("consumer: failure mode given for %q, which is not a consumer of this service", name)
		}
	}
	for _, h := range cs.handlers {
		group := c.ConsumerGroup
		if h.projection {
			group += "." + h.name
		}
		sub, err := c.Kafka.NewSubscriber(group, cs.wlog)
		if err != nil {
			return nil, err
		}
		stack, err := cs.stack(h)
		if err != nil {
			return nil, err
		}
		rh := router.AddConsumerHandler(h.name, h.topic, sub, h.handler)
		rh.AddMiddleware(cs.drain.Middleware, msgtrace.Middleware(h.name, group))
		rh.AddMiddleware(stack...)
		if !h.projection {
			rh.AddMiddleware(cs.inboxMiddleware)
			mws := append([]message.HandlerMiddleware{cs.drain.Middleware, msgtrace.Middleware(h.name, group)}, append(stack, cs.inboxMiddleware)...)
			if err := cs.addRequeueHandler(router, h, mws); err != nil {
				return nil, err
			}
		}
	}
	return router, nil
}

// Drain refuses new messages (they are handed back unacknowledged, with
// ErrStopping) and waits until the handlers in flight return, or until
// deadline. Handlers run on contexts the stop does not cancel, so their
// transactions commit and their messages are acknowledged. A handler still
// running at deadline is abandoned: its context ends (cause: the drain time is
// up), its transaction rolls back, and its message is neither acknowledged nor
// poisoned, so Kafka delivers it again after the restart. Drain reports whether
// it had to abandon any.
func (cs *Consumers) Drain(deadline time.Time) (abandoned bool) {
	return cs.drain.stop(deadline)
}

// Close ends the subscriptions (committing the offsets of acknowledged
// messages; a router still waiting for Kafka is given up) and makes Run return
// nil. Call it after Drain; it is safe to call more than once.
func (cs *Consumers) Close() error {
	cs.closeOnce.Do(func() { close(cs.closing) })
	return nil
}
