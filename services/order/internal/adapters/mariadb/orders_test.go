package mariadb_test

import (
	"errors"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/services/order/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// The contract of Orders.Update (app.Orders), against MariaDB: fn runs on the
// order under its row lock; nil commits the change and fn's events together,
// an error rolls both back and is returned unchanged; an unknown order is
// domain.ErrNotFound.

// ordersRepo returns a repository on the env's database, through its own pool
// (like another replica of the service) opened with extra DSN parameters.
func ordersRepo(t *testing.T, e *env, params string) *mariadb.Orders {
	t.Helper()
	db, outbox := testenv.RepoDeps(t, e.dsn+params)
	return mariadb.NewOrders(db, outbox, "orders")
}

// seedOrder stores a PENDING order at v1 (and its OrderPlaced event).
func seedOrder(t *testing.T, repo *mariadb.Orders) *domain.Order {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	o, err := domain.NewOrder(app.NewID(), "c-1", 1250, "EUR", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Add(ctxFor(t, 20*time.Second), o, cancelledEvent(o)); err != nil {
		t.Fatal(err)
	}
	return o
}

// cancelledEvent is a valid event about o at its current version.
func cancelledEvent(o *domain.Order) events.Event {
	return events.Event{ID: app.NewID(), OrderID: o.ID, OrderVersion: o.Version, OccurredAt: time.Now(),
		Payload: events.OrderCancelled{Reason: domain.ReasonCancelledByCustomer}}
}

// readOrder reads an order's status and version straight from the table.
func readOrder(t *testing.T, e *env, id string) (status string, version int) {
	t.Helper()
	if err := e.db.QueryRow("SELECT status, version FROM orders WHERE id = ?", id).Scan(&status, &version); err != nil {
		t.Fatal(err)
	}
	return status, version
}

func TestOrdersUpdateContract(t *testing.T) {
	t.Parallel()
	t.Run("nil commits the order and its events", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		repo := ordersRepo(t, e, "")
		o := seedOrder(t, repo)
		err := repo.Update(ctxFor(t, 20*time.Second), o.ID, func(o *domain.Order) ([]events.Event, error) {
			o.Cancel(domain.ReasonCancelledByCustomer, time.Now().UTC())
			return []events.Event{cancelledEvent(o), cancelledEvent(o)}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if status, version := readOrder(t, e, o.ID); status != "CANCELLED" || version != 2 {
			t.Fatalf("order %s v%d, want CANCELLED v2", status, version)
		}
		e.wantCounts(t, 1, 3, 0)
	})
	t.Run("an error rolls back the order and its events", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		repo := ordersRepo(t, e, "")
		o := seedOrder(t, repo)
		refused := errors.New("refused by fn")
		err := repo.Update(ctxFor(t, 20*time.Second), o.ID, func(o *domain.Order) ([]events.Event, error) {
			o.Cancel(domain.ReasonCancelledByCustomer, time.Now().UTC())
			return []events.Event{cancelledEvent(o)}, refused
		})
		if err != refused { //nolint:errorlint // the test wants fn's error itself, not a wrapper of it
			t.Fatalf("Update = %v, want fn's error unchanged", err)
		}
		if status, version := readOrder(t, e, o.ID); status != "PENDING" || version != 1 {
			t.Fatalf("order %s v%d after a failed update, want PENDING v1", status, version)
		}
		e.wantCounts(t, 1, 1, 0) // only the seed's event
	})
	t.Run("an unknown order is ErrNotFound and fn does not run", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		repo := ordersRepo(t, e, "")
		ran := false
		err := repo.Update(ctxFor(t, 20*time.Second), "no-such-order", func(*domain.Order) ([]events.Event, error) {
			ran = true
			return nil, nil
		})
		if !errors.Is(err, domain.ErrNotFound) || ran {
			t.Fatalf("Update = %v (fn ran: %v), want ErrNotFound without running fn", err, ran)
		}
	})
}

// TestOrdersUpdateHoldsTheRowLock: while one Update of an order is running its
// fn, an Update of the same order from another pool (another replica) cannot
// read the order: it waits for the row lock (and, with innodb_lock_wait_timeout
// = 1 s here, gives up with error 1205, which the store reports as unavailable:
// a 503 with Retry-After, nothing stored) instead of working on the version the
// first is about to replace. Once the first has committed, the second reads
// what it wrote. Without the lock, the second would read v1 at once and the
// first would then fail on the version check.
func TestOrdersUpdateHoldsTheRowLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first, second := ordersRepo(t, e, ""), ordersRepo(t, e, "&innodb_lock_wait_timeout=1")
	o := seedOrder(t, first)
	bump := func(o *domain.Order) {
		o.Version++
		o.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
	}

	seen, tries := 0, 0
	var waited error
	testenv.CheckRowLock(t, func(inside func(), release <-chan struct{}) error {
		return first.Update(ctxFor(t, 30*time.Second), o.ID, func(o *domain.Order) ([]events.Event, error) {
			inside()
			<-release
			bump(o)
			return nil, nil
		})
	}, func() error {
		err := second.Update(ctxFor(t, 30*time.Second), o.ID, func(o *domain.Order) ([]events.Event, error) {
			seen = o.Version
			bump(o)
			return nil, nil
		})
		if tries++; tries == 1 {
			waited = err
		}
		return err
	})
	if e := apperr.As(waited); e == nil || e.Code != apperr.CodeUnavailable {
		t.Errorf("an update that gave up waiting for the row lock = %v; want apperr.CodeUnavailable", waited)
	}
	if seen != 2 {
		t.Fatalf("after the first committed the second update read v%d; want v2", seen)
	}
	if _, version := readOrder(t, e, o.ID); version != 3 {
		t.Fatalf("version %d, want 3: one bump each", version)
	}
}
