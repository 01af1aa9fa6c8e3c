package poison

import (
	"context"

	"github.com/onceflow/onceflow/pkg/consumer/parkkey"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/outbox/parking"
)

// Keys returns the tool's view of the parked keys of its database.
func (t *Tool) Keys() parkkey.Admin { return parkkey.Admin{DB: t.db} }

// parked is the parking of the service's outbox. Its own Outbox wakes no
// forwarder: the service's forwarders find a replayed row at their next poll.
func (t *Tool) parked() *parking.Parking {
	p, _ := parking.New(parking.Config{DB: t.db, Outbox: outbox.New()}) // both given
	return p
}

// Parked lists the parked outbox rows, in park order.
func (t *Tool) Parked(ctx context.Context) ([]parking.Row, error) {
	return t.parked().List(ctx)
}

// ParkedRow returns one parked row with its payload, or parking.ErrNotFound.
func (t *Tool) ParkedRow(ctx context.Context, id int64) (parking.Row, error) {
	return t.parked().Get(ctx, id)
}

// ReplayParked replays the parked row id (the head of its key); see
// parking.Parking.Replay.
func (t *Tool) ReplayParked(ctx context.Context, id int64) (parking.Row, error) {
	return t.parked().Replay(ctx, id)
}

// ReplayAllParked replays the head of every key with parked rows.
func (t *Tool) ReplayAllParked(ctx context.Context) ([]parking.Row, error) {
	return t.parked().ReplayAll(ctx)
}

// DiscardParked discards the parked row id (the head of its key); see
// parking.Parking.Discard.
func (t *Tool) DiscardParked(ctx context.Context, id int64) (parking.Row, error) {
	return t.parked().Discard(ctx, id)
}
