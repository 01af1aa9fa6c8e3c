package mariadb_test

import (
	"slices"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/services/order/internal/adapters/mariadb"
)

// TestNotDone: PENDING orders count from their creation, cancelled paid ones
// awaiting their refund from their last change; done orders (confirmed,
// refunded, refund failed, cancelled unpaid) never count.
func TestNotDone(t *testing.T) {
	e := newEnv(t)
	repo := mariadb.NewOrders(e.db, outbox.New(), "orders")
	now := time.Now().UTC().Truncate(time.Second)
	rows := []struct {
		id, status       string
		paid, refunded   bool
		refundFailure    string
		created, updated time.Duration // before now
	}{
		{"pending-old", "PENDING", false, false, "", 30 * time.Minute, 30 * time.Minute},
		{"pending-new", "PENDING", false, false, "", time.Minute, time.Minute},
		{"refund-old", "CANCELLED", true, false, "", 2 * time.Hour, 20 * time.Minute},
		{"confirmed", "CONFIRMED", true, false, "", 3 * time.Hour, 3 * time.Hour},
		{"refunded", "CANCELLED", true, true, "", 3 * time.Hour, 3 * time.Hour},
		{"refund-failed", "CANCELLED", true, false, "account_not_found", 3 * time.Hour, 3 * time.Hour},
		{"cancelled-unpaid", "CANCELLED", false, false, "", 3 * time.Hour, 3 * time.Hour},
	}
	for _, r := range rows {
		if _, err := e.admin.Exec(`INSERT INTO orders (id, customer_id, amount_cents, currency, status, paid, refunded,
			refund_failure, version, created_at, updated_at) VALUES (?, 'c', 100, 'EUR', ?, ?, ?, ?, 1, ?, ?)`,
			r.id, r.status, r.paid, r.refunded, r.refundFailure, now.Add(-r.created), now.Add(-r.updated)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := ctxFor(t, 10*time.Second)
	for _, c := range []struct {
		olderThan time.Duration
		limit     int
		want      []string
	}{
		{10 * time.Minute, 10, []string{"pending-old", "refund-old"}},
		{10 * time.Minute, 1, []string{"pending-old"}},
		{0, 10, []string{"pending-old", "refund-old", "pending-new"}},
		{time.Hour, 10, nil},
	} {
		got, err := repo.NotDoneBefore(ctx, now.Add(-c.olderThan), c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("NotDoneBefore(now-%s, %d) = %v, want %v", c.olderThan, c.limit, got, c.want)
		}
	}
	oldest, err := repo.OldestNotDone(ctx)
	if err != nil || !oldest.Equal(now.Add(-30*time.Minute)) {
		t.Fatalf("OldestNotDone = %s, %v; want %s", oldest, err, now.Add(-30*time.Minute))
	}
}
