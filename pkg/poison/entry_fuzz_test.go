package poison

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/internal/fuzzseed"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// poisonSeeds are records of a poison topic as the poison step writes them: a
// valid event that a handler refused, and bytes that were never an event, with
// the metadata Watermill's PoisonQueue middleware and the consumer stack add,
// turned into records by the poison publisher's marshaler; as (value, key,
// headers), headers one "name: value" per line.
func poisonSeeds(t testing.TB) []fuzzseed.Seed {
	t.Helper()
	poisoned := func(name, id, key string, payload []byte) fuzzseed.Seed {
		msg := message.NewMessage(id, payload)
		if key != "" {
			msg.Metadata.Set(kafka.MetadataKey, key)
			msg.Metadata.Set(kafka.MetadataEventType, "payment.completed")
			msg.Metadata.Set(middleware.CorrelationIDMetadataKey, "req-1")
		}
		msg.Metadata.Set(middleware.ReasonForPoisonedKey, "handler: unknown order o-1")
		msg.Metadata.Set(failure.MetadataReasonCode, "unknown_order")
		msg.Metadata.Set(middleware.PoisonedTopicKey, "payments")
		msg.Metadata.Set(middleware.PoisonedHandlerKey, "order-payments")
		msg.Metadata.Set(middleware.PoisonedSubscriberKey, "kafka")
		msg.Metadata.Set(failure.MetadataPoisonedGroup, "order")
		msg.Metadata.Set(failure.MetadataReplayedAt, "2026-11-23T10:00:00Z")
		return fuzzseed.KafkaSeed(t, name, "order.poison", msg)
	}
	return []fuzzseed.Seed{
		poisoned("refused-event", "01a207bd-a5cb-79e0-b265-d52a9c102891", "o-1",
			[]byte(`{"type":"payment.completed","schema_version":1,"order_id":"o-1","order_version":2,`+
				`"occurred_at":"2026-11-23T09:00:00Z","data":{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}}`)),
		poisoned("not-an-event", "id-2", "", []byte("\x00\xffnot json")),
	}
}

// TestPoisonEntryFuzzSeeds keeps testdata/fuzz/FuzzPoisonEntry/seed-* equal
// to what the poison publisher writes (ONCEFLOW_FUZZ_SEEDS=write regenerates
// them).
func TestPoisonEntryFuzzSeeds(t *testing.T) {
	fuzzseed.Sync(t, "FuzzPoisonEntry", poisonSeeds(t))
}

// FuzzPoisonEntry reads any record of a poison topic as the poison tooling
// does (List, Get, the admin endpoints) and builds the message a replay would
// send. The properties: no panic; the entry shows the record's id, payload
// bytes and metadata, and encodes as the admin endpoints' JSON; the replay
// message keeps the id, the payload bytes and every header but the poison
// step's own, is marked replayed, and passes through the Kafka marshaler and
// back unchanged (a replay sent to the topic it came from is the message that
// was poisoned).
func FuzzPoisonEntry(f *testing.F) {
	u := kafka.Marshaler(false)
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, value, key []byte, headers string) {
		km := fuzzseed.KafkaRecord("order.poison", value, key, headers)
		km.Timestamp = at
		e, err := entryOf(u, km)
		if err != nil {
			return // List fails with the unmarshaler's error: nothing to show
		}
		if e.Offset != km.Offset || !e.PoisonedAt.Equal(at) || e.Payload != string(value) {
			t.Fatalf("entry %+v does not show the record", e)
		}
		if _, err := json.Marshal(e); err != nil {
			t.Fatalf("the admin endpoints cannot show the entry: %v", err)
		}

		msg := replayMessage(e, at)
		if msg.UUID != e.ID || !bytes.Equal(msg.Payload, value) {
			t.Fatalf("replay changed the id or payload: %q %q, want %q %q", msg.UUID, msg.Payload, e.ID, value)
		}
		for _, k := range []string{middleware.ReasonForPoisonedKey, middleware.PoisonedTopicKey, middleware.PoisonedHandlerKey,
			middleware.PoisonedSubscriberKey, failure.MetadataPoisonedGroup} {
			if _, ok := msg.Metadata[k]; ok {
				t.Fatalf("the replay carries the poison step's %q", k)
			}
		}
		if msg.Metadata.Get(failure.MetadataReplayedAt) != at.Format(time.RFC3339Nano) {
			t.Fatalf("replayed_at = %q", msg.Metadata.Get(failure.MetadataReplayedAt))
		}
		for k, v := range e.Metadata {
			if _, dropped := map[string]bool{middleware.ReasonForPoisonedKey: true, middleware.PoisonedTopicKey: true,
				middleware.PoisonedHandlerKey: true, middleware.PoisonedSubscriberKey: true,
				failure.MetadataPoisonedGroup: true, failure.MetadataReplayedAt: true}[k]; !dropped && msg.Metadata.Get(k) != v {
				t.Fatalf("the replay lost header %q=%q", k, v)
			}
		}

		rec, err := u.Marshal(e.FromTopic, msg)
		if err != nil {
			t.Fatalf("the replay cannot be sent to Kafka: %v", err)
		}
		back, err := u.Unmarshal(consumed(t, rec))
		if err != nil {
			t.Fatalf("the replay sent does not read back: %v", err)
		}
		if back.UUID != msg.UUID || !bytes.Equal(back.Payload, msg.Payload) || !maps.Equal(back.Metadata, msg.Metadata) {
			t.Fatalf("the replay changed on the way through Kafka:\n got %s %q %v\nwant %s %q %v",
				back.UUID, back.Payload, back.Metadata, msg.UUID, msg.Payload, msg.Metadata)
		}
	})
}

// consumed is the record a consumer would receive for rec.
func consumed(t *testing.T, rec *sarama.ProducerMessage) *sarama.ConsumerMessage {
	t.Helper()
	km := &sarama.ConsumerMessage{Topic: rec.Topic}
	var err error
	if rec.Key != nil {
		if km.Key, err = rec.Key.Encode(); err != nil {
			t.Fatal(err)
		}
	}
	if km.Value, err = rec.Value.Encode(); err != nil {
		t.Fatal(err)
	}
	for i := range rec.Headers {
		km.Headers = append(km.Headers, &rec.Headers[i])
	}
	return km
}
