//go:build faults

package messaging_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/messaging"
)

// TestFaultSwitchesReachTheParts (fault build only): WithFaults, applied as a
// service applies its options (to its consumers before they run), switches
// the inbox off: a message delivered three times has three effects.
func TestFaultSwitchesReachTheParts(t *testing.T) {
	r := newConsumerRig(t, func(r *consumerRig) message.NoPublishHandlerFunc { return r.effect },
		func(cs *messaging.Consumers) {
			messaging.WithFaults(messaging.FaultConfig{DisableInbox: true})(cs)
		})
	id, marker := watermill.NewUUID(), watermill.NewUUID()
	r.publish(t, msgWithID(id), msgWithID(id), msgWithID(id), msgWithID(marker))
	waitEffect(t, r, marker)
	if got := r.effects(t, id); got != 3 {
		t.Fatalf("effects with the inbox switched off = %d, want 3", got)
	}
}
