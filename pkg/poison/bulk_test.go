package poison_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/causation"
	"github.com/onceflow/onceflow/pkg/dryrun"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/poison/poisoncli"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// dryOrders stands in for a service's consumer and its state on db: table
// dry_orders with the pending orders, consumer "order-payments" (the one
// poisoned(i) names) that confirms a pending order and emits order.confirmed
// through the outbox, or fails with unknown_order for an order it does not
// have, and the order's status as the dry run's state.
func dryOrders(t *testing.T, db *sql.DB, pending ...string) poison.DryRunConfig {
	t.Helper()
	if _, err := db.Exec("CREATE TABLE dry_orders (id VARCHAR(64) PRIMARY KEY, status VARCHAR(16) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	for _, id := range pending {
		if _, err := db.Exec("INSERT INTO dry_orders (id, status) VALUES (?, 'PENDING')", id); err != nil {
			t.Fatal(err)
		}
	}
	ob := outbox.New()
	handle := func(msg *message.Message) ([]*message.Message, error) {
		return nil, sqldb.InTx(msg.Context(), db, func(ctx context.Context, tx *sql.Tx) error {
			id := msg.Metadata.Get(kafka.MetadataKey)
			res, err := tx.ExecContext(ctx, "UPDATE dry_orders SET status = 'CONFIRMED' WHERE id = ? AND status = 'PENDING'", id)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				return failure.PermanentCode("unknown_order", fmt.Errorf("no pending order %s", id))
			}
			ev := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
			ev.Metadata.Set(kafka.MetadataKey, id)
			ev.Metadata.Set(events.MetadataType, "order.confirmed")
			// The handler runs for msg, as the inbox makes it do.
			return ob.Publish(causation.WithCause(ctx, msg.UUID, 1), tx, "orders", ev)
		})
	}
	return poison.DryRunConfig{
		Handler: func(name string) (message.HandlerFunc, bool) { return handle, name == "order-payments" },
		State: func(id string) dryrun.State {
			return func(ctx context.Context, tx *sql.Tx) (any, error) {
				var s struct {
					Status string `json:"status"`
				}
				err := tx.QueryRowContext(ctx, "SELECT status FROM dry_orders WHERE id = ?", id).Scan(&s.Status)
				if errors.Is(err, sql.ErrNoRows) {
					return nil, nil
				}
				return s, err
			}
		},
	}
}

// poisonOne writes poisoned(i, reasonCode) to topic.
func poisonOne(t *testing.T, kc kafka.Config, topic string, i int, reasonCode string) {
	t.Helper()
	cfg := kc.ProducerConfig()
	cfg.Producer.Return.Successes = true
	producer, err := sarama.NewSyncProducer(kc.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	pm, err := kafka.Marshaler(false).Marshal(topic, poisoned(i, reasonCode))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := producer.SendMessage(pm); err != nil {
		t.Fatal(err)
	}
}

// offsetsOf lists the offsets of a dry run's messages, e.g. "[0 2 4]".
func offsetsOf(d poison.BulkDryRun) string {
	var offsets []int64
	for _, m := range d.Messages {
		offsets = append(offsets, m.Offset)
	}
	return fmt.Sprint(offsets)
}

// TestBulkReplayNeedsItsDryRun: the dry run of a bulk replay shows what each
// message would change, with totals, and changes no table and no topic; the
// bulk replay then replays nothing without the dry run's token (with or
// without a reason code), with a malformed one, or with the token of another
// set (another reason code's, or a set a message joined or left since), and
// exactly the dry run's set with its token; through the admin endpoints and
// the CLI.
func TestBulkReplayNeedsItsDryRun(t *testing.T) {
	t.Parallel()
	kc := testenv.Kafka(t)
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	topic := poisonTopic(t, kc)
	// Offsets 0 to 5, of orders o-0 to o-5; the even ones unknown_order.
	producePoisoned(t, kc, topic, 6, func(i int) string {
		if i%2 == 0 {
			return "unknown_order"
		}
		return "invalid_event"
	})
	cfg := dryOrders(t, d.Admin, "o-0", "o-1", "o-2", "o-3", "o-5", "o-6") // not o-4
	tool := poison.New(kc, topic, d.Admin)
	defer tool.Close()
	api := adminAPI(tool, &cfg)
	call := callerOf(t, api)
	// state sums up the database and the poison topic.
	state := func() string {
		t.Helper()
		return testenv.Checksums(t, d.Admin) + fmt.Sprintf("%s:%d", topic, testenv.TopicSize(t, kc, topic))
	}
	replayed := func() string {
		t.Helper()
		var offsets sql.NullString
		if err := d.Admin.QueryRow("SELECT GROUP_CONCAT(poison_offset ORDER BY poison_offset) FROM poison_replays WHERE poison_topic = ?", topic).
			Scan(&offsets); err != nil {
			t.Fatal(err)
		}
		return offsets.String
	}
	dryRun := func(query string) poison.BulkDryRun {
		t.Helper()
		var b poison.BulkDryRun
		if code := call(http.MethodPost, "/admin/poison/replay/dry-run?"+query, &b); code != http.StatusOK {
			t.Fatalf("dry run ?%s: %d", query, code)
		}
		return b
	}

	// The dry runs change nothing.
	before := state()
	start := time.Now()
	byReason := dryRun("reason_code=unknown_order")
	t.Logf("dry run of %d messages in %s", len(byReason.Messages), time.Since(start).Round(time.Millisecond))
	other := dryRun("reason_code=invalid_event")
	unfiltered := dryRun("")
	if after := state(); after != before {
		t.Fatalf("the dry runs changed the database or the topic:\nbefore %s\nafter  %s", before, after)
	}
	if got := offsetsOf(byReason); got != "[0 2 4]" || offsetsOf(other) != "[1 3 5]" || offsetsOf(unfiltered) != "[0 1 2 3 4 5]" {
		t.Fatalf("dry-run sets %s, %s and %s, want [0 2 4], [1 3 5] and every message", got, offsetsOf(other), offsetsOf(unfiltered))
	}
	wantTotals := poison.DryRunTotals{Messages: 3, WouldSucceed: 2, WouldFail: map[string]int{"unknown_order": 1},
		StatesChanged: 2, States: map[string]int{"PENDING -> CONFIRMED": 2}, Events: map[string]int{"order.confirmed": 2}}
	if !reflect.DeepEqual(byReason.Totals, wantTotals) {
		t.Fatalf("totals %+v, want %+v", byReason.Totals, wantTotals)
	}
	if m := byReason.Messages[2]; m.OrderID != "o-4" || m.Result.WouldSucceed || m.StateChange != "" || len(m.Result.Events) != 0 {
		t.Fatalf("offset 4 (an order the handler does not have): %+v, want it to fail again and change nothing", m)
	}

	// Without the token of the set it would replay, the replay replays nothing.
	refusals := []struct {
		name   string
		before func()
		query  string
		want   int
	}{
		{"no token", nil, "reason_code=unknown_order", http.StatusPreconditionRequired},
		{"no token and no reason code", nil, "", http.StatusPreconditionRequired},
		{"not a token", nil, "reason_code=unknown_order&confirm=yes", http.StatusBadRequest},
		{"another reason code's token", nil, "reason_code=unknown_order&confirm=" + other.Confirmation, http.StatusConflict},
		{"the unfiltered set's token", nil, "reason_code=unknown_order&confirm=" + unfiltered.Confirmation, http.StatusConflict},
		{"a message poisoned since the dry run", func() { poisonOne(t, kc, topic, 6, "unknown_order") },
			"reason_code=unknown_order&confirm=" + byReason.Confirmation, http.StatusConflict},
		{"a message of the set replayed since", func() {
			if code := call(http.MethodPost, "/admin/poison/0/replay", nil); code != http.StatusOK {
				t.Fatalf("replaying offset 0: %d", code)
			}
		}, "reason_code=unknown_order&confirm=" + byReason.Confirmation, http.StatusConflict},
	}
	// The cases share the topic and the database, in this order: no subtests.
	for _, tt := range refusals {
		if tt.before != nil {
			tt.before()
		}
		was, wasReplayed := state(), replayed()
		if code := call(http.MethodPost, "/admin/poison/replay?"+tt.query, nil); code != tt.want {
			t.Fatalf("%s: replay ?%s: %d, want %d", tt.name, tt.query, code, tt.want)
		}
		if now := state(); now != was || replayed() != wasReplayed {
			t.Fatalf("%s: the refused replay changed something: replays %q, were %q\nnow %s\nwas %s", tt.name, replayed(), wasReplayed, now, was)
		}
	}

	// With the token of a fresh dry run, exactly its set is replayed.
	fresh := dryRun("reason_code=unknown_order")
	var p page
	if code := call(http.MethodPost, "/admin/poison/replay?reason_code=unknown_order&confirm="+fresh.Confirmation, &p); code != http.StatusOK {
		t.Fatalf("replay with the dry run's token: %d", code)
	}
	var got []int64
	for _, e := range p.Replayed {
		got = append(got, e.Offset)
	}
	if fmt.Sprint(got) != "[2 4 6]" || offsetsOf(fresh) != "[2 4 6]" || replayed() != "0,2,4,6" {
		t.Fatalf("replayed %v of the dry run's %s; replay records %q, want 2, 4 and 6 (and 0, replayed alone)", got, offsetsOf(fresh), replayed())
	}

	// The CLI: the dry run (asked of the running service) prints the set and
	// its token and changes nothing; the replay with that token replays it.
	srv := httptest.NewServer(api)
	defer srv.Close()
	cliCfg := poisoncli.Config{DB: sqldb.Config{DSN: d.DSN}, Kafka: kc, PoisonTopic: topic,
		Service: "order", ServiceAddr: strings.TrimPrefix(srv.URL, "http://"), AdminToken: "secret"}
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := poisoncli.RunCLI(context.Background(), cliCfg, args, &out)
		return out.String(), err
	}
	before = state()
	out, err := cli("replay", "--all", "--reason-code", "invalid_event")
	t.Logf("the CLI's dry run:\n%s", out)
	token := regexp.MustCompile(`confirmation token: ([0-9a-f]{64})`).FindStringSubmatch(out)
	if err != nil || token == nil || !strings.Contains(out, "dry run of 3 message(s) of "+topic+": 3 would succeed") ||
		!strings.Contains(out, "order poison replay --all --reason-code invalid_event --limit 50 --confirm "+token[1]) {
		t.Fatalf("poison replay --all --reason-code invalid_event (the dry run): %v\n%s", err, out)
	}
	if after := state(); after != before {
		t.Fatalf("the CLI's dry run changed the database or the topic:\nbefore %s\nafter  %s", before, after)
	}
	if out, err := cli("replay", "--all", "--confirm", token[1]); !errors.Is(err, poison.ErrSetChanged) || state() != before {
		t.Fatalf("poison replay --all with another set's token: %v\n%s, want ErrSetChanged and nothing replayed", err, out)
	}
	if out, err := cli("replay", "--all", "--reason-code", "invalid_event", "--confirm", token[1]); err != nil || out != "replayed 3 message(s)\n" {
		t.Fatalf("poison replay --all --reason-code invalid_event --confirm: %v\n%s", err, out)
	}
	if got := replayed(); got != "0,1,2,3,4,5,6" {
		t.Fatalf("replay records %q, want every offset", got)
	}
}
