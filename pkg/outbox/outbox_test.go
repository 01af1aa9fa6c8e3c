package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql3 "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/components/forwarder"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// recorder is a message.Publisher standing in for Kafka: it counts every message
// UUID it receives and can be told to refuse messages.
type recorder struct {
	mu       sync.Mutex
	seen     map[string]int
	total    atomic.Int64
	refusals atomic.Int64
	refuse   func(msg *message.Message) error
}

func newRecorder() *recorder { return &recorder{seen: map[string]int{}} }

func (r *recorder) Publish(_ string, msgs ...*message.Message) error {
	for _, m := range msgs {
		if r.refuse != nil {
			if err := r.refuse(m); err != nil {
				r.refusals.Add(1)
				return err
			}
		}
		r.mu.Lock()
		r.seen[m.UUID]++
		r.mu.Unlock()
		r.total.Add(1)
	}
	return nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[id]
}

func migrated(t *testing.T) *sql.DB {
	t.Helper()
	db, _ := migratedWithDSN(t)
	return db
}

// migratedWithDSN is migrated that also returns the database's DSN.
func migratedWithDSN(t *testing.T) (*sql.DB, string) {
	t.Helper()
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil) // as the migration user; the code under test gets the service user's DSN
	return d.Admin, d.DSN
}

// testOutbox is an outbox and the forwarder settings the tests build its
// forwarders with.
type testOutbox struct {
	*outbox.Outbox
	config outbox.Config
	opts   []outbox.Option
}

// newOutbox returns a testOutbox with forwarder settings c; it fails if c is
// invalid.
func newOutbox(c outbox.Config) (*testOutbox, error) {
	if err := c.Defaults().Validate(); err != nil {
		return nil, err
	}
	return &testOutbox{Outbox: outbox.New(), config: c}, nil
}

// NewForwarder returns a forwarder of o's settings reading db's outbox and
// publishing to out, woken by o's commits.
func (o *testOutbox) NewForwarder(db *sql.DB, out message.Publisher, logger watermill.LoggerAdapter) (*outbox.Forwarder, error) {
	c := o.config
	c.DB, c.Publisher, c.Logger, c.Outbox = db, out, logger, o.Outbox
	return outbox.NewForwarder(c, o.opts...)
}

// outboxSetup is one way of writing to and forwarding from an outbox.
type outboxSetup struct {
	name string
	// table is the outbox's messages table.
	table string
	// publish writes msg to the outbox inside tx.
	publish func(ctx context.Context, tx *sql.Tx, msg *message.Message) error
	// forwarder forwards the outbox of db to out.
	forwarder func(t *testing.T, db *sql.DB, out message.Publisher) *forwarder.Forwarder
}

// ours is the setup the services use: package outbox.
func ours(batch int) outboxSetup {
	ob, err := newOutbox(outbox.Config{BatchSize: batch, PollInterval: 10 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	return outboxSetup{
		name:  fmt.Sprintf("queue schema, batch %d (ours)", batch),
		table: "watermill_" + outbox.Topic,
		publish: func(ctx context.Context, tx *sql.Tx, msg *message.Message) error {
			return ob.Publish(ctx, tx, "orders", msg)
		},
		forwarder: func(t *testing.T, db *sql.DB, out message.Publisher) *forwarder.Forwarder {
			t.Helper()
			f, err := ob.NewForwarder(db, out, watermill.NopLogger{})
			if err != nil {
				t.Fatal(err)
			}
			return f.Forwarder
		},
	}
}

// v3Default is watermill-sql v3.1.0's DefaultMySQLSchema with
// DefaultMySQLOffsetsAdapter: the setup with the skipped-row hazard.
func v3Default(batch int) outboxSetup {
	schema := wsql3.DefaultMySQLSchema{SubscribeBatchSize: batch}
	const topic = "outbox_v3"
	return outboxSetup{
		name:  fmt.Sprintf("v3 default schema, batch %d", batch),
		table: "watermill_" + topic,
		publish: func(ctx context.Context, tx *sql.Tx, msg *message.Message) error {
			sqlPub, err := wsql3.NewPublisher(tx, wsql3.PublisherConfig{SchemaAdapter: schema}, nil)
			if err != nil {
				return err
			}
			msg.SetContext(ctx)
			return forwarder.NewPublisher(sqlPub, forwarder.PublisherConfig{ForwarderTopic: topic}).Publish("orders", msg)
		},
		forwarder: func(t *testing.T, db *sql.DB, out message.Publisher) *forwarder.Forwarder {
			t.Helper()
			sub, err := wsql3.NewSubscriber(db, wsql3.SubscriberConfig{
				SchemaAdapter:    schema,
				OffsetsAdapter:   wsql3.DefaultMySQLOffsetsAdapter{},
				ConsumerGroup:    "forwarder",
				PollInterval:     10 * time.Millisecond,
				InitializeSchema: true,
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.SubscribeInitialize(topic); err != nil {
				t.Fatal(err)
			}
			f, err := forwarder.NewForwarder(sub, out, watermill.NopLogger{}, forwarder.Config{ForwarderTopic: topic})
			if err != nil {
				t.Fatal(err)
			}
			return f
		},
	}
}

// writeOutbox commits n new messages to the outbox in one transaction.
func writeOutbox(t *testing.T, db *sql.DB, ob *testOutbox, n int) []*message.Message {
	t.Helper()
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = newMsg(i)
	}
	if err := sqldb.InTx(context.Background(), db, func(ctx context.Context, tx *sql.Tx) error {
		return ob.Publish(ctx, tx, "orders", msgs...)
	}); err != nil {
		t.Fatal(err)
	}
	return msgs
}

func newMsg(i int) *message.Message {
	m := message.NewMessage(watermill.NewUUID(), []byte(`{"n":`+strconv.Itoa(i)+`}`))
	m.Metadata.Set(events.MetadataKey, "order-"+strconv.Itoa(i))
	return m
}

// stress runs writers×perWriter single-message transactions into the outbox while
// its forwarder runs, waits until nothing new arrives for quiet, and returns how
// many written messages never reached the publisher and how many arrived twice.
func stress(t *testing.T, setup outboxSetup, writers, perWriter int, quiet time.Duration) (lost, dup int) {
	t.Helper()
	db := migrated(t)
	db.SetMaxOpenConns(writers + 10)
	out := newRecorder()
	testenv.RunUntilCleanup(t, setup.forwarder(t, db, out))

	ids := make([][]string, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				msg := newMsg(w*perWriter + i)
				err := sqldb.InTx(context.Background(), db, func(ctx context.Context, tx *sql.Tx) error {
					return setup.publish(ctx, tx, msg)
				})
				if err != nil {
					errs <- err
					return
				}
				ids[w] = append(ids[w], msg.UUID)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
	written := writers * perWriter
	// Wait until every message arrived, or nothing new arrived for `quiet`.
	last, lastChange := int64(-1), time.Now()
	for out.total.Load() < int64(written) && time.Since(lastChange) < quiet {
		if n := out.total.Load(); n != last {
			last, lastChange = n, time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, w := range ids {
		for _, id := range w {
			switch n := out.count(id); {
			case n == 0:
				lost++
			case n > 1:
				dup++
			}
		}
	}
	return lost, dup
}

// TestOutboxStressLosesNothing is the outbox's proof under concurrency: many
// writers commit in an order different from the order their auto-increment
// offsets were handed out, and the forwarder must still relay every row.
func TestOutboxStressLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test: skipped with -short")
	}
	runs, _ := strconv.Atoi(testenv.Getenv("ONCEFLOW_STRESS_RUNS", "2"))
	for run := range runs {
		t.Run(fmt.Sprintf("run %d", run+1), func(t *testing.T) { // its own database, closed after the run
			lost, dup := stress(t, ours(100), 64, 600, 10*time.Second)
			t.Logf("run %d/%d (%s): 38400 written, lost=%d duplicated=%d", run+1, runs, ours(100).name, lost, dup)
			if lost != 0 || dup != 0 {
				t.Fatalf("run %d: lost=%d duplicated=%d, want 0 and 0", run+1, lost, dup)
			}
		})
	}
}

// TestForwarderDeletesOnlyForwardedRows: Kafka refuses the third row of a
// five-row batch until the polling transaction's ack deadline has passed (what
// an outage beginning in the middle of a batch does). Our ack adapter deletes
// only the two forwarded rows, so the next poll forwards the other three: every
// row reaches Kafka once. The stock MySQLQueueOffsetsAdapter{DeleteOnAck: true}
// of watermill-sql v4.1.2 deletes the whole batch: the refused row and the two
// rows behind it are lost, every time (the negative control).
func TestForwarderDeletesOnlyForwardedRows(t *testing.T) {
	const ackDeadline = 200 * time.Millisecond
	stockQueue := func(t *testing.T, db *sql.DB, out message.Publisher) *forwarder.Forwarder {
		deadline := ackDeadline
		sub, err := wsql.NewSubscriber(wsql.BeginnerFromStdSQL(db), wsql.SubscriberConfig{
			SchemaAdapter:  wsql.MySQLQueueSchema{SubscribeBatchSize: 5},
			OffsetsAdapter: wsql.MySQLQueueOffsetsAdapter{DeleteOnAck: true},
			PollInterval:   10 * time.Millisecond,
			ResendInterval: 20 * time.Millisecond,
			AckDeadline:    &deadline,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		f, err := forwarder.NewForwarder(sub, out, watermill.NopLogger{}, forwarder.Config{ForwarderTopic: outbox.Topic})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	oursFwd := func(t *testing.T, db *sql.DB, out message.Publisher) *forwarder.Forwarder {
		// The single relay: the batch relay sends a refused batch again whole
		// (TestBatchRelayRefusalKeepsTheWholeBatch).
		ob, err := newOutbox(outbox.Config{Relay: outbox.RelaySingle, BatchSize: 5, PollInterval: 10 * time.Millisecond,
			ResendInterval: 20 * time.Millisecond, AckDeadline: ackDeadline})
		if err != nil {
			t.Fatal(err)
		}
		f, err := ob.NewForwarder(db, out, watermill.NopLogger{})
		if err != nil {
			t.Fatal(err)
		}
		return f.Forwarder
	}
	tests := []struct {
		name      string
		forwarder func(*testing.T, *sql.DB, message.Publisher) *forwarder.Forwarder
		wantLost  int
	}{
		{"ours forwards every row", oursFwd, 0},
		{"stock v4.1.2 adapter deletes the refused row and the two behind it (negative control)", stockQueue, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := migrated(t)
			ob, _ := newOutbox(outbox.Config{})
			msgs := writeOutbox(t, db, ob, 5) // one transaction: one batch
			out := newRecorder()
			refused := msgs[2].UUID
			var refusedIn wsql.Tx // the polling transaction that first delivered the third row
			out.refuse = func(m *message.Message) error {
				if m.UUID != refused {
					return nil
				}
				tx, ok := wsql.TxFromContext(m.Context())
				if !ok {
					t.Errorf("the forwarded message carries no polling transaction")
					return nil
				}
				if refusedIn == nil {
					refusedIn = tx
				}
				if tx == refusedIn {
					return errors.New("kafka down")
				}
				return nil
			}
			testenv.RunUntilCleanup(t, tt.forwarder(t, db, out))
			testenv.WaitFor(t, "the outbox to be empty", 30*time.Second, func() bool {
				n, err := outbox.Pending(context.Background(), db)
				return err == nil && n == 0
			})
			if out.refusals.Load() == 0 {
				t.Fatal("the third row was never refused")
			}
			lost := 0
			for i, m := range msgs {
				switch n := out.count(m.UUID); {
				case n == 0:
					lost++
				case n > 1:
					t.Errorf("row %d forwarded %d times", i+1, n)
				}
			}
			if lost != tt.wantLost {
				t.Fatalf("rows that never reached Kafka = %d, want %d", lost, tt.wantLost)
			}
		})
	}
}

// TestRowCommittedBelowTheWatermarkIsForwarded causes, on purpose, the
// interleaving behind ADR 3: a row becomes visible with an offset lower than one
// the forwarder has already acknowledged (its offset was handed out before a
// higher one that committed first). Our queue schema selects unacknowledged rows,
// whatever their offset, and forwards it. watermill-sql v3's default schema
// selects offsets above its watermark and skips it for good (the negative
// control). Under real concurrency this happens by chance (the opt-in
// TestOutboxStressNegativeControl measures how often); here it happens every time.
func TestRowCommittedBelowTheWatermarkIsForwarded(t *testing.T) {
	tests := []struct {
		setup       outboxSetup
		wantForward int
	}{
		{ours(10), 1},
		{v3Default(10), 0},
	}
	for _, tt := range tests {
		t.Run(tt.setup.name, func(t *testing.T) {
			db := migrated(t)
			out := newRecorder()
			testenv.RunUntilCleanup(t, tt.setup.forwarder(t, db, out)) // creates v3's tables
			if _, err := db.Exec("ALTER TABLE `" + tt.setup.table + "` AUTO_INCREMENT = 1000"); err != nil {
				t.Fatal(err)
			}
			commit := func(msg *message.Message, offset int64) {
				t.Helper()
				err := sqldb.InTx(context.Background(), db, func(ctx context.Context, tx *sql.Tx) error {
					if err := tt.setup.publish(ctx, tx, msg); err != nil {
						return err
					}
					if offset == 0 {
						return nil
					}
					// The row's offset becomes one handed out long before: below the
					// watermark the forwarder has acknowledged.
					res, err := tx.ExecContext(ctx, "UPDATE `"+tt.setup.table+"` SET `offset` = ? WHERE `offset` = LAST_INSERT_ID()", offset)
					if err != nil {
						return err
					}
					if n, _ := res.RowsAffected(); n != 1 {
						return fmt.Errorf("moved %d rows, want 1", n)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			high, late, marker := newMsg(1), newMsg(2), newMsg(3)
			commit(high, 0) // offset 1000
			testenv.WaitFor(t, "the first row to be forwarded", 30*time.Second, func() bool { return out.count(high.UUID) == 1 })
			commit(late, 500)
			commit(marker, 0) // offset 1002: forwarded after anything below it that the forwarder selects
			testenv.WaitFor(t, "the marker to be forwarded", 30*time.Second, func() bool { return out.count(marker.UUID) == 1 })
			if got := out.count(late.UUID); got != tt.wantForward {
				t.Fatalf("the row committed below the watermark was forwarded %d times, want %d", got, tt.wantForward)
			}
		})
	}
}

// TestOutboxInsertNotBlockedWhileForwarderStuck: while Kafka is down the
// forwarder keeps a polling transaction open on its batch. New outbox rows (new
// orders) must not wait for it. The inserting session gets a 1 s lock wait
// timeout: under our READ COMMITTED polling the insert takes no lock the
// forwarder holds; the SERIALIZABLE polling of the stock schema (negative
// control) makes it time out. Ours is checked on a plain pool (the poll asks
// for READ COMMITTED) and on a pool of sqldb.Open (the poll takes the session's
// level, READ COMMITTED).
func TestOutboxInsertNotBlockedWhileForwarderStuck(t *testing.T) {
	tests := []struct {
		name        string
		schema      wsql.SchemaAdapter
		openDB      bool
		wantTimeout bool
	}{
		{"read committed polling (ours)", nil, false, false},
		{"read committed sessions of sqldb.Open (ours)", nil, true, false},
		{"serializable polling of the stock schema (negative control)", wsql.MySQLQueueSchema{SubscribeBatchSize: 100}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, dsn := migratedWithDSN(t)
			if tt.openDB {
				var err error
				if db, err = sqldb.Open(context.Background(), dsn, 8); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
			}
			ob, _ := newOutbox(outbox.Config{BatchSize: 100, AckDeadline: time.Minute})
			if err := sqldb.InTx(context.Background(), db, func(ctx context.Context, tx *sql.Tx) error {
				return ob.Publish(ctx, tx, "orders", newMsg(1), newMsg(2))
			}); err != nil {
				t.Fatal(err)
			}
			out := newRecorder()
			out.refuse = func(*message.Message) error { return errors.New("kafka down") }
			var f *forwarder.Forwarder
			if tt.schema == nil {
				ours, err := ob.NewForwarder(db, out, watermill.NopLogger{})
				if err != nil {
					t.Fatal(err)
				}
				f = ours.Forwarder
			} else {
				deadline := time.Minute
				sub, err := wsql.NewSubscriber(wsql.BeginnerFromStdSQL(db), wsql.SubscriberConfig{
					SchemaAdapter:  tt.schema,
					OffsetsAdapter: wsql.MySQLQueueOffsetsAdapter{DeleteOnAck: true},
					AckDeadline:    &deadline,
				}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if f, err = forwarder.NewForwarder(sub, out, watermill.NopLogger{}, forwarder.Config{ForwarderTopic: outbox.Topic}); err != nil {
					t.Fatal(err)
				}
			}
			testenv.RunUntilCleanup(t, f)
			// A refusal happens inside the polling transaction, after its SELECT ...
			// FOR UPDATE: from then on (ack deadline 1 min) it holds its batch.
			testenv.WaitFor(t, "the forwarder to hold its batch", 30*time.Second, func() bool { return out.refusals.Load() > 0 })

			conn, err := db.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.ExecContext(context.Background(), "SET SESSION innodb_lock_wait_timeout = 1"); err != nil {
				t.Fatal(err)
			}
			tx, err := conn.BeginTx(context.Background(), sqldb.TxOptions)
			if err != nil {
				t.Fatal(err)
			}
			err = ob.Publish(context.Background(), tx, "orders", newMsg(3))
			if err == nil {
				err = tx.Commit()
			} else {
				_ = tx.Rollback()
			}
			var myErr *mysql.MySQLError
			timedOut := errors.As(err, &myErr) && myErr.Number == 1205
			if timedOut != tt.wantTimeout || (err != nil && !timedOut) {
				t.Fatalf("insert while the forwarder holds its batch: err=%v, want lock wait timeout: %v", err, tt.wantTimeout)
			}
		})
	}
}

// Outbox.Publish refuses an event over the size bounds with a permanent error
// and writes nothing.
func TestOutboxRefusesOversizedEvents(t *testing.T) {
	t.Parallel()
	db := migrated(t)
	ob := outbox.New()
	for name, m := range map[string]*message.Message{
		"metadata value": func() *message.Message {
			m := newMsg(1)
			m.Metadata.Set("correlation_id", strings.Repeat("a", outbox.MaxMetadataValueBytes+1))
			return m
		}(),
		"whole message": message.NewMessage(watermill.NewUUID(), make([]byte, outbox.MaxMessageBytes+1)),
	} {
		err := sqldb.InTx(context.Background(), db, func(ctx context.Context, tx *sql.Tx) error {
			return ob.Publish(ctx, tx, "orders", m)
		})
		if !errors.Is(err, outbox.ErrMessageTooLarge) || !failure.IsPermanent(err) {
			t.Errorf("%s: err = %v, want a permanent ErrMessageTooLarge", name, err)
		}
	}
	if n, _ := outbox.Pending(context.Background(), db); n != 0 {
		t.Fatalf("%d rows written", n)
	}
}
