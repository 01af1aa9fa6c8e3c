//go:build faults

package outbox

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/internal/crash"
)

// Faults are the forwarder's fault-injection switches: a crash at the moment a
// crash is most likely to cause duplicates, a fault point that makes Kafka
// refuse a row in the middle of a batch, and switches that turn one
// protection off so that a negative control can show the damage.
//
// This file is compiled only with `-tags faults` (e2e/harness builds the
// services that way; `make build`, `make run`, `make bench` and the Dockerfile
// do not), so a production binary has none of them. A service reads
// them from <SERVICE>_FAULT_* variables, e.g. ORDER_FAULT_CRASH_AFTER_PUBLISH.
// Zero values are off.
type Faults struct {
	// CrashAfterPublish kills the process (SIGKILL) each time its forwarder has
	// published this many events since start: right after Kafka acknowledged the
	// last one and before its outbox row is deleted, so the row is published again
	// after the restart (batch relay: after the batch holding it was
	// acknowledged, before the commit that deletes the batch's rows).
	CrashAfterPublish int `env:"CRASH_AFTER_PUBLISH"`
	// RefuseMidBatch makes the forwarder's Kafka publisher refuse, once per
	// process, the first row that follows a forwarded row in the same polling
	// transaction (a row in the middle of a batch), and keep refusing it until that
	// delivery's ack deadline has passed: what a Kafka outage that begins in the
	// middle of a batch does, caused on purpose instead of hoping a kill lands
	// there. It fires as soon as a batch holds two rows (any backlog). With the
	// batch relay the refusal is Kafka's answer to the batch produce instead:
	// once per process, the second message of the first batch of two or more
	// is refused and the others are acknowledged.
	RefuseMidBatch bool `env:"REFUSE_MID_BATCH"`
	// BatchNoBarrier makes the batch relay's send report every batch as
	// acknowledged whatever Kafka answered, so the polling transaction commits
	// (deleting the rows) although Kafka refused some of its messages. Negative
	// control only: a refused message is lost.
	BatchNoBarrier bool `env:"BATCH_NO_BARRIER"`
	// StockAck makes the forwarder use watermill-sql v4.1.2's own
	// MySQLQueueOffsetsAdapter{DeleteOnAck: true}, which deletes the rows of a
	// batch behind one Kafka refused. Negative control only: it loses events.
	StockAck bool `env:"STOCK_ACK"`
	// OversizeCorrelationPrefix makes the forwarder's Kafka publisher add
	// OversizePaddingBytes of metadata to every event whose correlation id
	// starts with it: an event the broker refuses as too large once the topic's
	// max.message.bytes is below that (the oversized-input scenario).
	// The edge bounds what a client can send, so this is how a test gets an
	// unpublishable event to the forwarder; the refusal itself is Kafka's own.
	OversizeCorrelationPrefix string `env:"OVERSIZE_CORRELATION_PREFIX"`
	// StockRelay replaces the outbox and its relay with the stock Watermill
	// setup (stock.go): watermill-sql's DefaultMySQLSchema and
	// DefaultMySQLOffsetsAdapter with the default forwarder configuration.
	// The other switches do not apply to it. Negative control and benchmark
	// lane: it skips a row that commits below its watermark (ADR 3).
	StockRelay bool `env:"STOCK_RELAY"`
	// StockPollInterval is the stock relay's poll (0: Watermill's 1 s).
	StockPollInterval time.Duration `env:"STOCK_POLL_INTERVAL"`
	// LateOffsetEvery makes every Nth event of type LateOffsetEventType get
	// an outbox offset below every offset the table hands out: what the
	// relay sees when the transaction that took an early offset commits after
	// later ones were relayed (the out-of-order commits of ADR 3), caused on
	// purpose in every run. Only the first event of a key may be chosen
	// (its type says so), so that the key's order is not changed by the fault.
	LateOffsetEvery     int    `env:"LATE_OFFSET_EVERY"`
	LateOffsetEventType string `env:"LATE_OFFSET_EVENT_TYPE"`
}

// OversizePaddingBytes is the metadata OversizeCorrelationPrefix adds.
const OversizePaddingBytes = 10 << 10

// WithFaults returns the Option that puts f's hooks and switches on a
// forwarder (none if f is zero). It logs to logger a warning naming every
// switch that is on.
func WithFaults(f Faults, logger *slog.Logger) Option {
	return func(o *options) {
		if f == (Faults{}) {
			return
		}
		logger.Warn("FAULT INJECTION: this process's forwarder runs with test-only fault switches", "faults", f)
		f.install(o, logger)
	}
}

// install puts the configured fault hooks and switches on o.
func (f Faults) install(o *options, logger *slog.Logger) {
	if f.CrashAfterPublish > 0 && o.relay == RelayBatch {
		// The batch relay publishes at its commit: crash between Kafka's
		// acknowledgement of the batch and the commit that deletes its rows.
		kill := crash.Every(f.CrashAfterPublish)
		o.afterBatchAck = func(n int) {
			for range n {
				kill()
			}
		}
	} else if f.CrashAfterPublish > 0 {
		kill := crash.Every(f.CrashAfterPublish)
		o.middlewares = append(o.middlewares, func(h message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				out, err := h(msg)
				if err == nil {
					kill()
				}
				return out, err
			}
		})
	}
	if f.RefuseMidBatch && o.relay == RelayBatch {
		o.wrapSend = refuseInBatch(logger)
	} else if f.RefuseMidBatch {
		o.wrapOut = func(out message.Publisher) message.Publisher {
			return &midBatchRefuser{Publisher: out, logger: logger}
		}
	}
	if f.BatchNoBarrier {
		// The barrier stays in the product; the fault build defeats it from
		// outside by telling it Kafka took every batch, whatever Kafka answered.
		inner := o.wrapSend
		o.wrapSend = func(send sendFunc) sendFunc {
			if inner != nil {
				send = inner(send)
			}
			return func(items []batchItem) []error {
				if errs := send(items); errs != nil {
					logger.Warn("FAULT INJECTION: the batch relay is told Kafka took a batch it refused", "messages", len(items))
				}
				return nil
			}
		}
	}
	if f.OversizeCorrelationPrefix != "" {
		inner := o.wrapOut
		o.wrapOut = func(out message.Publisher) message.Publisher {
			if inner != nil {
				out = inner(out)
			}
			return oversizer{Publisher: out, prefix: f.OversizeCorrelationPrefix}
		}
	}
	if f.StockAck {
		o.offsets = wsql.MySQLQueueOffsetsAdapter{DeleteOnAck: true}
	}
	if f.StockRelay {
		o.adjustOutbox = func(ob *Outbox) { ob.sqlTopic, ob.schema = StockTopic, wsql.DefaultMySQLSchema{} }
		o.replace = func(c Config) (*Forwarder, error) { return newStockForwarder(c, f.StockPollInterval) }
	}
	if f.LateOffsetEvery > 0 {
		inner := o.adjustOutbox
		o.adjustOutbox = func(ob *Outbox) {
			if inner != nil {
				inner(ob)
			}
			var schema wsql.SchemaAdapter = queueSchema(1, false)
			if ob.schema != nil {
				schema = ob.schema
			}
			ob.schema = &lateOffsets{SchemaAdapter: schema, every: f.LateOffsetEvery, eventType: f.LateOffsetEventType, logger: logger}
		}
	}
}

var errRefusedMidBatch = errors.New("fault REFUSE_MID_BATCH: Kafka refuses this row, in the middle of a batch, until its ack deadline has passed")

// midBatchRefuser is the forwarder's Kafka publisher with the RefuseMidBatch
// fault point. It recognises the batch of a row by the polling transaction the
// outbox subscriber puts in the message context: a row whose transaction already
// forwarded a row is in the middle of a batch. The first such row is refused for
// as long as that transaction lasts (the subscriber re-sends it until the ack
// deadline, then gives up and commits); rows of later transactions pass.
type midBatchRefuser struct {
	message.Publisher
	logger *slog.Logger

	mu      sync.Mutex
	lastTx  wsql.Tx // transaction of the last row that was forwarded
	holding wsql.Tx // transaction whose row is being refused
	fired   bool
}

// Publish implements message.Publisher.
func (p *midBatchRefuser) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		tx, _ := wsql.TxFromContext(m.Context())
		if p.refuse(tx, m.UUID) {
			return errRefusedMidBatch
		}
		if err := p.Publisher.Publish(topic, m); err != nil {
			return err
		}
		p.mu.Lock()
		p.lastTx = tx
		p.mu.Unlock()
	}
	return nil
}

func (p *midBatchRefuser) refuse(tx wsql.Tx, id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case tx == nil:
		return false
	case p.holding != nil && tx == p.holding:
		return true
	case p.holding != nil:
		p.holding = nil // the polling transaction that held the row has ended
		return false
	case !p.fired && tx == p.lastTx:
		p.holding, p.fired = tx, true
		p.logger.Warn("FAULT INJECTION: refusing a row in the middle of a batch until its ack deadline", "message_id", id)
		return true
	}
	return false
}

// refuseInBatch is RefuseMidBatch for the batch relay: the first batch of two
// or more messages is sent without its second message, which is reported
// refused, as Kafka reports a message it did not take in a batch produce.
func refuseInBatch(logger *slog.Logger) func(sendFunc) sendFunc {
	var fired atomic.Bool
	return func(send sendFunc) sendFunc {
		return func(items []batchItem) []error {
			if len(items) < 2 || !fired.CompareAndSwap(false, true) {
				return send(items)
			}
			logger.Warn("FAULT INJECTION: Kafka refuses a message in the middle of a batch produce", "message_id", items[1].msg.UUID)
			rest := append(append([]batchItem{}, items[:1]...), items[2:]...)
			restErrs := send(rest)
			errs := make([]error, len(items))
			errs[1] = errRefusedMidBatch
			if restErrs != nil {
				errs[0] = restErrs[0]
				copy(errs[2:], restErrs[1:])
			}
			return errs
		}
	}
}

// oversizer pads the events whose correlation id starts with prefix (see
// Faults.OversizeCorrelationPrefix). It pads copies: the outbox row keeps the
// event as it was written.
type oversizer struct {
	message.Publisher
	prefix string
}

// Publish implements message.Publisher.
func (p oversizer) Publish(topic string, msgs ...*message.Message) error {
	out := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		out[i] = m
		if strings.HasPrefix(middleware.MessageCorrelationID(m), p.prefix) {
			out[i] = m.Copy()
			out[i].SetContext(m.Context())
			out[i].Metadata.Set("fault_padding", strings.Repeat("x", OversizePaddingBytes))
		}
	}
	return p.Publisher.Publish(topic, out...)
}
