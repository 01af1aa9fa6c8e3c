package poison_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer/parkkey"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/poison/poisoncli"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// The parked-key endpoints and CLI: list and show a key's queue, replay marks
// the key for the consumers (202), a discard while the replay is pending is
// refused (409), a key parked by two handlers needs ?handler= (409 without),
// discarding a head requests the release of the messages behind it, and an
// unknown key is 404.
func TestParkedKeyTooling(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	db := d.Open(t, 4) // as the service user, like the service's admin endpoints
	park := func(handler, key string, ids ...string) {
		t.Helper()
		if _, err := db.Exec("INSERT INTO consumer_parked_keys (consumer_group, handler, partition_key) VALUES ('g', ?, ?)", handler, key); err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			code, errText := "handler_failed", "boom"
			if i > 0 {
				code, errText = parkkey.ReasonBehind, "behind"
			}
			if _, err := db.Exec(`INSERT INTO consumer_parked_messages (consumer_group, handler, partition_key, message_id, topic, payload, metadata, reason_code, error)
				VALUES ('g', ?, ?, ?, 'orders', '{}', '{"partition_key":"x","event_type":"order.placed"}', ?, ?)`, handler, key, id, code, errText); err != nil {
				t.Fatal(err)
			}
		}
	}
	park("h1", "order-1", "m-1", "m-2")
	park("h1", "order-2", "m-3")
	park("h2", "order-2", "m-4")

	tool := poison.New(kafka.Config{}, "order.poison", db)
	defer tool.Close()
	call := adminClient(t, tool)
	var list struct{ Keys []parkkey.ParkedKey }
	if code := call(http.MethodGet, "/admin/poison/keys", &list); code != http.StatusOK || len(list.Keys) != 3 {
		t.Fatalf("list: %d %+v", code, list.Keys)
	}
	var k parkkey.ParkedKey
	if code := call(http.MethodGet, "/admin/poison/keys/order-1", &k); code != http.StatusOK || k.Messages != 2 ||
		k.Head.MessageID != "m-1" || k.Head.ReasonCode != "handler_failed" || k.Queue[1].MessageID != "m-2" || k.Head.EventType != "order.placed" {
		t.Fatalf("show: %d %+v", code, k)
	}
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/admin/poison/keys/order-2", http.StatusConflict},
		{http.MethodGet, "/admin/poison/keys/order-2?handler=h2", http.StatusOK},
		{http.MethodGet, "/admin/poison/keys/nope", http.StatusNotFound},
		{http.MethodPost, "/admin/poison/keys/order-1/replay", http.StatusAccepted},
		{http.MethodPost, "/admin/poison/keys/order-1/discard", http.StatusConflict}, // replay pending
		{http.MethodPost, "/admin/poison/keys/order-2/discard?handler=h2", http.StatusOK},
		{http.MethodPost, "/admin/poison/keys/order-2/discard", http.StatusOK}, // h1's, the only one left
		{http.MethodPost, "/admin/poison/keys/order-2/discard", http.StatusNotFound},
	} {
		if code := call(tt.method, tt.path, nil); code != tt.want {
			t.Fatalf("%s %s: %d, want %d", tt.method, tt.path, code, tt.want)
		}
	}

	// The CLI, on the same database: discarding the head of a key with a
	// message behind it requests the release of that message.
	park("h1", "order-3", "m-5", "m-6")
	cfg := poisoncli.Config{DB: sqldb.Config{DSN: d.DSN}, PoisonTopic: "order.poison"}
	var out bytes.Buffer
	if err := poisoncli.RunCLI(context.Background(), cfg, []string{"keys", "discard", "order-3"}, &out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := poisoncli.RunCLI(context.Background(), cfg, []string{"keys", "list"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "order-3") || !strings.Contains(out.String(), "m-6") || !strings.Contains(out.String(), "pending") {
		t.Fatalf("keys list after discarding order-3's head: want m-6 as its head, replay pending:\n%s", out.String())
	}
	if err := poisoncli.RunCLI(context.Background(), cfg, []string{"keys", "show", "order-2", "--handler"}, &out); err == nil {
		t.Fatal("--handler without a name was accepted")
	}
}

// TestParkedKeyDryRun: the dry run of a parked key's release runs its queue,
// head first, through the consumer's handler in one transaction that is
// rolled back: the head confirms the order, the next message sees that and
// fails, so the release would stop there. The endpoint and the CLI (asking
// the running service) say so and change nothing; a key parked by a consumer
// the service does not run is 409, an unknown key 404.
func TestParkedKeyDryRun(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	// The stand-in consumer's table is not the service user's (bulk_test.go).
	dry := dryOrders(t, d.Admin, "order-7")
	for _, q := range []string{
		"INSERT INTO consumer_parked_keys (consumer_group, handler, partition_key) VALUES ('g', 'order-payments', 'order-7'), ('g', 'gone', 'order-8')",
		`INSERT INTO consumer_parked_messages (consumer_group, handler, partition_key, message_id, topic, payload, metadata, reason_code, error) VALUES
			('g', 'order-payments', 'order-7', 'm-1', 'payments', '{}', '{"partition_key":"order-7","event_type":"payment.completed"}', 'unavailable', 'was down'),
			('g', 'order-payments', 'order-7', 'm-2', 'payments', '{}', '{"partition_key":"order-7","event_type":"payment.completed"}', 'behind_parked', 'behind'),
			('g', 'gone', 'order-8', 'm-3', 'payments', '{}', '{"partition_key":"order-8"}', 'unavailable', 'was down')`,
	} {
		if _, err := d.Admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	tool := poison.New(kafka.Config{}, "order.poison", d.Admin)
	defer tool.Close()
	api := adminAPI(tool, &dry)
	call := callerOf(t, api)
	before := testenv.Checksums(t, d.Admin)

	var got poison.KeyDryRun
	if code := call(http.MethodPost, "/admin/poison/keys/order-7/dry-run", &got); code != http.StatusOK {
		t.Fatalf("dry run: %d", code)
	}
	r := got.Result
	if r.WouldSucceed || r.Ran != 2 || r.FailedMessageID != "m-2" || r.ReasonCode != "unknown_order" ||
		got.StateChange != "PENDING -> CONFIRMED" || len(r.Events) != 1 || r.Events[0].Type != "order.confirmed" || got.Key.Messages != 2 {
		t.Fatalf("dry run of order-7: %+v\nwant the head to confirm the order (one order.confirmed) and m-2 to fail with unknown_order", got)
	}
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/admin/poison/keys/order-8/dry-run", http.StatusConflict}, // parked by a consumer this service does not run
		{"/admin/poison/keys/nope/dry-run", http.StatusNotFound},
	} {
		if code := call(http.MethodPost, tt.path, nil); code != tt.want {
			t.Errorf("POST %s: %d, want %d", tt.path, code, tt.want)
		}
	}

	srv := httptest.NewServer(api)
	defer srv.Close()
	cfg := poisoncli.Config{DB: sqldb.Config{DSN: d.DSN}, PoisonTopic: "order.poison",
		ServiceAddr: strings.TrimPrefix(srv.URL, "http://"), AdminToken: "secret"}
	var out bytes.Buffer
	if err := poisoncli.RunCLI(context.Background(), cfg, []string{"keys", "dry-run", "order-7"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"message 2 of 2 (m-2) would fail again (unknown_order)", "state: PENDING -> CONFIRMED",
		"events it would emit: order.confirmed", "nothing was released or changed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("poison keys dry-run order-7: no %q in\n%s", want, out.String())
		}
	}
	if after := testenv.Checksums(t, d.Admin); after != before {
		t.Fatalf("the dry runs changed the database:\nbefore %s\nafter  %s", before, after)
	}
}
