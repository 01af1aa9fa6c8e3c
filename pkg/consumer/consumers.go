package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/inbox"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/msgtrace"
)

// Consumers run a service's Kafka consumers behind the consumer stack: a
// router in which every handler is wrapped, outermost first, by the drain
// (graceful shutdown), a consumer span, the stack (recover,
// correlation id, the strategy's steps, retry, timeout, breaker; see stack)
// and, for the service's own consumers, the inbox. Every consumer also gets a
// second router handler, its delayed path (package delayed). Register
// handlers with Handle and Project, then Run; shut down with Drain, then
// Close (pkg/lifecycle does both in order).
//
// Kafka being unreachable never fails Run: it waits for Kafka (creating Topics
// first, if given), and the subscriptions reconnect by themselves later.
type Consumers struct {
	config Config
	poison message.Publisher
	logger *slog.Logger
	wlog   watermill.LoggerAdapter

	inbox *inbox.Inbox
	// inboxMiddleware wraps every consumer (not projections): the inbox's,
	// unless an Option replaced or wrapped it.
	inboxMiddleware message.HandlerMiddleware
	handlers        []handler
	drain           *drain
	retrying        *retrying
	// newRouter, if set, replaces router (an Option's).
	newRouter func(*Consumers) (*message.Router, error)

	closeOnce sync.Once
	closing   chan struct{}
}

type handler struct {
	name, topic string
	handler     message.NoPublishHandlerFunc
	// projection: own consumer group, retried but never poisoned, no inbox.
	projection bool
}

// consumersCloseTimeout bounds how long Close waits for handlers still running
// (after Drain there are none, or they were abandoned).
const consumersCloseTimeout = 3 * time.Second

// NewConsumers returns the consumers of c (zero settings take their
// defaults). It fails on an invalid c or missing wiring (DB, Poison).
func NewConsumers(c Config, opts ...Option) (*Consumers, error) {
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.DB == nil || c.Poison == nil {
		return nil, errors.New("consumers: DB and Poison are required")
	}
	in, err := inbox.New(inbox.Config{DB: c.DB, ConsumerGroup: c.ConsumerGroup, OnDuplicate: c.Hooks.Duplicate})
	if err != nil {
		return nil, err
	}
	cs := &Consumers{
		config:   c,
		logger:   c.Logger,
		wlog:     watermill.NewSlogLogger(c.Logger),
		inbox:    in,
		drain:    newDrain(),
		retrying: newRetrying(c.Retry),
		closing:  make(chan struct{}),
	}
	cs.poison = poisonOrigin{Publisher: c.Poison, group: c.ConsumerGroup, poisoned: c.Hooks.Poisoned}
	cs.inboxMiddleware = in.Middleware
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	for _, wrap := range o.wrapInbox {
		cs.inboxMiddleware = wrap(cs.inboxMiddleware)
	}
	cs.newRouter = o.router
	return cs, nil
}

// Inbox returns the consumers' inbox (to ask whether a message was processed).
func (cs *Consumers) Inbox() *inbox.Inbox { return cs.inbox }

// Handle registers h as the consumer of topic. h runs inside the inbox's
// transaction (repositories join it through the message context, see
// sqldb.InTx), behind the consumer stack. h must not publish by returning
// messages: it writes events to the outbox, in the same transaction. Call
// before Run.
func (cs *Consumers) Handle(name, topic string, h message.NoPublishHandlerFunc) {
	cs.handlers = append(cs.handlers, handler{name: name, topic: topic, handler: h})
}

// Handler returns the handler of the consumer registered as name with
// Handle, behind its inbox and outside the rest of the stack (what
// Consumer.Handle is to a strategy): it runs in the transaction the
// message's context carries, if any. false: no such consumer (projections
// are not consumers).
func (cs *Consumers) Handler(name string) (message.HandlerFunc, bool) {
	for _, h := range cs.handlers {
		if h.name == name && !h.projection {
			return cs.behindInbox(h), true
		}
	}
	return nil, false
}

// Project registers h as a projection of topic: a read model that records what
// passes on the topic (the order timeline). It runs in its own consumer group
// (the service's group, then "." and name: keep name stable, a new name
// re-reads the topic from the start), without the inbox and with the Block
// strategy: h must accept any message, be idempotent by itself (e.g. keyed on
// the message's Kafka partition and offset, see kafka.Position), and its
// errors are retried until it succeeds. Call before Run.
func (cs *Consumers) Project(name, topic string, h message.NoPublishHandlerFunc) {
	cs.handlers = append(cs.handlers, handler{name: name, topic: topic, handler: h, projection: true})
}

// strategyOf returns the strategy of h.
func (cs *Consumers) strategyOf(h handler) Strategy {
	if h.projection {
		return Block
	}
	if s, ok := cs.config.Strategies[h.name]; ok {
		return s
	}
	return cs.config.Strategy
}

// strategies returns each strategy the registered consumers use, once.
func (cs *Consumers) strategies() []Strategy {
	var out []Strategy
	for _, h := range cs.handlers {
		if s := cs.strategyOf(h); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Run ensures the topics, subscribes every handler and consumes until Close
// (then it returns nil) or until ctx ends or the router fails (then it returns
// the router's error). It runs the strategies' loops (Runner) meanwhile and
// returns only after they ended. Call it once.
func (cs *Consumers) Run(ctx context.Context) error {
	if len(cs.handlers) == 0 {
		select {
		case <-cs.closing:
		case <-ctx.Done():
		}
		return nil
	}
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (deferred later, run earlier): every goroutine Run starts has ended
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ensureCtx, cancelEnsure := context.WithCancel(ctx)
	defer cancelEnsure()
	wg.Go(func() {
		select {
		case <-cs.closing:
			cancelEnsure()
		case <-ctx.Done():
		}
	})
	if cs.config.Topics != nil {
		if err := cs.config.Topics.Ensure(ensureCtx); err != nil {
			return nil // closed while Kafka was unreachable
		}
	}
	router, err := cs.router()
	if err != nil {
		return err
	}
	defer cs.runStrategies(ctx)()
	wg.Go(func() {
		select {
		case <-cs.closing:
		case <-ctx.Done():
			return
		}
		select {
		case <-router.Running(): // subscribed: close gracefully (offsets are committed)
			if err := router.Close(); err != nil {
				cs.logger.Warn("shutdown: closing the consumers' router", "err", err)
			}
		default: // still subscribing (Kafka unreachable): give up
		}
		cancel()
	})
	err = router.Run(ctx)
	select {
	case <-cs.closing:
		if err != nil {
			cs.logger.Info("consumers closed", "err", err)
		}
		return nil
	default:
		return err
	}
}

// runStrategies starts the loop of every strategy that has one (Runner), on a
// context that ends when the consumers close or ctx ends, and returns the
// function that ends them and waits for them.
func (cs *Consumers) runStrategies(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-cs.closing:
			cancel()
		case <-ctx.Done():
		}
	})
	for _, s := range cs.strategies() {
		if r, ok := s.(Runner); ok {
			wg.Go(func() { r.Run(ctx) })
		}
	}
	return func() { cancel(); wg.Wait() }
}

// router builds the Watermill router with every handler and its stack.
func (cs *Consumers) router() (*message.Router, error) {
	if cs.newRouter != nil {
		return cs.newRouter(cs)
	}
	c := cs.config
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: consumersCloseTimeout}, cs.wlog)
	if err != nil {
		return nil, err
	}
	if c.OnRouter != nil {
		c.OnRouter(router)
	}
	for name := range c.Strategies {
		if !slices.ContainsFunc(cs.handlers, func(h handler) bool { return h.name == name && !h.projection }) {
			return nil, fmt.Errorf("consumer: strategy given for %q, which is not a consumer of this service", name)
		}
	}
	for _, h := range cs.handlers {
		group := cs.groupOf(h)
		sub, err := c.Kafka.NewSubscriber(group, cs.wlog)
		if err != nil {
			return nil, err
		}
		stack, err := cs.stack(h)
		if err != nil {
			return nil, err
		}
		outer := []message.HandlerMiddleware{cs.drain.Middleware, msgtrace.Middleware(h.name, group)}
		rh := router.AddConsumerHandler(h.name, h.topic, sub, h.handler)
		rh.AddMiddleware(outer...)
		rh.AddMiddleware(stack...)
		if h.projection {
			continue
		}
		rh.AddMiddleware(cs.inboxMiddleware)
		// The delayed path: a second handler reading h's rows of the delayed
		// table, behind the same middleware, inbox included.
		dsub, err := delayed.NewSubscriber(c.DB, c.ConsumerGroup, c.Delayed, cs.wlog)
		if err != nil {
			return nil, fmt.Errorf("consumer %s: delayed path: %w", h.name, err)
		}
		dh := router.AddConsumerHandler(h.name+delayed.HandlerSuffix, h.name, dsub, h.handler)
		dh.AddMiddleware(outer...)
		dh.AddMiddleware(stack...)
		dh.AddMiddleware(cs.inboxMiddleware)
	}
	return router, nil
}

// Drain refuses new messages (they are handed back unacknowledged, with
// ErrShuttingDown) and waits until the handlers in flight return, or until
// deadline. Handlers run on contexts the shutdown does not cancel, so their
// transactions commit and their messages are acknowledged. A handler still
// running at deadline is abandoned: its context ends (cause: the drain time is
// up), its transaction rolls back, and its message is neither acknowledged nor
// given up on, so Kafka delivers it again after the restart. Drain reports
// whether it had to abandon any.
func (cs *Consumers) Drain(deadline time.Time) (abandoned bool) {
	return cs.drain.shutDown(deadline)
}

// Close ends the subscriptions (committing the offsets of acknowledged
// messages; a router still waiting for Kafka is given up) and makes Run return
// nil once the strategies' loops ended. Call it after Drain; it is safe to
// call more than once.
func (cs *Consumers) Close() error {
	cs.closeOnce.Do(func() { close(cs.closing) })
	return nil
}

// Health reports whether every consumer is alive: nil, or the failures of the
// strategies that check health (HealthChecker, e.g. a consumer the stop
// strategy stopped), joined. A service's liveness endpoint (/healthz) answers
// 503 while it fails.
func (cs *Consumers) Health() error {
	var errs []error
	for _, s := range cs.strategies() {
		if hc, ok := s.(HealthChecker); ok {
			errs = append(errs, hc.Health())
		}
	}
	return errors.Join(errs...)
}

// HealthCheck is Health in the shape of an HTTP health endpoint's check (ctx is
// not used).
func (cs *Consumers) HealthCheck(context.Context) error { return cs.Health() }

// Subscriptions lists the consumer group and topic of every registered
// consumer and projection (projections have their own group), in registration
// order, including duplicates if a group reads a topic twice.
func (cs *Consumers) Subscriptions() []kafka.Subscription {
	subs := make([]kafka.Subscription, 0, len(cs.handlers))
	for _, h := range cs.handlers {
		subs = append(subs, kafka.Subscription{Group: cs.groupOf(h), Topic: h.topic})
	}
	return subs
}

// groupOf is h's consumer group: the service's, or a projection's own.
func (cs *Consumers) groupOf(h handler) string {
	if h.projection {
		return cs.config.ConsumerGroup + "." + h.name
	}
	return cs.config.ConsumerGroup
}
