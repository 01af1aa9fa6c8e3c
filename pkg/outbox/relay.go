package outbox

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/onceflow/onceflow/pkg/breaker"
	"github.com/onceflow/onceflow/pkg/kafka"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/sony/gobreaker"
)

// batchItem is one message waiting for its polling transaction's commit.
type batchItem struct {
	topic string
	msg   *message.Message
}

// errNotSent marks the messages of a batch that were not tried because an
// earlier one was refused.
var errNotSent = kafka.ErrNotSent

// BatchPublisher is a publisher that sends many messages with one request
// (pkg/kafka's publishers): PublishBatch sends msgs[i] to topics[i] and
// returns nil if every one was acknowledged, else one error per message (nil
// for those acknowledged, kafka.ErrNotSent for those not tried).
type BatchPublisher interface {
	PublishBatch(topics []string, msgs []*message.Message) []error
}

// sendFunc sends items with one batch produce and returns nil if every one
// was acknowledged, else one error per item.
type sendFunc func(items []batchItem) []error

// sequentialSend is the batch send of a publisher that cannot batch (tests'
// wrappers, fault wrappers): each item in turn, up to the first refusal.
func sequentialSend(out message.Publisher) sendFunc {
	return func(items []batchItem) []error {
		for i, it := range items {
			if err := out.Publish(it.topic, it.msg); err != nil {
				errs := make([]error, len(items))
				errs[i] = err
				for j := i + 1; j < len(items); j++ {
					errs[j] = errNotSent
				}
				return errs
			}
		}
		return nil
	}
}

// batchRelay is the commit barrier of the batch relay: it owns the send, the
// forwarded count, the breaker and the switch back to one message per produce
// after a refusal that retrying cannot fix.
type batchRelay struct {
	out          message.Publisher
	send         sendFunc
	onForwarded  func(n int)               // nil: nobody
	cb           *gobreaker.CircuitBreaker // nil: no breaker
	topicCreated func(topic string) bool
	resend       time.Duration
	logger       watermill.LoggerAdapter
	// afterAck, if set, runs between the acknowledgement and the commit (fault
	// build's crash hook).
	afterAck func(n int)
	// single makes the next polling transaction publish one message per
	// produce, so that the parker sees which message Kafka can never take (a
	// broker refuses a partition's whole record batch for one bad record).
	single atomic.Bool
}

// flush sends items and reports whether every one was acknowledged; only then
// are they counted as forwarded.
func (r *batchRelay) flush(items []batchItem) error {
	var errs []error
	run := func() (any, error) {
		errs = sendInWaves(r.send, items)
		return nil, firstRetryable(errs)
	}
	if r.cb != nil {
		if _, err := r.cb.Execute(run); err != nil && errs == nil {
			return breaker.MarkOpen(err) // open breaker: nothing was sent
		}
	} else {
		_, _ = run()
	}
	if errs == nil {
		if r.onForwarded != nil {
			r.onForwarded(len(items))
		}
		return nil
	}
	failed, unfixable := 0, false
	var first error
	for i, err := range errs {
		if err == nil {
			continue
		}
		failed++
		if first == nil || errors.Is(first, errNotSent) {
			first = err
		}
		if kafka.UnfixableReason(err, items[i].topic, r.topicCreated) != "" {
			unfixable = true
		}
	}
	if unfixable {
		r.single.Store(true)
	}
	return fmt.Errorf("kafka refused %d of %d message(s) of the batch: %w", failed, len(items), first)
}

// sendInWaves sends items with one batch produce per wave: wave k holds the
// k-th message of each Kafka key, in item order, and is sent only once Kafka
// acknowledged every message of the waves before it. So no message reaches
// Kafka before an earlier message of its key was acknowledged, whatever the
// producer does inside one batch (it may split a partition's messages over
// several requests, and a later request can succeed where an earlier one
// failed). Most batches hold one message per key: one wave.
func sendInWaves(send sendFunc, items []batchItem) []error {
	wave := make([]int, len(items)) // wave of each item
	seen := map[string]int{}
	waves := 1
	for i, it := range items {
		key := it.msg.Metadata.Get(kafka.MetadataKey)
		wave[i] = seen[key]
		seen[key]++
		waves = max(waves, wave[i]+1)
	}
	if waves == 1 {
		return send(items)
	}
	for w := range waves {
		var idx []int
		var batch []batchItem
		for i := range items {
			if wave[i] == w {
				idx = append(idx, i)
				batch = append(batch, items[i])
			}
		}
		werrs := send(batch)
		if werrs == nil {
			continue
		}
		errs := make([]error, len(items))
		for j, i := range idx {
			errs[i] = werrs[j]
		}
		for i := range items {
			if wave[i] > w {
				errs[i] = errNotSent
			}
		}
		return errs
	}
	return nil
}

// firstRetryable is the error the breaker judges: the first refusal that
// retrying may fix, else the first error (which the breaker does not count).
func firstRetryable(errs []error) error {
	var first error
	for _, err := range errs {
		if err == nil || errors.Is(err, errNotSent) {
			continue
		}
		if kafka.UnfixableReason(err, "", nil) == "" {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// batchBeginner begins the outbox subscriber's polling transactions as batchTx.
type batchBeginner struct {
	wsql.Beginner
	relay *batchRelay
}

// BeginTx implements wsql.Beginner.
func (b batchBeginner) BeginTx(ctx context.Context, opts *stdsql.TxOptions) (wsql.Tx, error) {
	tx, err := b.Beginner.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &batchTx{Tx: tx, relay: b.relay, single: b.relay.single.Swap(false)}, nil
}

// batchTx is one polling transaction of the batch relay: the messages of its
// rows are collected (batchCollector) and sent when it commits.
type batchTx struct {
	wsql.Tx
	relay *batchRelay
	// single: this transaction publishes each message at once (batchRelay.single).
	single bool
	items  []batchItem
	index  map[string]int // message UUID -> position in items
}

func (t *batchTx) add(topic string, m *message.Message) {
	if t.index == nil {
		t.index = map[string]int{}
	}
	if i, ok := t.index[m.UUID]; ok { // a row re-delivered after a Nack
		t.items[i] = batchItem{topic, m}
		return
	}
	t.index[m.UUID] = len(t.items)
	t.items = append(t.items, batchItem{topic, m})
}

// Commit sends the collected messages with one batch produce and commits (the
// subscriber's ack query has deleted their rows) only if Kafka acknowledged
// every one; otherwise it rolls back, so the rows stay and the whole batch is
// sent again by a later poll (consumers deduplicate the messages Kafka had
// taken), after waiting Config.ResendInterval.
func (t *batchTx) Commit() error {
	if len(t.items) == 0 {
		return t.Tx.Commit()
	}
	if err := t.relay.flush(t.items); err != nil {
		rbErr := t.Tx.Rollback()
		t.relay.logger.Info("kafka did not acknowledge the whole batch; its rows stay in the outbox", watermill.LogFields{"rows": len(t.items), "err": err.Error()})
		time.Sleep(t.relay.resend)
		return errors.Join(err, rbErr)
	}
	if t.relay.afterAck != nil {
		t.relay.afterAck(len(t.items))
	}
	return t.Tx.Commit()
}

// batchCollector is the bottom of the batch relay's publisher chain: it hands
// each message to its polling transaction (returning nil at once), or, in a
// transaction that publishes one message per produce, sends it now.
type batchCollector struct{ relay *batchRelay }

// Publish implements message.Publisher.
func (c batchCollector) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		tx, _ := wsql.TxFromContext(m.Context())
		if bt, ok := tx.(*batchTx); ok && !bt.single {
			bt.add(topic, m)
			continue
		}
		if err := c.relay.flush([]batchItem{{topic, m}}); err != nil {
			return err
		}
	}
	return nil
}

// Close implements message.Publisher.
func (c batchCollector) Close() error { return c.relay.out.Close() }

// newBatchRelay builds the batch relay of c: with one batch produce if
// c.Publisher is a BatchPublisher (possibly behind wrappers that have an
// Unwrap() message.Publisher method, such as pkg/metrics'), else one message
// after another.
func newBatchRelay(c Config, o options) *batchRelay {
	send := sequentialSend(c.Publisher)
	for p := c.Publisher; p != nil; {
		if bp, ok := p.(BatchPublisher); ok {
			send = func(items []batchItem) []error {
				topics, msgs := make([]string, len(items)), make([]*message.Message, len(items))
				for i, it := range items {
					topics[i], msgs[i] = it.topic, it.msg
				}
				return bp.PublishBatch(topics, msgs)
			}
			break
		}
		u, ok := p.(interface{ Unwrap() message.Publisher })
		if !ok {
			break
		}
		p = u.Unwrap()
	}
	if o.wrapSend != nil {
		send = o.wrapSend(send)
	}
	r := &batchRelay{out: c.Publisher, send: send, onForwarded: c.OnForwarded, topicCreated: c.TopicCreated,
		resend: c.ResendInterval, logger: c.Logger, afterAck: o.afterBatchAck}
	if c.Breaker.Enabled {
		r.cb = breaker.New(c.Breaker, "forwarder publisher", retryableRefusal, c.Logger)
	}
	return r
}

// retryableRefusal says whether a refusal of Kafka may go away by retrying
// (kafka.UnfixableReason says none): what the forwarder's breaker counts.
func retryableRefusal(err error) bool { return kafka.UnfixableReason(err, "", nil) == "" }
