package poison

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/consumer/parkkey"
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

// KeyDryRun is what a release of a parked key's queue would change.
type KeyDryRun struct {
	Key parkkey.ParkedKey `json:"key"`
	// StateChange is the change of the state's status ("PENDING ->
	// CONFIRMED"), or empty if the state would not change.
	StateChange string        `json:"state_change,omitempty"`
	Result      dryrun.Result `json:"result"`
}

// DryRunKey runs the queue of a parked key (see parkkey.Admin.Get; handler
// picks the consumer when several have the key parked), head first, through
// the handler of the consumer that parked it, as a release of the key would
// deliver it: one message after the other, each seeing what the ones before
// it wrote, stopping at the first that fails (it would become the key's head
// again). All in one transaction that is rolled back (dryrun.RunQueue):
// nothing is released, published or recorded. Errors: parkkey.Admin.Get's,
// and ErrNoConsumer.
func (t *Tool) DryRunKey(ctx context.Context, key, handler string, c DryRunConfig) (KeyDryRun, error) {
	pk, err := t.Keys().Get(ctx, key, handler)
	if err != nil {
		return KeyDryRun{}, err
	}
	handle, ok := c.Handler(pk.Handler)
	if !ok {
		return KeyDryRun{}, fmt.Errorf("key %s was parked by %q: %w", pk.Key, pk.Handler, ErrNoConsumer)
	}
	msgs := make([]*message.Message, 0, len(pk.Queue))
	for _, pm := range pk.Queue {
		m := message.NewMessage(pm.MessageID, []byte(pm.Payload))
		for k, v := range pm.Metadata {
			m.Metadata.Set(k, v)
		}
		msgs = append(msgs, m)
	}
	var state dryrun.State
	if c.State != nil {
		state = c.State(pk.Key)
	}
	r, err := dryrun.RunQueue(ctx, t.db, handle, msgs, state)
	if err != nil {
		return KeyDryRun{}, err
	}
	return KeyDryRun{Key: pk, StateChange: stateChange(r.Before, r.After), Result: r}, nil
}
