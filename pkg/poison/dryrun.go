package poison

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/dryrun"
)

// ErrNoConsumer is returned by DryRun for a message whose consumer this
// service does not run.
var ErrNoConsumer = errors.New("no such consumer in this service")

// DryRunConfig is what DryRun needs of the running service.
type DryRunConfig struct {
	// Handler returns a consumer's handler behind its inbox by name
	// (consumer.Consumers.Handler).
	Handler func(name string) (message.HandlerFunc, bool)
	// State reads the state of the order a message is about (may be nil).
	State func(orderID string) dryrun.State
}

// DryRun runs the message at offset, as a replay would deliver it, through
// the handler of the consumer that poisoned it, in a transaction that is
// rolled back (package dryrun), and returns the message and what a replay
// would change. Nothing is published or recorded. Errors: Get's, and
// ErrNoConsumer.
func (t *Tool) DryRun(ctx context.Context, offset int64, c DryRunConfig) (Entry, dryrun.Result, error) {
	e, err := t.Get(ctx, offset)
	if err != nil {
		return Entry{}, dryrun.Result{}, err
	}
	r, err := t.dryRun(ctx, e, c)
	return e, r, err
}

// dryRun runs e through the handler of the consumer that poisoned it, in a
// transaction that is rolled back.
func (t *Tool) dryRun(ctx context.Context, e Entry, c DryRunConfig) (dryrun.Result, error) {
	handle, ok := c.Handler(e.Handler)
	if !ok {
		return dryrun.Result{}, fmt.Errorf("offset %d was poisoned by %q: %w", e.Offset, e.Handler, ErrNoConsumer)
	}
	var state dryrun.State
	if c.State != nil {
		state = c.State(e.OrderID)
	}
	return dryrun.Run(ctx, t.db, handle, replayMessage(e, time.Now().UTC()), state)
}
