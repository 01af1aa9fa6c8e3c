package mariadb_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/services/payment/internal/adapters/mariadb"
	"github.com/onceflow/onceflow/services/payment/internal/domain"
)

// The contract of Payments.Update (app.Payments), against MariaDB: fn runs on
// the order's payment and its customer's account under their row locks; nil
// commits the payment, the balance, the ledger movements and fn's events
// together, an error rolls all of them back and is returned unchanged; an order
// without a payment gives fn an empty one, a customer without an account a nil
// account.

// paymentsDB is a fresh, migrated payment database with alice's account of
// 10,000 EUR cents, and its DSN.
func paymentsDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	d := testenv.NewDatabase(t, testenv.PaymentDBAddr)
	d.Migrate(t, mariadb.Migrations)
	db, dsn := d.Admin, d.DSN
	if _, err := db.Exec("INSERT INTO accounts (customer_id, balance_cents, currency) VALUES ('alice', 10000, 'EUR')"); err != nil {
		t.Fatal(err)
	}
	return db, dsn
}

// paymentsRepo returns a repository on the database through its own pool (like
// one replica of the service), opened with extra DSN parameters.
func paymentsRepo(t *testing.T, dsn, params string) *mariadb.Payments {
	t.Helper()
	db, outbox := testenv.RepoDeps(t, dsn+params)
	return mariadb.NewPayments(db, outbox, "payments")
}

// completed is a valid PaymentCompleted about orderID.
func completed(orderID string) events.Event {
	return events.Event{ID: watermill.NewUUID(), OrderID: orderID, OrderVersion: 1, OccurredAt: time.Now(),
		Payload: events.PaymentCompleted{CustomerID: "alice", AmountCents: 700, Currency: "EUR"}}
}

// charge is an Update fn that charges 700 cents for order version 1.
func charge(p *domain.Payment, f domain.Funds) ([]events.Event, error) {
	if _, err := p.Charge(1, "alice", 700, "EUR", f, time.Now().UTC().Truncate(time.Microsecond)); err != nil {
		return nil, err
	}
	return []events.Event{completed(p.OrderID)}, nil
}

// state is what the database holds about an order's payment and alice's money.
type state struct {
	status          string
	balance         int64
	ledgerRows      int
	outboxRows      int
	paymentVersions int
}

func readState(t *testing.T, db *sql.DB, orderID string) state {
	t.Helper()
	var s state
	err := db.QueryRow(`SELECT COALESCE((SELECT status FROM payments WHERE order_id = ?), ''),
		COALESCE((SELECT balance_cents FROM accounts WHERE customer_id = 'alice'), -1),
		(SELECT COUNT(*) FROM ledger WHERE order_id = ?),
		(SELECT COUNT(*) FROM watermill_outbox),
		COALESCE((SELECT order_version FROM payments WHERE order_id = ?), 0)`, orderID, orderID, orderID).
		Scan(&s.status, &s.balance, &s.ledgerRows, &s.outboxRows, &s.paymentVersions)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPaymentsUpdateContract(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("nil commits payment, balance, ledger and events", func(t *testing.T) {
		t.Parallel()
		db, dsn := paymentsDB(t)
		id := watermill.NewUUID()
		if err := paymentsRepo(t, dsn, "").Update(ctx, id, "alice", charge); err != nil {
			t.Fatal(err)
		}
		if got, want := readState(t, db, id), (state{"CHARGED", 9300, 1, 1, 1}); got != want {
			t.Fatalf("after a charge: %+v, want %+v", got, want)
		}
	})
	t.Run("an error rolls all of it back", func(t *testing.T) {
		t.Parallel()
		db, dsn := paymentsDB(t)
		id := watermill.NewUUID()
		refused := errors.New("refused by fn")
		err := paymentsRepo(t, dsn, "").Update(ctx, id, "alice", func(p *domain.Payment, f domain.Funds) ([]events.Event, error) {
			evts, _ := charge(p, f)
			return evts, refused
		})
		if err != refused { //nolint:errorlint // the test wants fn's error itself, not a wrapper of it
			t.Fatalf("Update = %v, want fn's error unchanged", err)
		}
		if got, want := readState(t, db, id), (state{"", 10000, 0, 0, 0}); got != want {
			t.Fatalf("after a failed charge: %+v, want %+v (nothing)", got, want)
		}
	})
	t.Run("no payment and no account", func(t *testing.T) {
		t.Parallel()
		db, dsn := paymentsDB(t)
		id := watermill.NewUUID()
		var gotPayment *domain.Payment
		var gotAccount *domain.Account
		err := paymentsRepo(t, dsn, "").Update(ctx, id, "nobody", func(p *domain.Payment, f domain.Funds) ([]events.Event, error) {
			gotPayment = p
			var err error
			gotAccount, err = f.Account()
			return nil, err
		})
		if err != nil || gotPayment == nil || gotPayment.OrderID != id || gotPayment.Status != domain.StatusNone || gotAccount != nil {
			t.Fatalf("Update = %v, fn got %+v and %+v; want an empty payment of the order and no account", err, gotPayment, gotAccount)
		}
		if got, want := readState(t, db, id), (state{"", 10000, 0, 0, 0}); got != want {
			t.Fatalf("an untouched payment stored something: %+v", got)
		}
	})
}

// TestPaymentsUpdateHoldsTheRowLock: while one Update of an order's payment is
// running its fn, an Update of the same payment from another pool (another
// replica) cannot read it: it waits for the payment's row lock (and, with
// innodb_lock_wait_timeout = 1 s here, gives up with error 1205) instead of
// working on the state the first is about to replace. Once the first has
// committed, the second reads what it wrote. The customer's account is deleted
// first, so that only the payment's lock is in play (the account's row lock
// would serialise the two on its own).
func TestPaymentsUpdateHoldsTheRowLock(t *testing.T) {
	t.Parallel()
	db, dsn := paymentsDB(t)
	first, second := paymentsRepo(t, dsn, ""), paymentsRepo(t, dsn, "&innodb_lock_wait_timeout=1")
	id := watermill.NewUUID()
	ctx := context.Background()
	if err := first.Update(ctx, id, "alice", charge); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM accounts WHERE customer_id = 'alice'"); err != nil {
		t.Fatal(err)
	}
	var seen domain.PaymentStatus
	testenv.CheckRowLock(t, func(inside func(), release <-chan struct{}) error {
		return first.Update(ctx, id, "", func(p *domain.Payment, f domain.Funds) ([]events.Event, error) {
			a, err := f.Account()
			if err != nil {
				return nil, err
			}
			inside()
			<-release
			p.Cancel(2, a, time.Now().UTC().Truncate(time.Microsecond)) // no account: REFUND_FAILED
			return nil, nil
		})
	}, func() error {
		return second.Update(ctx, id, "", func(p *domain.Payment, _ domain.Funds) ([]events.Event, error) {
			seen = p.Status
			return nil, nil
		})
	})
	if seen != domain.StatusRefundFailed {
		t.Fatalf("after the first committed the second update read %s; want REFUND_FAILED", seen)
	}
	if got, want := readState(t, db, id), (state{"REFUND_FAILED", -1, 1, 1, 2}); got != want {
		t.Fatalf("after the charge and the failed refund: %+v, want %+v", got, want)
	}
}
