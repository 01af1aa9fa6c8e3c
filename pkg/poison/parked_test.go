package poison_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/apidoc/apidoctest"
	"github.com/onceflow/onceflow/pkg/httpserver"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox/parking"
	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/poison/poisoncli"
	"github.com/onceflow/onceflow/pkg/poison/poisonhttp"
	"github.com/onceflow/onceflow/pkg/problem"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// The admin endpoints list parked rows, refuse to replay a row that waits behind
// another (409), and discarding the head releases the next row into the outbox.
func TestParkedRowEndpoints(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	db := d.Open(t, 100) // as the service user
	for _, id := range []string{"m-1", "m-2"} {
		if _, err := db.Exec(`INSERT INTO outbox_parked (message_id, partition_key, topic, payload, metadata, reason, kafka_error)
			VALUES (?, 'order-1', 'orders', '{}', '{"partition_key":"order-1","event_type":"order.placed"}', 'message_too_large', 'too large')`, id); err != nil {
			t.Fatal(err)
		}
	}
	tool := poison.New(kafka.Config{}, "order.poison", db)
	defer tool.Close()
	call := adminClient(t, tool)
	var list struct{ Parked []parking.Row }
	if code := call(http.MethodGet, "/admin/poison/parked", &list); code != http.StatusOK || len(list.Parked) != 2 || !list.Parked[0].Head || list.Parked[1].Head {
		t.Fatalf("list: %d %+v", code, list.Parked)
	}
	first, second := strconv.FormatInt(list.Parked[0].ID, 10), strconv.FormatInt(list.Parked[1].ID, 10)
	if code := call(http.MethodPost, "/admin/poison/parked/"+second+"/replay", nil); code != http.StatusConflict {
		t.Fatalf("replaying the row behind the head: %d, want 409", code)
	}
	if code := call(http.MethodPost, "/admin/poison/parked/"+first+"/discard", nil); code != http.StatusOK {
		t.Fatalf("discarding the head: %d", code)
	}
	if code := call(http.MethodGet, "/admin/poison/parked", &list); code != http.StatusOK || len(list.Parked) != 1 || !list.Parked[0].Released {
		t.Fatalf("after discard: %d %+v, want the second row released", code, list.Parked)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM watermill_outbox").Scan(&n); err != nil || n != 1 {
		t.Fatalf("outbox has %d rows (err %v), want the released one", n, err)
	}
	if code := call(http.MethodGet, "/admin/poison/parked/999999", nil); code != http.StatusNotFound {
		t.Fatalf("unknown id: %d, want 404", code)
	}
}

// adminDocument is the admin endpoints' OpenAPI fragment in a document of its
// own, with the problem schema and the guard's answers the services' documents
// give it.
var adminDocument = apidoctest.Once([]byte("openapi: 3.1.0\ninfo: {title: poison admin, version: \"1\"}\npaths: {}\n"),
	problem.OpenAPI, httpserver.OpenAPI, poisonhttp.OpenAPI)

// adminClient returns a caller of the poison admin endpoints of tool (token
// "secret"), with the services' problem+json error handler: it sends method to
// path, fails the test if the answer breaks the endpoints' OpenAPI fragment,
// decodes a 2xx body into out (if not nil) and returns the status
// code.
func adminClient(t *testing.T, tool *poison.Tool) func(method, path string, out any) int {
	t.Helper()
	return callerOf(t, adminAPI(tool, nil))
}

// adminAPI serves the poison admin endpoints of tool (token "secret"), with
// the dry runs if dryRun is not nil, and the services' problem+json error
// handler.
func adminAPI(tool *poison.Tool, dryRun *poison.DryRunConfig) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = problem.Handler(slog.New(slog.DiscardHandler), problem.Config{})
	g := e.Group("/admin/poison")
	poisonhttp.Routes(g, tool, "secret")
	if dryRun != nil {
		poisonhttp.DryRunRoute(g, tool, "secret", *dryRun)
	}
	return e
}

// callerOf returns adminClient's caller of the endpoints e serves.
func callerOf(t *testing.T, e *echo.Echo) func(method, path string, out any) int {
	t.Helper()
	return func(method, path string, out any) int {
		t.Helper()
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer secret")
		rec := adminDocument(t).Serve(t, e, req)
		if out != nil && rec.Code < 300 {
			if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, rec.Body)
			}
		}
		return rec.Code
	}
}

// TestParkedRowDryRun: the dry run of a parked row's replay lists the rows it
// would send, the head first, and says whether Kafka would take the head now:
// not while it is larger than its topic's max.message.bytes, yes once the
// topic takes it; not when its topic does not exist. Only a head can be
// dry-run (409 otherwise). Nothing changes, in the database or in Kafka.
func TestParkedRowDryRun(t *testing.T) {
	t.Parallel()
	kc := testenv.Kafka(t)
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	db := d.Open(t, 10)
	topic := testenv.Topics(t, kc, 1, "small")[0]
	admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.ConsumerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	setMax := func(n int) {
		t.Helper()
		v := strconv.Itoa(n)
		if err := admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{"max.message.bytes": &v}, false); err != nil {
			t.Fatal(err)
		}
	}
	setMax(2000)
	park := func(key, topic string, payloadBytes int) {
		t.Helper()
		if _, err := db.Exec(`INSERT INTO outbox_parked (message_id, partition_key, topic, payload, metadata, reason, kafka_error)
			VALUES (UUID(), ?, ?, REPEAT('x', ?), '{"event_type":"order.placed"}', 'message_too_large', 'too large')`, key, topic, payloadBytes); err != nil {
			t.Fatal(err)
		}
	}
	park("order-1", topic, 5000)
	park("order-1", topic, 10)
	park("order-2", "no-such-topic-"+strconv.FormatInt(time.Now().UnixNano(), 36), 10)
	tool := poison.New(kc, "order.poison", db)
	defer tool.Close()
	call := adminClient(t, tool)
	var list struct{ Parked []parking.Row }
	if code := call(http.MethodGet, "/admin/poison/parked", &list); code != http.StatusOK || len(list.Parked) != 3 {
		t.Fatalf("list: %d %+v", code, list.Parked)
	}
	head, behind, other := list.Parked[0].ID, list.Parked[1].ID, list.Parked[2].ID
	before := testenv.Checksums(t, d.Admin) + strconv.FormatInt(testenv.TopicSize(t, kc, topic), 10)
	dryRun := func(id int64) poison.ParkedDryRun {
		t.Helper()
		var got poison.ParkedDryRun
		if code := call(http.MethodPost, "/admin/poison/parked/"+strconv.FormatInt(id, 10)+"/dry-run", &got); code != http.StatusOK {
			t.Fatalf("dry run of %d: %d", id, code)
		}
		return got
	}

	tooLarge := dryRun(head)
	if tooLarge.WouldSucceed || tooLarge.ReasonCode != kafka.RefusedTooLarge || tooLarge.MaxMessageBytes != 2000 ||
		len(tooLarge.Rows) != 2 || tooLarge.Rows[0].ID != head || tooLarge.Rows[1].ID != behind {
		t.Errorf("dry run with max.message.bytes 2000: %+v, want message_too_large, the head and the row behind it", tooLarge)
	}
	if got := dryRun(other); got.WouldSucceed || got.TopicExists || got.ReasonCode != kafka.RefusedUnknownTopic {
		t.Errorf("dry run of a row for a topic that does not exist: %+v, want unknown_topic", got)
	}
	setMax(100_000)
	if got := dryRun(head); !got.WouldSucceed || got.ReasonCode != "" || got.MaxMessageBytes < 5000 {
		t.Errorf("dry run with max.message.bytes 100000: %+v, want it to succeed", got)
	}
	var out bytes.Buffer
	cfg := poisoncli.Config{DB: sqldb.Config{DSN: d.DSN}, Kafka: kc, PoisonTopic: "order.poison"}
	if err := poisoncli.RunCLI(context.Background(), cfg, []string{"parked", "dry-run", strconv.FormatInt(head, 10)}, &out); err != nil ||
		!strings.Contains(out.String(), "a replay would send these 2 row(s) in order; Kafka would take the head now") {
		t.Errorf("poison parked dry-run: %v\n%s", err, out.String())
	}
	if code := call(http.MethodPost, "/admin/poison/parked/"+strconv.FormatInt(behind, 10)+"/dry-run", nil); code != http.StatusConflict {
		t.Errorf("dry run of the row behind the head: %d, want 409", code)
	}
	if after := testenv.Checksums(t, d.Admin) + strconv.FormatInt(testenv.TopicSize(t, kc, topic), 10); after != before {
		t.Fatalf("the dry runs changed something:\nbefore %s\nafter  %s", before, after)
	}
}
