//go:build faults

package consumer

import (
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// stockRouter builds the router of the saga made of stock Watermill parts
// only (Faults.StockRouter, the benchmark's peer): every consumer behind
// Watermill's Recoverer, PoisonQueue, an in-memory Deduplicator (keyed on
// the message's UUID, remembered for a minute) and Retry, with the
// consumers' retry settings; every projection behind Recoverer and Retry.
// There is no inbox, delayed path, strategy, drain, throttle, timeout or
// breaker: the handlers open their own transactions.
//
// Unsafe, which is why only the fault build has it: an outage is poisoned
// like a bad message, and the deduplicator forgets on a restart, so a
// redelivery after a crash runs its handler again (only the domain's own
// checks stand in the way). Its key repository's cleaning goroutine is
// Watermill's and outlives the router.
func stockRouter(cs *Consumers) (*message.Router, error) {
	c := cs.config
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: consumersCloseTimeout}, cs.wlog)
	if err != nil {
		return nil, err
	}
	if c.OnRouter != nil {
		c.OnRouter(router)
	}
	poison, err := middleware.PoisonQueue(cs.poison, c.PoisonTopic)
	if err != nil {
		return nil, err
	}
	seen, err := middleware.NewMapExpiringKeyRepository(time.Minute)
	if err != nil {
		return nil, err
	}
	dedup := &middleware.Deduplicator{
		KeyFactory: func(m *message.Message) (string, error) { return m.UUID, nil },
		Repository: seen,
	}
	// Watermill's Retry with the consumers' settings, retrying every error.
	retry := c.Retry.Middleware(func(error) bool { return true }, cs.wlog)
	for _, h := range cs.handlers {
		sub, err := c.Kafka.NewSubscriber(cs.groupOf(h), cs.wlog)
		if err != nil {
			return nil, err
		}
		rh := router.AddConsumerHandler(h.name, h.topic, sub, h.handler)
		if h.projection {
			rh.AddMiddleware(middleware.Recoverer, retry)
			continue
		}
		// The deduplicator outside Retry: inside, a retried attempt would be
		// taken for a duplicate and acknowledged.
		rh.AddMiddleware(middleware.Recoverer, poison, dedup.Middleware, retry)
	}
	return router, nil
}
