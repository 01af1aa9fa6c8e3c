package requeue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/msgtrace"
)

// Config shapes the requeue strategy (env prefix REQUEUE_, e.g.
// PAYMENT_REQUEUE_MAX_REQUEUES).
type Config struct {
	// MaxRequeues bounds how many times one message is requeued before it is
	// poisoned. Default 5; 1..100.
	MaxRequeues int `env:"MAX_REQUEUES"`
	// InitialDelay is the delay before the first requeued delivery. Default 5 s.
	// Delays have a granularity of one second (Watermill's delay metadata is
	// RFC 3339 without fractions), rounded down.
	InitialDelay time.Duration `env:"INITIAL_DELAY"`
	// MaxDelay caps the delay between requeued deliveries. Default 60 s.
	MaxDelay time.Duration `env:"MAX_DELAY"`
	// Multiplier grows the delay after each requeue (a float: 1.5 works).
	// Default 2; at least 1.
	Multiplier float64 `env:"MULTIPLIER"`
}

// Defaults returns c with zero fields set to their defaults.
func (c Config) Defaults() Config {
	if c.MaxRequeues == 0 {
		c.MaxRequeues = 5
	}
	if c.InitialDelay == 0 {
		c.InitialDelay = 5 * time.Second
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = 60 * time.Second
	}
	if c.Multiplier == 0 {
		c.Multiplier = 2
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.MaxRequeues < 1 || c.MaxRequeues > 100:
		return fmt.Errorf("requeue: max requeues %d is outside 1..100", c.MaxRequeues)
	case c.InitialDelay < 0 || c.MaxDelay < c.InitialDelay:
		return errors.New("requeue: need 0 <= initial delay <= max delay")
	case c.Multiplier < 1:
		return errors.New("requeue: multiplier must be >= 1")
	}
	return nil
}

// Delay returns the delay before the n-th requeued delivery (n >= 1):
// InitialDelay × Multiplier^(n-1), capped at MaxDelay. It is computed in
// floating point, so a Multiplier of 1.5 grows the delay by half (Watermill's
// DelayOnError truncates its multiplier to an integer).
func (c Config) Delay(n int) time.Duration {
	d := float64(c.InitialDelay) * math.Pow(c.Multiplier, float64(max(n-1, 0)))
	if d >= float64(c.MaxDelay) {
		return c.MaxDelay
	}
	return time.Duration(d)
}

// Requeue is the requeue strategy (a consumer.Strategy). Make it with New; one
// value serves every consumer given it.
type Requeue struct {
	config Config
}

// New returns the requeue strategy of c (zero fields take their defaults); it
// fails on an invalid c.
func New(c Config) (*Requeue, error) {
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Requeue{config: c}, nil
}

// Retryable implements consumer.Strategy: the stack's usual rule.
func (r *Requeue) Retryable(err error) bool { return consumer.RetryableInPlace(err) }

// Steps implements consumer.Strategy: the poison queue, then the requeue step.
// A message whose in-place retries are spent with an error the stack may give
// up on (consumer.GivesUpOn) that is not permanent is stored on the
// consumer's delayed path with its requeue count plus one, due after
// Config.Delay, and then acknowledged. A message requeued MaxRequeues times
// already fails with an error saying so and wrapping the last one: the poison
// queue poisons it. A permanent error is passed on at once (requeuing cannot
// fix it). If storing fails, the storing error is returned joined with the
// handler's: an outage is nacked (never poisoned), anything else is poisoned.
func (r *Requeue) Steps(c consumer.Consumer) ([]message.HandlerMiddleware, error) {
	cfg := r.config
	step := func(next message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := next(msg)
			if err == nil || !consumer.GivesUpOn(err) || failure.IsPermanent(err) {
				return out, err
			}
			n := count(msg)
			if n >= cfg.MaxRequeues {
				return nil, fmt.Errorf("requeued %d times (the bound), giving up: %w", n, err)
			}
			m := msg.Copy()
			m.SetContext(context.WithoutCancel(msg.Context()))
			m.Metadata.Set(delayed.MetadataRequeues, strconv.Itoa(n+1))
			m.Metadata.Set(delayed.MetadataFromTopic, c.Topic)
			m.Metadata.Set(delayed.MetadataHandler, c.Name)
			d := cfg.Delay(n + 1)
			delay.Message(m, delay.For(d))
			// On the delayed path the copy joins the polling transaction, which
			// deletes the row being handled when it commits: both or neither.
			// The transaction lasts until this delivery ends (package delayed
			// sets no ack deadline), so it cannot have committed already.
			var exec wsql.ContextExecutor = wsql.BeginnerFromStdSQL(c.DB)
			if tx, ok := wsql.TxFromContext(msg.Context()); ok {
				exec = tx
			}
			pub, perr := delayed.NewPublisher(exec, c.Group)
			if perr == nil {
				perr = pub.Publish(c.Name, m)
			}
			if perr != nil {
				return nil, errors.Join(fmt.Errorf("requeue: storing message %s: %w", msg.UUID, perr), err)
			}
			msgtrace.GivenUp(msg, "requeued", failure.ReasonCode(err))
			c.Logger.WarnContext(msg.Context(), "consumer: message requeued", "handler", c.Name, "message_id", msg.UUID,
				"requeues", n+1, "max_requeues", cfg.MaxRequeues, "delay", d.String(), "err", err)
			return nil, nil
		}
	}
	return append(append([]message.HandlerMiddleware{}, c.PoisonSteps...), step), nil
}

// count is how many times msg went to the delayed path already, from its
// delayed.MetadataRequeues: 0 if that is missing, not a number or negative
// (no step writes such a count; a producer's header must not buy a message
// more than MaxRequeues requeues).
func count(msg *message.Message) int {
	n, err := strconv.Atoi(msg.Metadata.Get(delayed.MetadataRequeues))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
