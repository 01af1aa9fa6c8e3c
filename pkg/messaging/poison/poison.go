// Package poison is the tooling for a service's poison topic: list what was
// poisoned and why, show one message, replay one or all of them to the consumer
// that poisoned them, and purge. A replay goes to that consumer's delayed path
// in the service's database (messaging.Redeliver), so only its consumer group
// sees it again (ADR 32). Replaying is safe to repeat: a replayed message keeps
// its id, so the consumer's inbox drops it if it was processed meanwhile, and
// the consumer's version check ignores it if it is stale.
//
// It is used by each service's "poison" subcommand and by its admin HTTP
// endpoints (Routes). See ADR 15.
package poison

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/messaging"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// ErrNotFound is returned for an offset that is not (or no longer) in the topic.
var ErrNotFound = errors.New("no poisoned message at that offset")

// Entry is one poisoned message.
type Entry struct {
	// Offset identifies the message in the poison topic (which has one partition).
	Offset     int64     `json:"offset"`
	PoisonedAt time.Time `json:"poisoned_at"`
	ID         string    `json:"id"`
	// Reason is the error that made the consumer give up, in full (admin only:
	// it may hold SQL messages and other internals).
	Reason string `json:"reason"`
	// ReasonCode is the public code of that error (failure.ReasonCode), the one
	// the order timeline shows; empty for messages poisoned before codes existed.
	ReasonCode string `json:"reason_code,omitempty"`
	// FromTopic is the topic the message was consumed from.
	FromTopic string `json:"from_topic"`
	// Handler is the consumer that poisoned it, where Replay sends it.
	Handler string `json:"handler"`
	// Group is the consumer group of Handler (empty for messages poisoned
	// before per-group replays: Replay sends those to FromTopic).
	Group     string `json:"group,omitempty"`
	EventType string `json:"event_type,omitempty"`
	OrderID   string `json:"order_id,omitempty"`
	// Payload is the message body as text (it may not be valid JSON: that can be
	// why it was poisoned).
	Payload  string            `json:"payload"`
	Metadata map[string]string `json:"metadata"`
	// Replays lists when the message was sent back to FromTopic.
	Replays []time.Time `json:"replays"`
}

// Tool works on one poison topic.
type Tool struct {
	kafka kafka.Config
	topic string
	db    *sql.DB
	out   message.Publisher
}

// New returns a Tool for the poison topic of a service whose database (with the
// poison_replays table of messaging.Migrate) is db. Close it after use.
func New(kafka kafka.Config, topic string, db *sql.DB) *Tool {
	return &Tool{kafka: kafka.Defaults(), topic: topic, db: db, out: kafka.NewPoisonPublisher(watermill.NopLogger{})}
}

// Close releases the Kafka connection.
func (t *Tool) Close() error { return t.out.Close() }

// List returns every message in the poison topic, oldest first, with its replays.
func (t *Tool) List(ctx context.Context) ([]Entry, error) {
	entries, err := t.read(ctx)
	if err != nil {
		return nil, err
	}
	replays, err := t.replays(ctx)
	if err != nil {
		return nil, err
	}
	for i := range entries {
		entries[i].Replays = replays[entries[i].Offset]
	}
	return entries, nil
}

// Get returns the message at offset, or ErrNotFound.
func (t *Tool) Get(ctx context.Context, offset int64) (Entry, error) {
	list, err := t.List(ctx)
	if err != nil {
		return Entry{}, err
	}
	for _, e := range list {
		if e.Offset == offset {
			return e, nil
		}
	}
	return Entry{}, ErrNotFound
}

// Replay sends the message at offset again to the consumer that poisoned it,
// with its id, payload and original metadata, marked with replayed_at, and
// records the replay in poison_replays. It writes the message on that
// consumer's delayed path (messaging.Redeliver), due at once, in the same
// transaction as the record: only that consumer group gets it, through its
// inbox. A message that does not name its consumer group (poisoned before
// per-group replays) is published to the topic it came from instead, where
// every group of the topic sees it. It returns ErrNotFound for an unknown
// offset.
func (t *Tool) Replay(ctx context.Context, offset int64) (Entry, error) {
	e, err := t.Get(ctx, offset)
	if err != nil {
		return Entry{}, err
	}
	return e, t.replay(ctx, e)
}

// ReplayAll replays every message that was not replayed yet and returns them.
func (t *Tool) ReplayAll(ctx context.Context) ([]Entry, error) {
	list, err := t.List(ctx)
	if err != nil {
		return nil, err
	}
	var done []Entry
	for _, e := range list {
		if len(e.Replays) > 0 {
			continue
		}
		if err := t.replay(ctx, e); err != nil {
			return done, err
		}
		done = append(done, e)
	}
	return done, nil
}

func (t *Tool) replay(ctx context.Context, e Entry) error {
	if e.FromTopic == "" {
		return fmt.Errorf("message at offset %d does not say which topic it came from", e.Offset)
	}
	now := time.Now().UTC()
	msg := replayMessage(e, now)
	record := func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO poison_replays (poison_topic, poison_offset, message_id, replayed_at) VALUES (?, ?, ?, ?)",
			t.topic, e.Offset, e.ID, now)
		return err
	}
	if e.Group == "" || e.Handler == "" {
		if err := t.out.Publish(e.FromTopic, msg); err != nil {
			return fmt.Errorf("replaying offset %d to %s: %w", e.Offset, e.FromTopic, err)
		}
		return sqldb.InTx(ctx, t.db, record)
	}
	return sqldb.InTx(ctx, t.db, func(ctx context.Context, tx *sql.Tx) error {
		if err := messaging.Redeliver(ctx, tx, e.Group, e.Handler, e.FromTopic, msg); err != nil {
			return fmt.Errorf("replaying offset %d to consumer %s of group %s: %w", e.Offset, e.Handler, e.Group, err)
		}
		return record(ctx, tx)
	})
}

// replayMessage is the message a replay of e sends: e's id and payload, its
// metadata without what the poison step added (and without an earlier
// replay's mark), marked as replayed at now.
func replayMessage(e Entry, now time.Time) *message.Message {
	msg := message.NewMessage(e.ID, []byte(e.Payload))
	for k, v := range e.Metadata {
		switch k {
		case middleware.ReasonForPoisonedKey, middleware.PoisonedTopicKey, middleware.PoisonedHandlerKey,
			middleware.PoisonedSubscriberKey, messaging.MetadataReplayedAt, messaging.MetadataPoisonedGroup:
		default:
			msg.Metadata.Set(k, v)
		}
	}
	msg.Metadata.Set(messaging.MetadataReplayedAt, now.Format(time.RFC3339Nano))
	return msg
}

// PurgeReplayed deletes the messages of the poison topic that were replayed,
// from the oldest up to the first one that was not (Kafka can only delete a
// prefix), and returns how many went: the poison topic's cleanup that never
// loses a message nobody looked at. A message whose replay record was pruned
// (ADR 25) counts as not replayed.
func (t *Tool) PurgeReplayed(ctx context.Context) (int64, error) {
	list, err := t.List(ctx)
	if err != nil {
		return 0, err
	}
	upTo := int64(-1)
	for _, e := range list {
		if len(e.Replays) == 0 {
			break
		}
		upTo = e.Offset
	}
	if upTo < 0 {
		return 0, nil
	}
	return t.Purge(ctx, upTo)
}

// Purge deletes the messages of the poison topic up to and including offset (all
// of them if offset < 0) and returns how many went. Kafka can only delete a
// prefix of a partition, not single messages.
func (t *Tool) Purge(ctx context.Context, offset int64) (int64, error) {
	client, err := sarama.NewClient(t.kafka.Brokers, t.kafka.ConsumerConfig())
	if err != nil {
		return 0, err
	}
	defer client.Close()
	oldest, newest, err := bounds(client, t.topic)
	if err != nil {
		return 0, err
	}
	upTo := newest // exclusive
	if offset >= 0 && offset+1 < newest {
		upTo = offset + 1
	}
	if upTo <= oldest {
		return 0, nil
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return 0, err
	}
	if err := admin.DeleteRecords(t.topic, map[int32]int64{0: upTo}); err != nil {
		return 0, fmt.Errorf("deleting records of %s: %w", t.topic, err)
	}
	_, err = t.db.ExecContext(ctx, "DELETE FROM poison_replays WHERE poison_topic = ? AND poison_offset < ?", t.topic, upTo)
	return upTo - oldest, err
}

// bounds returns the oldest and the next offset of the poison topic's one partition.
func bounds(client sarama.Client, topic string) (oldest, newest int64, err error) {
	partitions, err := client.Partitions(topic)
	if err != nil {
		return 0, 0, err
	}
	if len(partitions) != 1 {
		return 0, 0, fmt.Errorf("poison topic %s has %d partitions; the tooling expects 1", topic, len(partitions))
	}
	if oldest, err = client.GetOffset(topic, 0, sarama.OffsetOldest); err != nil {
		return 0, 0, err
	}
	newest, err = client.GetOffset(topic, 0, sarama.OffsetNewest)
	return oldest, newest, err
}

func (t *Tool) read(ctx context.Context) ([]Entry, error) {
	client, err := sarama.NewClient(t.kafka.Brokers, t.kafka.ConsumerConfig())
	if err != nil {
		return nil, err
	}
	defer client.Close()
	oldest, newest, err := bounds(client, t.topic)
	if err != nil || newest <= oldest {
		return nil, err
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(t.topic, 0, oldest)
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	unmarshaler := kafka.Marshaler(false)
	var entries []Entry
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("reading %s: timed out", t.topic)
		case km := <-pc.Messages():
			e, err := entryOf(unmarshaler, km)
			if err != nil {
				return nil, err
			}
			entries = append(entries, e)
			if km.Offset >= newest-1 {
				return entries, nil
			}
		}
	}
}

// entryOf reads one record of the poison topic, as the poison step wrote it,
// into an Entry (without its replays). Any bytes are accepted: a message may
// have been poisoned because it was malformed. It fails only if u does.
func entryOf(u wkafka.Unmarshaler, km *sarama.ConsumerMessage) (Entry, error) {
	m, err := u.Unmarshal(km)
	if err != nil {
		return Entry{}, err
	}
	return Entry{
		Offset: km.Offset, PoisonedAt: km.Timestamp.UTC(), ID: m.UUID,
		Reason:     m.Metadata.Get(middleware.ReasonForPoisonedKey),
		ReasonCode: m.Metadata.Get(failure.MetadataReasonCode),
		FromTopic:  m.Metadata.Get(middleware.PoisonedTopicKey),
		Handler:    m.Metadata.Get(middleware.PoisonedHandlerKey),
		Group:      m.Metadata.Get(messaging.MetadataPoisonedGroup),
		EventType:  m.Metadata.Get(kafka.MetadataEventType),
		OrderID:    m.Metadata.Get(kafka.MetadataKey),
		Payload:    string(m.Payload), Metadata: m.Metadata,
	}, nil
}

func (t *Tool) replays(ctx context.Context) (map[int64][]time.Time, error) {
	rows, err := t.db.QueryContext(ctx, "SELECT poison_offset, replayed_at FROM poison_replays WHERE poison_topic = ?", t.topic)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64][]time.Time{}
	for rows.Next() {
		var off int64
		var at time.Time
		if err := rows.Scan(&off, &at); err != nil {
			return nil, err
		}
		out[off] = append(out[off], at.UTC())
	}
	for _, ts := range out {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	}
	return out, rows.Err()
}
