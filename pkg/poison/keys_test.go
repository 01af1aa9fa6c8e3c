package poison_test

import (
	"bytes"
	"context"
	"net/http"
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
