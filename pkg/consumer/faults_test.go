//go:build faults

package consumer_test

import (
	"log/slog"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/consumertest"
	"github.com/onceflow/onceflow/pkg/consumer"
)

// TestFaultSwitchesReachTheParts (fault build only): WithFaults, applied as a
// service applies its options (to its consumers before they run), switches
// the inbox off: a message delivered three times has three effects.
func TestFaultSwitchesReachTheParts(t *testing.T) {
	r := consumertest.New(t, nil, func(r *consumertest.Rig) message.NoPublishHandlerFunc { return r.Effect },
		consumer.WithFaults(consumer.Faults{DisableInbox: true}, slog.New(slog.DiscardHandler)))
	id, marker := watermill.NewUUID(), watermill.NewUUID()
	r.Publish(t, consumertest.MsgWithID(id), consumertest.MsgWithID(id), consumertest.MsgWithID(id), consumertest.MsgWithID(marker))
	r.WaitEffect(t, marker)
	if got := r.Effects(t, id); got != 3 {
		t.Fatalf("effects with the inbox switched off = %d, want 3", got)
	}
}
