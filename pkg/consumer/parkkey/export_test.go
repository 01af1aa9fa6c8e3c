package parkkey

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/consumer"
)

// SetReleaseHookForTest makes every release step of p call hook inside its
// transaction, after its writes, while it holds the key's lock (emptied: the
// step deleted the key's row). It exists only in test binaries.
func SetReleaseHookForTest(p *ParkKey, hook func(key string, emptied bool)) { p.beforeCommit = hook }

// ParkBehindIfParkedForTest runs the park check of consumer c on msg, in the
// transaction ctx carries if any (sqldb.ContextWithTx).
func ParkBehindIfParkedForTest(ctx context.Context, c consumer.Consumer, msg *message.Message) (bool, error) {
	msg.SetContext(ctx)
	return queuesOf(c).parkBehindIfParked(ctx, msg)
}

// ParkHeadForTest parks msg, which failed with cause, as the head of its key
// for consumer c, in the transaction ctx carries if any; head reports whether
// it became the head.
func ParkHeadForTest(ctx context.Context, c consumer.Consumer, msg *message.Message, cause error) (head bool, err error) {
	msg.SetContext(ctx)
	return queuesOf(c).parkHead(ctx, msg, cause)
}
