package events_test

import (
	"testing"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// TestMetadataFollowsMessaging: pkg/kafka and pkg/failure do not import this package; it
// keys Kafka messages, parks outbox rows and shows poisoned messages by two
// metadata keys of its own. The events must use the same ones.
func TestMetadataFollowsMessaging(t *testing.T) {
	if events.MetadataKey != kafka.MetadataKey {
		t.Errorf("events.MetadataKey = %q, kafka.MetadataKey = %q: events would be sent unkeyed", events.MetadataKey, kafka.MetadataKey)
	}
	if events.MetadataType != kafka.MetadataEventType {
		t.Errorf("events.MetadataType = %q, kafka.MetadataEventType = %q", events.MetadataType, kafka.MetadataEventType)
	}
	if got := failure.ReasonCode(&events.DecodeError{Kind: events.ErrMalformed}); got != failure.ReasonInvalidEvent {
		t.Errorf("ReasonCode(DecodeError) = %q, want %q", got, failure.ReasonInvalidEvent)
	}
	if got := failure.ReasonCode(&events.DecodeError{Kind: events.ErrUnsupportedVersion}); got != events.ReasonUnsupportedVersion || !failure.ValidReasonCode(got) {
		t.Errorf("ReasonCode(unsupported version) = %q, want the valid code %q", got, events.ReasonUnsupportedVersion)
	}
}
