package mariadb_test

import (
	"testing"
	"time"

	"github.com/onceflow/onceflow/services/order/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// The console's queries against MariaDB: recent orders merge the
// statuses newest first, the rate counts a window, the backlog is the outbox.
func TestConsoleStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	repo := ordersRepo(t, e, "")
	first := seedOrder(t, repo)
	second := seedOrder(t, repo)
	third := seedOrder(t, repo)
	// The oldest and the newest change status: the merge must still order by time.
	for _, id := range []string{first.ID, third.ID} {
		if _, err := e.db.Exec("UPDATE orders SET status = 'CONFIRMED' WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
	}
	stats := mariadb.NewConsoleStats(e.db)
	ctx := ctxFor(t, 20*time.Second)

	recent, err := stats.RecentOrders(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(recent) != 2 || recent[0].ID != third.ID || recent[1].ID != second.ID {
		t.Fatalf("recent orders = %v, want [%s %s] (newest first, across statuses)", ids(recent), third.ID, second.ID)
	}
	if n, err := stats.OrdersSince(ctx, first.CreatedAt); err != nil || n != 3 {
		t.Fatalf("orders since the first = %d, %v; want 3", n, err)
	}
	if n, err := stats.OrdersSince(ctx, third.CreatedAt.Add(time.Microsecond)); err != nil || n != 0 {
		t.Fatalf("orders after the last = %d, %v; want 0", n, err)
	}
	rows, age, err := stats.OutboxBacklog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 3 || age < 0 {
		t.Fatalf("outbox backlog = %d rows, oldest %v s; want 3 rows (one event per order, no forwarder)", rows, age)
	}
	if _, err := e.db.Exec("DELETE FROM watermill_outbox"); err != nil {
		t.Fatal(err)
	}
	if rows, age, err := stats.OutboxBacklog(ctx); err != nil || rows != 0 || age != 0 {
		t.Fatalf("empty outbox = %d rows, oldest %v s, %v; want 0, 0", rows, age, err)
	}
}

func ids(list []*domain.Order) []string {
	out := make([]string, len(list))
	for i, o := range list {
		out[i] = o.ID
	}
	return out
}
