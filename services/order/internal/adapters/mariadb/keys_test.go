package mariadb_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/outbox"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/pkg/sqldb"
	orderhttp "github.com/onceflow/onceflow/services/order/internal/adapters/http"
	"github.com/onceflow/onceflow/services/order/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// env is the order service's application on a fresh, migrated database,
// running as the service user (db, dsn); admin is the test superuser's pool,
// for changes the service may not make (DDL).
type env struct {
	db, admin *sql.DB
	dsn       string
	svc       *app.Service
	api       http.Handler
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, mariadb.Migrations)
	db := d.Open(t, 16) // the service's own settings and user
	dsn := d.DSN
	logger := slog.New(slog.DiscardHandler)
	svc := app.New(mariadb.NewOrders(db, outbox.New(), "orders"), nil, logger)
	api := orderhttp.NewServer(svc, orderhttp.Config{RequestTimeout: 30 * time.Second,
		Ready: db.PingContext}, logger)
	return &env{db: db, admin: d.Admin, dsn: dsn, svc: svc, api: api}
}

func (e *env) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// wantCounts checks how many orders, outbox rows and idempotency keys exist.
func (e *env) wantCounts(t *testing.T, orders, outbox, keys int) {
	t.Helper()
	got := [3]int{e.count(t, "orders"), e.count(t, "watermill_outbox"), e.count(t, "idempotency_keys")}
	if got != [3]int{orders, outbox, keys} {
		t.Fatalf("orders, outbox rows, keys = %v, want %v", got, [3]int{orders, outbox, keys})
	}
}

func (e *env) post(t *testing.T, path, body, key string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	if key != "" {
		req.Header.Set(orderhttp.HeaderIdempotencyKey, key)
	}
	rec := httptest.NewRecorder()
	e.api.ServeHTTP(rec, req)
	return rec
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func placeCmd(key string, amount int64) app.PlaceOrder {
	return app.PlaceOrder{CustomerID: "c-1", AmountCents: amount, Currency: "EUR",
		Idempotency: &app.Idempotency{Key: key, Scope: "POST /orders", Fingerprint: strings.Repeat("f", 63) + string(rune('0'+amount%10)),
			Render: idAnswer}}
}

// idAnswer is the answer the use-case tests store with a key: the order's id.
func idAnswer(o *domain.Order) (app.Answer, error) {
	return app.Answer{Status: http.StatusCreated, Header: map[string]string{"Location": "/orders/" + o.ID}, Body: []byte(o.ID)}, nil
}

// orderOf is the id of the order a keyed placement answered with.
func orderOf(res app.Result) string {
	if res.Replayed {
		return string(res.Answer.Body)
	}
	return res.Order.ID
}

func wantCode(t *testing.T, err error, code apperr.Code) {
	t.Helper()
	if apperr.CodeOf(err) != code {
		t.Fatalf("error %v (code %q), want code %q", err, apperr.CodeOf(err), code)
	}
}

// TestIdempotentRetryOverHTTP: the same request with the same key is answered
// with the first answer (status, body, Location) and Idempotent-Replayed, and
// stores nothing more; the same key with another body is a 422 and stores
// nothing. The same holds for a cancellation.
func TestIdempotentRetryOverHTTP(t *testing.T) {
	e := newEnv(t)
	body := `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`
	first := e.post(t, "/orders", body, "key-1")
	if first.Code != http.StatusCreated {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	again := e.post(t, "/orders", body, "key-1")
	if again.Code != first.Code || again.Body.String() != first.Body.String() ||
		again.Header().Get(orderhttp.HeaderIdempotentReplayed) != "true" ||
		again.Header().Get("Location") != first.Header().Get("Location") {
		t.Fatalf("retry: %d %v %s\nwant: %d %s with Idempotent-Replayed: true", again.Code, again.Header(), again.Body, first.Code, first.Body)
	}
	e.wantCounts(t, 1, 1, 1)

	other := e.post(t, "/orders", `{"customer_id":"c-1","amount_cents":999,"currency":"EUR"}`, "key-1")
	if other.Code != http.StatusUnprocessableEntity || !strings.Contains(other.Body.String(), "idempotency-key-reused") {
		t.Fatalf("same key, other body: %d %s, want 422 idempotency-key-reused", other.Code, other.Body)
	}
	e.wantCounts(t, 1, 1, 1)

	// Without a key, the same request is a new order, as before.
	if rec := e.post(t, "/orders", body, ""); rec.Code != http.StatusCreated || rec.Body.String() == first.Body.String() {
		t.Fatalf("without a key: %d %s", rec.Code, rec.Body)
	}
	e.wantCounts(t, 2, 2, 1)

	id := strings.TrimPrefix(first.Header().Get("Location"), "/orders/")
	cancel := e.post(t, "/orders/"+id+"/cancel", "", "cancel-1")
	replay := e.post(t, "/orders/"+id+"/cancel", "", "cancel-1")
	if cancel.Code != http.StatusOK || replay.Code != http.StatusOK || replay.Body.String() != cancel.Body.String() ||
		replay.Header().Get(orderhttp.HeaderIdempotentReplayed) != "true" {
		t.Fatalf("cancel: %d %s; retry: %d %v %s", cancel.Code, cancel.Body, replay.Code, replay.Header(), replay.Body)
	}
	e.wantCounts(t, 2, 3, 2) // one OrderCancelled
}

// TestReplayIsTheOriginalAnswer: a replay is byte for byte the answer the first
// request with its key got (status, body, Content-Type, Location), also after
// the order changed: for a placement, and for a cancellation whose answer shows
// a refund failure (ADR 27: the order was paid, cancelled, and the payment
// service could not refund it; the customer cancels once more).
func TestReplayIsTheOriginalAnswer(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t, time.Minute)
	placed := e.post(t, "/orders", `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`, "place-1")
	id := strings.TrimPrefix(placed.Header().Get("Location"), "/orders/")
	if placed.Code != http.StatusCreated || id == "" {
		t.Fatalf("place: %d %v %s", placed.Code, placed.Header(), placed.Body)
	}
	if err := e.svc.ConfirmPayment(ctx, app.ConfirmPayment{OrderID: id, Version: 1, AmountCents: 1250, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if rec := e.post(t, "/orders/"+id+"/cancel", "", ""); rec.Code != http.StatusOK {
		t.Fatalf("cancel: %d %s", rec.Code, rec.Body)
	}
	if err := e.svc.RecordRefundFailure(ctx, app.RecordRefundFailure{OrderID: id, Version: 3, AmountCents: 1250,
		Currency: "EUR", Reason: contract.ReasonAccountNotFound}); err != nil {
		t.Fatal(err)
	}
	cancelled := e.post(t, "/orders/"+id+"/cancel", "", "cancel-1")
	if cancelled.Code != http.StatusOK || !strings.Contains(cancelled.Body.String(), `"refund_failure":"account_not_found"`) {
		t.Fatalf("cancel after the refund failed: %d %s, want 200 with the refund failure", cancelled.Code, cancelled.Body)
	}

	for _, tt := range []struct {
		name, path, key string
		first           *httptest.ResponseRecorder
	}{
		{"placement", "/orders", "place-1", placed},
		{"cancellation with a refund failure", "/orders/" + id + "/cancel", "cancel-1", cancelled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			if tt.path == "/orders" {
				body = `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`
			}
			wantReplayOf(t, tt.first, e.post(t, tt.path, body, tt.key))
		})
	}
	e.wantCounts(t, 1, 2, 2) // OrderPlaced, OrderCancelled; two keys
}

// TestKeyFromBeforeAnswersReplays: a key stored before migration 00005 holds
// only the order as its request left it (result), no answer: its replay is
// rendered from that order, the same answer as the first one.
func TestKeyFromBeforeAnswersReplays(t *testing.T) {
	e := newEnv(t)
	body := `{"customer_id":"c-1","amount_cents":1250,"currency":"EUR"}`
	first := e.post(t, "/orders", body, "old-key")
	if first.Code != http.StatusCreated {
		t.Fatalf("place: %d %s", first.Code, first.Body)
	}
	var order map[string]any // the answer's fields are those of the old result, but cancel_reason
	if err := json.Unmarshal(first.Body.Bytes(), &order); err != nil {
		t.Fatal(err)
	}
	order["cancel_reason"] = ""
	result, err := json.Marshal(order)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Exec(`UPDATE idempotency_keys SET result = ?, answer_status = NULL, answer_header = NULL,
		answer_body = NULL WHERE idem_key = 'old-key'`, string(result)); err != nil {
		t.Fatal(err)
	}
	wantReplayOf(t, first, e.post(t, "/orders", body, "old-key"))
}

// wantReplayOf checks that replay repeats first byte for byte (status, body,
// Content-Type, Location) and is marked Idempotent-Replayed.
func wantReplayOf(t *testing.T, first, replay *httptest.ResponseRecorder) {
	t.Helper()
	if replay.Code != first.Code || !bytes.Equal(replay.Body.Bytes(), first.Body.Bytes()) {
		t.Fatalf("replay: %d %q\nfirst:  %d %q", replay.Code, replay.Body, first.Code, first.Body)
	}
	if first.Header().Get(orderhttp.HeaderIdempotentReplayed) != "" || replay.Header().Get(orderhttp.HeaderIdempotentReplayed) != "true" {
		t.Fatalf("Idempotent-Replayed: first %q, replay %q; want none, then true",
			first.Header().Get(orderhttp.HeaderIdempotentReplayed), replay.Header().Get(orderhttp.HeaderIdempotentReplayed))
	}
	for _, h := range []string{"Content-Type", "Location"} {
		if replay.Header().Get(h) != first.Header().Get(h) {
			t.Fatalf("replay's %s = %q, first's %q", h, replay.Header().Get(h), first.Header().Get(h))
		}
	}
}

// TestKeyInFlightIsRefusedAtOnce: while the transaction of the first request
// with a key is open (held on purpose), a second request with the key gets
// CodeKeyInFlight at once, without waiting for the lock (the context allows 20 s,
// MariaDB's lock wait would take 50 s: a wait fails the test as unavailable).
// Once the first commits, the retry is a replay; had it rolled back, the retry
// would run as new (the key is never stuck).
func TestKeyInFlightIsRefusedAtOnce(t *testing.T) {
	for _, commit := range []bool{true, false} {
		name := map[bool]string{true: "first commits", false: "first rolls back"}[commit]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			tx, err := e.db.BeginTx(ctxFor(t, time.Minute), sqldb.TxOptions)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			held, err := e.svc.PlaceOrder(sqldb.ContextWithTx(ctxFor(t, time.Minute), tx), placeCmd("key-1", 100))
			if err != nil || held.Replayed {
				t.Fatalf("first request: %+v, %v", held, err)
			}

			_, err = e.svc.PlaceOrder(ctxFor(t, 20*time.Second), placeCmd("key-1", 100))
			wantCode(t, err, app.CodeKeyInFlight)

			if commit {
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
			} else if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			retry, err := e.svc.PlaceOrder(ctxFor(t, 20*time.Second), placeCmd("key-1", 100))
			if err != nil || retry.Replayed != commit || (orderOf(retry) == held.Order.ID) != commit {
				t.Fatalf("retry after the first ended: %+v, %v; want replayed=%v of order %s", retry, err, commit, held.Order.ID)
			}
			e.wantCounts(t, 1, 1, 1)
		})
	}
}

// TestKeyRolledBackWithTheChange: a transaction that fails after claiming the
// key leaves no key behind, so a retry runs in full: the order insert succeeded
// but the outbox write failed (its table renamed away), and a cancellation of
// an unknown order.
func TestKeyRolledBackWithTheChange(t *testing.T) {
	e := newEnv(t)
	if _, err := e.admin.Exec("RENAME TABLE watermill_outbox TO outbox_away"); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.PlaceOrder(ctxFor(t, 20*time.Second), placeCmd("key-1", 100))
	if err == nil {
		t.Fatal("placing an order without an outbox succeeded")
	}
	if _, err := e.admin.Exec("RENAME TABLE outbox_away TO watermill_outbox"); err != nil {
		t.Fatal(err)
	}
	e.wantCounts(t, 0, 0, 0)
	res, err := e.svc.PlaceOrder(ctxFor(t, 20*time.Second), placeCmd("key-1", 100))
	if err != nil || res.Replayed {
		t.Fatalf("retry after the failed transaction: %+v, %v, want a new order", res, err)
	}
	e.wantCounts(t, 1, 1, 1)

	_, err = e.svc.CancelOrder(ctxFor(t, 20*time.Second), "no-such-order", "",
		&app.Idempotency{Key: "key-2", Scope: "POST /orders/:id/cancel", Fingerprint: "x", Render: idAnswer})
	wantCode(t, err, apperr.CodeNotFound)
	e.wantCounts(t, 1, 1, 1)
}

// TestExpiredKeys: the cleanup deletes exactly the expired keys, in bounded
// batches, and an expired key that was not cleaned up yet counts as absent.
func TestExpiredKeys(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	e.svc.Now = func() time.Time { return now.Add(-25 * time.Hour) } // keys made then expired an hour ago
	var old []app.Result
	for i := range 5 {
		res, err := e.svc.PlaceOrder(ctxFor(t, 20*time.Second), placeCmd("old-"+string(rune('a'+i)), 100))
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, res)
	}
	e.svc.Now = func() time.Time { return now }
	for i := range 2 {
		if _, err := e.svc.PlaceOrder(ctxFor(t, 20*time.Second), placeCmd("new-"+string(rune('a'+i)), 100)); err != nil {
			t.Fatal(err)
		}
	}
	e.wantCounts(t, 7, 7, 7)

	// Expired but still there: the same key runs as a new request.
	res, err := e.svc.PlaceOrder(ctxFor(t, 20*time.Second), placeCmd("old-a", 100))
	if err != nil || res.Replayed || res.Order.ID == old[0].Order.ID {
		t.Fatalf("expired key: %+v, %v, want a new order", res, err)
	}
	e.wantCounts(t, 8, 8, 7) // old-a now belongs to the new order

	// One batch of 2 at most: a bounded run leaves the rest for the next.
	n, err := e.svc.DeleteExpiredKeys(ctxFor(t, 20*time.Second), 2, 1)
	if err != nil || n != 2 {
		t.Fatalf("one batch deleted %d (%v), want 2", n, err)
	}
	n, err = e.svc.DeleteExpiredKeys(ctxFor(t, 20*time.Second), 2, 10)
	if err != nil || n != 2 {
		t.Fatalf("the rest: deleted %d (%v), want 2", n, err)
	}
	var left []string
	rows, err := e.db.Query("SELECT idem_key FROM idempotency_keys ORDER BY idem_key")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		left = append(left, k)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(left, ",") != "new-a,new-b,old-a" {
		t.Fatalf("keys left after the cleanup: %v, want the three unexpired ones", left)
	}
	e.wantCounts(t, 8, 8, 3) // orders and their events are not touched
}

// TestCleanupSkipsHeldKeys: a key a transaction holds (a request re-claiming an
// expired key) is skipped, not waited for.
func TestCleanupSkipsHeldKeys(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	e.svc.Now = func() time.Time { return now.Add(-25 * time.Hour) }
	for _, k := range []string{"a", "b"} {
		if _, err := e.svc.PlaceOrder(ctxFor(t, 20*time.Second), placeCmd(k, 100)); err != nil {
			t.Fatal(err)
		}
	}
	e.svc.Now = func() time.Time { return now }
	tx, err := e.db.BeginTx(ctxFor(t, time.Minute), sqldb.TxOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("SELECT * FROM idempotency_keys WHERE idem_key = 'a' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	n, err := e.svc.DeleteExpiredKeys(ctxFor(t, 20*time.Second), 10, 10)
	if err != nil || n != 1 {
		t.Fatalf("cleanup with one key held: deleted %d (%v), want 1", n, err)
	}
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		t.Fatal(err)
	}
	if n, err := e.svc.DeleteExpiredKeys(ctxFor(t, 20*time.Second), 10, 10); err != nil || n != 1 {
		t.Fatalf("cleanup after release: deleted %d (%v), want 1", n, err)
	}
}
