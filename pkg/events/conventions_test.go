package events_test

import (
	"testing"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/messaging"
)

// TestMetadataFollowsMessaging: pkg/messaging does not import this package; it
// keys Kafka messages, parks outbox rows and shows poisoned messages by two
// metadata keys of its own. The events must use the same ones.
func TestMetadataFollowsMessaging(t *testing.T) {
	if events.MetadataKey != messaging.MetadataKey {
		t.Errorf("events.MetadataKey = %q, messaging.MetadataKey = %q: events would be sent unkeyed", events.MetadataKey, messaging.MetadataKey)
	}
	if events.MetadataType != messaging.MetadataEventType {
		t.Errorf("events.MetadataType = %q, messaging.MetadataEventType = %q", events.MetadataType, messaging.MetadataEventType)
	}
	if got := messaging.ReasonCode(&events.DecodeError{Kind: events.ErrMalformed}); got != messaging.ReasonInvalidEvent {
		t.Errorf("ReasonCode(DecodeError) = %q, want %q", got, messaging.ReasonInvalidEvent)
	}
	if got := messaging.ReasonCode(&events.DecodeError{Kind: events.ErrUnsupportedVersion}); got != events.ReasonUnsupportedVersion || !messaging.ValidReasonCode(got) {
		t.Errorf("ReasonCode(unsupported version) = %q, want the valid code %q", got, events.ReasonUnsupportedVersion)
	}
}
