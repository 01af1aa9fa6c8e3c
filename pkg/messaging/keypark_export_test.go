package messaging

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// SetKeyReleaseHookForTest makes every release step of cs's parked keys call
// hook inside its transaction, after its writes, while it holds the key's lock
// (emptied: the step deleted the key's row). It exists only in test binaries.
func SetKeyReleaseHookForTest(cs *Consumers, hook func(key string, emptied bool)) {
	cs.parkKey.beforeCommit = hook
}

// ParkBehindIfParkedForTest runs the park-key check of cs's consumer handler
// (topic topic) on msg, in the transaction ctx carries if any (ContextWithTx).
func ParkBehindIfParkedForTest(ctx context.Context, cs *Consumers, handler, topic string, msg *message.Message) (bool, error) {
	msg.SetContext(ctx)
	return cs.keyQueues(consumer{name: handler, topic: topic}).parkBehindIfParked(ctx, msg)
}
