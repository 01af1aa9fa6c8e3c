package outbox

import (
	"errors"
	"fmt"

	"github.com/onceflow/onceflow/pkg/failure"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Bounds on what Outbox.Publish writes. They are defence in depth: each
// service bounds what a client can put into an event at its edge (ids,
// correlation ids, currencies); these bounds make sure that no row the forwarder
// could never deliver is written even if an edge check is missing. Both are far
// below Kafka's default record limit (1 MiB broker max.message.bytes, 1,000,000
// bytes sarama Producer.MaxMessageBytes).
const (
	// MaxMetadataValueBytes bounds each metadata value of an event (correlation id,
	// causation id, key, ...): 16 KiB, the size of the largest request header the
	// HTTP servers accept.
	MaxMetadataValueBytes = 16 << 10
	// MaxMessageBytes bounds one event as written: payload plus every metadata key
	// and value. 256 KiB.
	MaxMessageBytes = 256 << 10
)

// ErrMessageTooLarge is returned (wrapped, and marked Permanent) by Outbox.Publish
// for an event with a metadata value over MaxMetadataValueBytes or a total size
// over MaxMessageBytes. Nothing is written; the caller's transaction should roll
// back. An HTTP handler answers it as a client error; a consumer handler's
// message goes to the poison queue.
var ErrMessageTooLarge = errors.New("event exceeds the outbox size bounds")

// checkSize returns a Permanent error wrapping ErrMessageTooLarge if m breaks the
// bounds above.
func checkSize(m *message.Message) error {
	total := len(m.Payload)
	for k, v := range m.Metadata {
		if len(v) > MaxMetadataValueBytes {
			return failure.Permanent(fmt.Errorf("%w: metadata %q of event %s has %d bytes (max %d)",
				ErrMessageTooLarge, k, m.UUID, len(v), MaxMetadataValueBytes))
		}
		total += len(k) + len(v)
	}
	if total > MaxMessageBytes {
		return failure.Permanent(fmt.Errorf("%w: event %s has %d bytes (max %d)", ErrMessageTooLarge, m.UUID, total, MaxMessageBytes))
	}
	return nil
}
