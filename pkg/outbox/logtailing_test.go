package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// keyed returns n messages of key with distinct payloads and one more metadata entry.
func keyed(key string, n int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(`{"n":`+strings.Repeat("1", i+1)+`}`))
		msgs[i].Metadata.Set(kafka.MetadataKey, key)
		msgs[i].Metadata.Set("event_type", "order.placed")
	}
	return msgs
}

func outboxRows(t *testing.T, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) int {
	t.Helper()
	var n int
	if err := q.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM "+outbox.Table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLogTailingOutboxLeavesNoRow: an outbox for a log-tailing relay deletes
// the rows it writes in the writing transaction, so the table holds none, in
// the transaction and after it, whether it commits or rolls back.
func TestLogTailingOutboxLeavesNoRow(t *testing.T) {
	testenv.NeedsServers(t, "MariaDB")
	t.Parallel()
	db := migrated(t)
	ob := outbox.NewForLogTailing()
	for _, tt := range []struct {
		name     string
		messages int
		rollback bool
	}{
		{"one event", 1, false},
		{"three events in one Publish", 3, false},
		{"rolled back", 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			errRollback := errors.New("roll back")
			err := sqldb.InTx(context.Background(), db, func(ctx context.Context, tx *sql.Tx) error {
				if err := ob.Publish(ctx, tx, "orders", keyed("o-1", tt.messages)...); err != nil {
					return err
				}
				if n := outboxRows(t, tx); n != 0 {
					t.Errorf("%d outbox rows inside the writing transaction, want 0", n)
				}
				if tt.rollback {
					return errRollback
				}
				return nil
			})
			if err != nil && !errors.Is(err, errRollback) {
				t.Fatal(err)
			}
			if n := outboxRows(t, db); n != 0 {
				t.Errorf("%d outbox rows after the transaction, want 0", n)
			}
		})
	}
}

// TestLogTailingWritersDoNotWait: the delete takes only the writer's own
// rows, so a writer whose transaction is still open does not hold up another.
func TestLogTailingWritersDoNotWait(t *testing.T) {
	testenv.NeedsServers(t, "MariaDB")
	t.Parallel()
	db := migrated(t)
	ob := outbox.NewForLogTailing()
	ctx := context.Background()
	open, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = open.Rollback() }()
	if err := ob.Publish(ctx, open, "orders", keyed("o-1", 2)...); err != nil {
		t.Fatal(err)
	}
	quick, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = sqldb.InTx(quick, db, func(ctx context.Context, tx *sql.Tx) error {
		return ob.Publish(ctx, tx, "orders", keyed("o-2", 2)...)
	})
	if err != nil {
		t.Fatalf("a second writer beside an open one: %v", err)
	}
}

// TestEventColumns: the generated columns a log-tailing relay reads (the
// Outbox Event Router's topic, id, key, payload and metadata) hold the event
// as the forwarder's envelope carries it.
func TestEventColumns(t *testing.T) {
	testenv.NeedsServers(t, "MariaDB")
	t.Parallel()
	db := migrated(t)
	msg := keyed("o-7", 1)[0]
	msg.Metadata.Set("quote", `"é\u2028`)
	err := sqldb.InTx(context.Background(), db, func(ctx context.Context, tx *sql.Tx) error {
		return outbox.New().Publish(ctx, tx, "orders.v1", msg)
	})
	if err != nil {
		t.Fatal(err)
	}
	var topic, id, key, metadata string
	var payload []byte
	err = db.QueryRow("SELECT event_topic, event_uuid, event_key, event_payload, event_metadata FROM "+outbox.Table).
		Scan(&topic, &id, &key, &payload, &metadata)
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]string
	if err := json.Unmarshal([]byte(metadata), &md); err != nil {
		t.Fatalf("event_metadata %q: %v", metadata, err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"event_topic", topic, "orders.v1"},
		{"event_uuid", id, msg.UUID},
		{"event_key", key, "o-7"},
		{"event_payload", string(payload), string(msg.Payload)},
		{"event_metadata's quote", md["quote"], `"é\u2028`},
		{"event_metadata's partition_key", md[kafka.MetadataKey], "o-7"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

// TestCheckBinaryLog: a database without a row-based binary log (the test
// servers write none) is refused, with what it lacks.
func TestCheckBinaryLog(t *testing.T) {
	testenv.NeedsServers(t, "MariaDB")
	t.Parallel()
	db := migrated(t)
	var on int
	if err := db.QueryRow("SELECT @@log_bin").Scan(&on); err != nil {
		t.Fatal(err)
	}
	err := outbox.CheckBinaryLog(context.Background(), db)
	switch {
	case on == 1 && err != nil:
		t.Errorf("a server with its binary log on: %v", err)
	case on == 0 && (err == nil || !strings.Contains(err.Error(), "log_bin=0")):
		t.Errorf("a server without a binary log: err = %v, want one naming log_bin=0", err)
	}
}
