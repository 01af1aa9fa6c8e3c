package poison

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/pkg/consumer/delayed"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// ErrNotFound is returned for an offset the poison topic has not reached yet.
var ErrNotFound = errors.New("no poisoned message at that offset")

// ErrGone is returned for an offset that was purged: the poison topic now
// starts after it, or a purge overtook the read.
var ErrGone = errors.New("purged from the poison topic")

// ErrTimeout is returned when Kafka did not deliver the records a call needs
// within ReadTimeout. It wraps context.DeadlineExceeded.
var ErrTimeout = fmt.Errorf("the poison topic was not read in time: %w", context.DeadlineExceeded)

// The bounds of one call. A poison topic never expires, so every read
// is bounded in records and in time: a call reads one range of the topic,
// holds at most one page of messages, and answers within the services'
// request timeout (5 s) whatever the topic's size.
const (
	// DefaultLimit is a page's size when the query names none.
	DefaultLimit = 50
	// MaxLimit is the largest page.
	MaxLimit = 500
	// MaxScan is the most records one page with a filter examines: it ends
	// there, with a cursor to go on from, even if it is not full.
	MaxScan = 20_000
	// ReadTimeout bounds the reading of one call. An oldest-first page ends
	// with what it has read by then (and a cursor); any other call fails with
	// ErrTimeout.
	ReadTimeout = 2 * time.Second
)

// Order is the order a listing goes through the poison topic in.
type Order string

// The two orders of a listing.
const (
	NewestFirst Order = "newest"
	OldestFirst Order = "oldest"
)

// Query selects a page of the poison topic.
type Query struct {
	// Cursor is the offset the page starts at, included: the Next of the
	// previous page. Nil: the newest message (NewestFirst) or the oldest
	// (OldestFirst). A cursor that was purged is no error: oldest first, the
	// page starts at the oldest message left; newest first, it is empty.
	Cursor *int64
	// Limit is the most messages the page holds: DefaultLimit if 0, at most MaxLimit.
	Limit int
	// Order is NewestFirst if empty.
	Order Order
	// ReasonCode, if set, keeps only the messages with that reason code.
	ReasonCode string
	// notReplayed keeps only the messages never replayed (ReplayAll).
	notReplayed bool
}

// Page is one page of a listing.
type Page struct {
	Entries []Entry
	// Next is the cursor of the next page; nil when the page reached the end
	// of the topic (in its order).
	Next *int64
}

// Entry is one poisoned message.
type Entry struct {
	// Offset identifies the message in the poison topic (which has one partition).
	Offset     int64     `json:"offset"`
	PoisonedAt time.Time `json:"poisoned_at"`
	ID         string    `json:"id"`
	// Error is the error that made the consumer give up, in full (admin only:
	// it may hold SQL messages and other internals).
	Error string `json:"reason"`
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
// poison_replays table of Migrations) is db. Close it after use.
func New(kafka kafka.Config, topic string, db *sql.DB) *Tool {
	return &Tool{kafka: kafka.Defaults(), topic: topic, db: db, out: kafka.NewPoisonPublisher(watermill.NopLogger{})}
}

// Topic is the poison topic the tool works on.
func (t *Tool) Topic() string { return t.topic }

// Close releases the Kafka connection.
func (t *Tool) Close() error { return t.out.Close() }

// List returns one page of the poison topic, as q selects it, with each
// message's replays. It reads one range of the topic with one partition
// consumer: q.Limit records without a filter, MaxScan with one, for at most
// ReadTimeout; the page's Next says where to go on. Records purged while it
// reads are skipped, as a purged cursor is.
func (t *Tool) List(ctx context.Context, q Query) (Page, error) {
	q = q.normalized()
	r, err := t.open()
	if err != nil {
		return Page{}, err
	}
	defer r.close()
	for {
		page, err := t.scan(ctx, r, q)
		if !errors.Is(err, ErrGone) {
			return page, err
		}
		// A purge overtook the read: read again what is left. The topic's
		// start moves on each time, so this ends.
		oldest, oerr := r.client.GetOffset(t.topic, 0, sarama.OffsetOldest)
		if oerr != nil || oldest <= r.oldest {
			return Page{}, errors.Join(err, oerr)
		}
		r.oldest = oldest
	}
}

// scan reads the page of q (normalized) through r.
func (t *Tool) scan(ctx context.Context, r *reader, q Query) (Page, error) {
	from, to, ok := scanRange(q, r.oldest, r.newest)
	if !ok {
		return Page{}, nil
	}
	replays, err := t.replays(ctx, from, to)
	if err != nil {
		return Page{}, err
	}
	match := func(km *sarama.ConsumerMessage) bool {
		return (q.ReasonCode == "" || header(km, failure.MetadataReasonCode) == q.ReasonCode) &&
			(!q.notReplayed || len(replays[km.Offset]) == 0)
	}
	entry := func(km *sarama.ConsumerMessage) (Entry, error) {
		e, err := entryOf(r.unmarshaler, km)
		e.Replays = replays[km.Offset]
		return e, err
	}
	if q.Order == OldestFirst {
		var page Page
		next := from // the first offset not examined
		err := r.read(ctx, from, to, func(km *sarama.ConsumerMessage) error {
			next = km.Offset + 1
			if !match(km) {
				return nil
			}
			e, err := entry(km)
			if err != nil {
				return err
			}
			if page.Entries = append(page.Entries, e); len(page.Entries) == q.Limit {
				return errPageFull
			}
			return nil
		})
		switch {
		case err == nil && len(page.Entries) < q.Limit:
			next = to // the whole range was examined
		case errors.Is(err, ErrTimeout) && next > from:
			err = nil // the page ends where the time ran out
		}
		if err != nil {
			return Page{}, err
		}
		page.Next = cursor(next, r.oldest, r.newest)
		return page, nil
	}
	// Newest first: the range is read forward, keeping its newest matches.
	matches := newestMatches{limit: q.Limit}
	err = r.read(ctx, from, to, func(km *sarama.ConsumerMessage) error {
		if match(km) {
			matches.add(km)
		}
		return nil
	})
	if err != nil {
		return Page{}, err
	}
	kept, dropped := matches.newestFirst()
	var page Page
	for _, km := range kept {
		e, err := entry(km)
		if err != nil {
			return Page{}, err
		}
		page.Entries = append(page.Entries, e)
	}
	next := from - 1 // below the range...
	if dropped {
		next = kept[len(kept)-1].Offset - 1 // ...or below the oldest match kept, if older ones were left
	}
	page.Next = cursor(next, r.oldest, r.newest)
	return page, nil
}

// errPageFull ends a read when the page is full.
var errPageFull = errors.New("page full")

// Get returns the message at offset, or ErrGone if it was purged, or
// ErrNotFound. It reads that one record.
func (t *Tool) Get(ctx context.Context, offset int64) (Entry, error) {
	r, err := t.open()
	if err != nil {
		return Entry{}, err
	}
	defer r.close()
	switch {
	case offset < r.oldest:
		return Entry{}, fmt.Errorf("offset %d: %w (%s starts at offset %d)", offset, ErrGone, t.topic, r.oldest)
	case offset >= r.newest:
		return Entry{}, fmt.Errorf("offset %d: %w (the next message of %s gets offset %d)", offset, ErrNotFound, t.topic, r.newest)
	}
	var record *sarama.ConsumerMessage
	if err := r.read(ctx, offset, offset+1, func(km *sarama.ConsumerMessage) error {
		record = km
		return nil
	}); err != nil {
		return Entry{}, err
	}
	if record == nil {
		return Entry{}, fmt.Errorf("offset %d: %w", offset, ErrNotFound) // not a message (a transaction marker)
	}
	e, err := entryOf(r.unmarshaler, record)
	if err != nil {
		return Entry{}, err
	}
	replays, err := t.replays(ctx, offset, offset+1)
	e.Replays = replays[offset]
	return e, err
}

// Replay sends the message at offset again to the consumer that poisoned it,
// with its id, payload and original metadata, marked with replayed_at, and
// records the replay in poison_replays. It writes the message on that
// consumer's delayed path (delayed.Redeliver), due at once, in the same
// transaction as the record: only that consumer group gets it, through its
// inbox. A message that does not name its consumer group (poisoned before
// per-group replays) is published to the topic it came from instead, where
// every group of the topic sees it. It fails as Get does for an offset that
// is gone or not there.
func (t *Tool) Replay(ctx context.Context, offset int64) (Entry, error) {
	e, err := t.Get(ctx, offset)
	if err != nil {
		return Entry{}, err
	}
	return e, t.replay(ctx, e)
}

// ReplayAll replays one page of the messages not replayed yet (with
// q.ReasonCode, if set): oldest first whatever q.Order says, so that an
// order's messages go back in the order they were poisoned, from q.Cursor, at
// most q.Limit of them, bounded as List is. It replays only the set its dry
// run showed: confirmation must be the Confirmation of the page DryRunAll
// returned for the same q, else nothing is replayed and it fails with
// ErrConfirmationRequired (no token) or ErrSetChanged (the page is another
// set now). It returns the messages it replayed and, in Next, where the next
// page starts: dry-run and replay that page until Next is nil. If a replay
// fails, Next is that message's offset.
func (t *Tool) ReplayAll(ctx context.Context, q Query, confirmation string) (Page, error) {
	if confirmation == "" {
		return Page{}, ErrConfirmationRequired
	}
	page, err := t.replayPage(ctx, q)
	if err != nil {
		return Page{}, err
	}
	if confirmation != Confirmation(t.topic, q.ReasonCode, page.Entries) {
		return Page{}, fmt.Errorf("%w (%d message(s) from the cursor now)", ErrSetChanged, len(page.Entries))
	}
	for i, e := range page.Entries {
		if err := t.replay(ctx, e); err != nil {
			return Page{Entries: page.Entries[:i], Next: &e.Offset}, err
		}
	}
	return page, nil
}

// replayPage lists the page of q that ReplayAll replays and DryRunAll
// dry-runs: the messages not replayed yet, oldest first.
func (t *Tool) replayPage(ctx context.Context, q Query) (Page, error) {
	q.Order, q.notReplayed = OldestFirst, true
	return t.List(ctx, q)
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
		if err := delayed.Redeliver(ctx, tx, e.Group, e.Handler, e.FromTopic, msg); err != nil {
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
			middleware.PoisonedSubscriberKey, failure.MetadataReplayedAt, failure.MetadataPoisonedGroup:
		default:
			msg.Metadata.Set(k, v)
		}
	}
	msg.Metadata.Set(failure.MetadataReplayedAt, now.Format(time.RFC3339Nano))
	return msg
}

// PurgeReplayed deletes the messages of the poison topic that were replayed,
// from the oldest up to the first one that was not (Kafka can only delete a
// prefix), and returns how many went: the poison topic's cleanup that never
// loses a message nobody looked at. A message whose replay record was pruned
// counts as not replayed. It reads the replay records only: offsets
// follow each other with no gap (the poison publisher is not transactional),
// and a gap would only end the prefix early.
func (t *Tool) PurgeReplayed(ctx context.Context) (int64, error) {
	r, err := t.open()
	if err != nil {
		return 0, err
	}
	r.close()
	rows, err := t.db.QueryContext(ctx, `SELECT DISTINCT poison_offset FROM poison_replays
		WHERE poison_topic = ? AND poison_offset >= ? AND poison_offset < ? ORDER BY poison_offset`, t.topic, r.oldest, r.newest)
	if err != nil {
		return 0, err
	}
	next := r.oldest // the first offset not known to be replayed
	for rows.Next() {
		var off int64
		if err := rows.Scan(&off); err != nil {
			rows.Close()
			return 0, err
		}
		if off != next {
			break
		}
		next++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if next == r.oldest {
		return 0, nil
	}
	return t.Purge(ctx, next-1)
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

// reader reads the poison topic for one call, until its deadline (ReadTimeout
// after open).
type reader struct {
	topic          string
	client         sarama.Client
	consumer       sarama.Consumer
	oldest, newest int64 // the topic's bounds when the call began
	deadline       time.Time
	unmarshaler    wkafka.Unmarshaler
}

func (t *Tool) open() (*reader, error) {
	r := &reader{topic: t.topic, deadline: time.Now().Add(ReadTimeout), unmarshaler: kafka.Marshaler(false)}
	cfg := t.kafka.ConsumerConfig()
	// A read that reaches the end of the topic leaves a fetch waiting for new
	// records, which closing the partition consumer waits for: 100 ms, not
	// sarama's 500 (lower makes sarama warn).
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	var err error
	if r.client, err = sarama.NewClient(t.kafka.Brokers, cfg); err != nil {
		return nil, err
	}
	if r.oldest, r.newest, err = bounds(r.client, t.topic); err == nil {
		r.consumer, err = sarama.NewConsumerFromClient(r.client)
	}
	if err != nil {
		r.client.Close()
		return nil, err
	}
	return r, nil
}

func (r *reader) close() {
	r.consumer.Close()
	r.client.Close()
}

// read calls visit for each record from offset from up to (not including) to,
// oldest first, until visit returns an error: errPageFull ends the read
// without one. It fails with ErrGone when from was purged, also while it reads
// (Kafka then answers OFFSET_OUT_OF_RANGE and sarama closes the partition
// consumer), with ErrTimeout at the reader's deadline, and with the partition
// consumer's other errors.
func (r *reader) read(ctx context.Context, from, to int64, visit func(*sarama.ConsumerMessage) error) error {
	gone := func() error {
		return fmt.Errorf("reading %s from offset %d: %w (a purge overtook the read)", r.topic, from, ErrGone)
	}
	pc, err := r.consumer.ConsumePartition(r.topic, 0, from)
	if errors.Is(err, sarama.ErrOffsetOutOfRange) {
		return gone()
	}
	if err != nil {
		return err
	}
	defer pc.Close() // it returns the errors read below again
	timeout := time.NewTimer(time.Until(r.deadline))
	defer timeout.Stop()
	messages := pc.Messages()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("reading %s from offset %d: %w", r.topic, from, ErrTimeout)
		case km, ok := <-messages:
			if !ok {
				messages = nil // sarama closed it after an error, which Errors delivers
				continue
			}
			if km.Offset >= to {
				return nil
			}
			if err := visit(km); errors.Is(err, errPageFull) {
				return nil
			} else if err != nil {
				return err
			}
			if km.Offset == to-1 {
				return nil
			}
		case err, ok := <-pc.Errors():
			switch {
			case !ok:
				return fmt.Errorf("reading %s from offset %d: the partition consumer stopped", r.topic, from)
			case errors.Is(err, sarama.ErrOffsetOutOfRange):
				return gone()
			}
			return fmt.Errorf("reading %s from offset %d: %w", r.topic, from, err)
		}
	}
}

// header returns the value of a record's header key ("" if it has none).
func header(km *sarama.ConsumerMessage, key string) string {
	for _, h := range km.Headers {
		if string(h.Key) == key {
			return string(h.Value)
		}
	}
	return ""
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
		Error:      m.Metadata.Get(middleware.ReasonForPoisonedKey),
		ReasonCode: m.Metadata.Get(failure.MetadataReasonCode),
		FromTopic:  m.Metadata.Get(middleware.PoisonedTopicKey),
		Handler:    m.Metadata.Get(middleware.PoisonedHandlerKey),
		Group:      m.Metadata.Get(failure.MetadataPoisonedGroup),
		EventType:  m.Metadata.Get(kafka.MetadataEventType),
		OrderID:    m.Metadata.Get(kafka.MetadataKey),
		Payload:    string(m.Payload), Metadata: m.Metadata,
	}, nil
}

// replays returns the replay times of the records from offset from up to (not
// including) to, by offset, oldest first, from poison_replays.
func (t *Tool) replays(ctx context.Context, from, to int64) (map[int64][]time.Time, error) {
	rows, err := t.db.QueryContext(ctx, `SELECT poison_offset, replayed_at FROM poison_replays
		WHERE poison_topic = ? AND poison_offset >= ? AND poison_offset < ? ORDER BY poison_offset, replayed_at`, t.topic, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	replays := map[int64][]time.Time{}
	for rows.Next() {
		var off int64
		var at time.Time
		if err := rows.Scan(&off, &at); err != nil {
			return nil, err
		}
		replays[off] = append(replays[off], at.UTC())
	}
	return replays, rows.Err()
}

// normalized returns q with its defaults and its limit within MaxLimit.
func (q Query) normalized() Query {
	if q.Limit <= 0 {
		q.Limit = DefaultLimit
	}
	q.Limit = min(q.Limit, MaxLimit)
	if q.Order != OldestFirst {
		q.Order = NewestFirst
	}
	return q
}

// scanRange returns the offsets [from, to) a page of q (normalized) reads in a
// topic that holds the offsets oldest up to (not including) newest: from q's
// cursor (or the end its order starts from) on, in its order, q.Limit records
// without a filter and MaxScan with one (a filter may drop some), fewer at the
// end of the topic. A cursor outside the topic is moved to the nearest offset
// in it, or past its end: false, nothing to read.
func scanRange(q Query, oldest, newest int64) (from, to int64, ok bool) {
	size := int64(q.Limit)
	if q.ReasonCode != "" || q.notReplayed {
		size = MaxScan
	}
	if q.Order == OldestFirst {
		from = oldest
		if q.Cursor != nil {
			from = max(*q.Cursor, oldest)
		}
		to = newest
		if from < newest {
			to = min(from+size, newest)
		}
	} else {
		to = newest
		if q.Cursor != nil {
			to = min(*q.Cursor, newest-1) + 1
		}
		from = max(to-size, oldest)
	}
	return from, to, from < to
}

// cursor returns next as the next page's cursor, or nil if it is outside
// the topic (oldest up to, not including, newest): the page reached its end.
func cursor(next, oldest, newest int64) *int64 {
	if next < oldest || next >= newest {
		return nil
	}
	return &next
}

// newestMatches keeps the newest limit of the records added to it.
type newestMatches struct {
	limit int
	ring  []*sarama.ConsumerMessage
	added int
}

func (m *newestMatches) add(km *sarama.ConsumerMessage) {
	if len(m.ring) < m.limit {
		m.ring = append(m.ring, km)
	} else {
		m.ring[m.added%m.limit] = km
	}
	m.added++
}

// newestFirst returns the records kept, newest first, and whether older ones
// were dropped.
func (m *newestMatches) newestFirst() (kept []*sarama.ConsumerMessage, dropped bool) {
	start := 0
	if m.added > m.limit {
		start = m.added % m.limit
	}
	kept = append(slices.Clone(m.ring[start:]), m.ring[:start]...)
	slices.Reverse(kept)
	return kept, m.added > m.limit
}

// ReplaysTable is the table of replay records.
const ReplaysTable = "poison_replays"

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations create the table of replay records, tracked in
// goose_poison_version.
var Migrations = sqldb.Migrations{Table: "goose_poison_version", FS: migrations, Dir: "migrations"}
