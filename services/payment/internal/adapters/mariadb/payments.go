// Package mariadb stores accounts, payments and the ledger in the payment
// service's MariaDB, together with the events each change produces (written to
// the transactional outbox in the same transaction).
package mariadb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"github.com/onceflow/onceflow/pkg/outbox"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/dryrun"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/sqldb"
	"github.com/onceflow/onceflow/services/payment/internal/app"
	"github.com/onceflow/onceflow/services/payment/internal/domain"
)

// Migrations holds the payment service's schema migrations (goose, embedded) under
// migrations/.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Payments implements app.Payments.
type Payments struct {
	db     *sql.DB
	outbox *outbox.Outbox
	// topic is the Kafka topic the payment events go to.
	topic string
}

// NewPayments returns a repository on db that writes events for topic into outbox.
func NewPayments(db *sql.DB, outbox *outbox.Outbox, topic string) *Payments {
	return &Payments{db: db, outbox: outbox, topic: topic}
}

var _ app.Payments = (*Payments)(nil)

const paymentColumns = "order_id, customer_id, amount_cents, currency, status, reason, order_version, charged_cents, refunded_cents, created_at, updated_at"

// Update implements app.Payments. customerID may be empty when the caller does
// not know it (a cancellation): then only an existing payment's account is
// reached. The account is not read up front: a charge is one conditional UPDATE
// (funds.DebitIfEnough), and only a refused charge or a refund reads it (ADR
// 0043). Locks are taken payment first, account second, in every transaction,
// so two orders of one customer never deadlock. An unreachable database is
// apperr.CodeUnavailable (wrapping the driver's error); fn's own error is
// returned unchanged; any other failure is returned as it is (internal).
func (r *Payments) Update(ctx context.Context, orderID, customerID string, fn func(p *domain.Payment, f domain.Funds) ([]events.Event, error)) error {
	var fnErr error
	err := sqldb.InTx(ctx, r.db, func(ctx context.Context, tx *sql.Tx) error {
		p, err := loadPayment(ctx, tx, orderID)
		if err != nil {
			return err
		}
		isNew := p.Status == domain.StatusNone
		if !isNew {
			customerID = p.CustomerID
		}
		f := &funds{ctx: ctx, tx: tx, customerID: customerID}
		evts, err := fn(p, f)
		if err != nil {
			if f.err == nil || !errors.Is(err, f.err) {
				fnErr = err // fn's own decision, not a storage failure
			}
			return err
		}
		if p.Status == domain.StatusNone {
			return events.Write(ctx, r.outbox, tx, r.topic, evts...) // fn left the payment untouched
		}
		if err := savePayment(ctx, tx, p, isNew); err != nil {
			return err
		}
		if a := f.loaded; a != nil && a.BalanceCents != f.loadedBalance { // under the lock Account took
			if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance_cents = ? WHERE customer_id = ?",
				a.BalanceCents, a.CustomerID); err != nil {
				return fmt.Errorf("update account %s: %w", a.CustomerID, err)
			}
		}
		for _, m := range p.Movements() {
			if _, err := tx.ExecContext(ctx, `INSERT INTO ledger (order_id, customer_id, kind, amount_cents, created_at)
				VALUES (?, ?, ?, ?, ?)`, p.OrderID, p.CustomerID, m.Kind, m.AmountCents, p.UpdatedAt); err != nil {
				return fmt.Errorf("append to ledger: %w", err)
			}
		}
		return events.Write(ctx, r.outbox, tx, r.topic, evts...)
	})
	if fnErr != nil && errors.Is(err, fnErr) {
		return fnErr
	}
	if failure.IsUnavailable(err) {
		return &apperr.Error{Code: apperr.CodeUnavailable, Message: "the payment database is unavailable, try again", Err: err}
	}
	return err // internal
}

func loadPayment(ctx context.Context, tx *sql.Tx, orderID string) (*domain.Payment, error) {
	p := domain.NewPayment(orderID)
	err := tx.QueryRowContext(ctx, "SELECT "+paymentColumns+" FROM payments WHERE order_id = ? FOR UPDATE", orderID).
		Scan(&p.OrderID, &p.CustomerID, &p.AmountCents, &p.Currency, &p.Status, &p.Reason, &p.OrderVersion,
			&p.ChargedCents, &p.RefundedCents, &p.CreatedAt, &p.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read payment of order %s: %w", orderID, err)
	}
	return p, nil
}

// funds implements domain.Funds on a customer's account inside the payment's
// transaction.
type funds struct {
	ctx        context.Context
	tx         *sql.Tx
	customerID string // "": nobody (no account)
	// loaded is the account Account read (nil: not read, or none), with its
	// balance as read; Update stores a changed balance.
	loaded        *domain.Account
	loadedBalance int64
	read          bool
	// err is the last storage error, told apart from fn's own.
	err error
}

// DebitIfEnough implements domain.Funds: one conditional UPDATE, which also
// takes the account's row lock when it matches.
func (f *funds) DebitIfEnough(amountCents int64, currency string) (bool, error) {
	if f.customerID == "" {
		return false, nil
	}
	res, err := f.tx.ExecContext(f.ctx, `UPDATE accounts SET balance_cents = balance_cents - ?
		WHERE customer_id = ? AND currency = ? AND balance_cents >= ?`, amountCents, f.customerID, currency, amountCents)
	if err != nil {
		f.err = fmt.Errorf("debit account %s: %w", f.customerID, err)
		return false, f.err
	}
	n, err := res.RowsAffected()
	if err != nil {
		f.err = fmt.Errorf("debit account %s: %w", f.customerID, err)
		return false, f.err
	}
	return n == 1, nil
}

// Account implements domain.Funds.
func (f *funds) Account() (*domain.Account, error) {
	if f.read || f.customerID == "" {
		return f.loaded, nil
	}
	a, err := loadAccount(f.ctx, f.tx, f.customerID)
	if err != nil {
		f.err = err
		return nil, err
	}
	f.read, f.loaded = true, a
	if a != nil {
		f.loadedBalance = a.BalanceCents
	}
	return a, nil
}

func loadAccount(ctx context.Context, tx *sql.Tx, customerID string) (*domain.Account, error) {
	var a domain.Account
	err := tx.QueryRowContext(ctx, "SELECT customer_id, balance_cents, currency FROM accounts WHERE customer_id = ? FOR UPDATE",
		customerID).Scan(&a.CustomerID, &a.BalanceCents, &a.Currency)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read account %s: %w", customerID, err)
	}
	return &a, nil
}

func savePayment(ctx context.Context, tx *sql.Tx, p *domain.Payment, isNew bool) error {
	var err error
	if isNew {
		_, err = tx.ExecContext(ctx, "INSERT INTO payments ("+paymentColumns+") VALUES (?,?,?,?,?,?,?,?,?,?,?)",
			p.OrderID, p.CustomerID, p.AmountCents, p.Currency, p.Status, p.Reason, p.OrderVersion,
			p.ChargedCents, p.RefundedCents, p.CreatedAt, p.UpdatedAt)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE payments SET status = ?, reason = ?, order_version = ?, charged_cents = ?,
			refunded_cents = ?, updated_at = ? WHERE order_id = ?`,
			p.Status, p.Reason, p.OrderVersion, p.ChargedCents, p.RefundedCents, p.UpdatedAt, p.OrderID)
	}
	if err != nil {
		return fmt.Errorf("save payment of order %s: %w", p.OrderID, err)
	}
	return nil
}

// Status returns the status of the order's payment ("" if it has none), by
// the payments table's primary key, without a lock.
func (r *Payments) Status(ctx context.Context, orderID string) (string, error) {
	var status string
	err := r.db.QueryRowContext(ctx, "SELECT status FROM payments WHERE order_id = ?", orderID).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return status, err
}

// PaymentState is the state a dry run shows of an order's payment
// (poison.DryRunConfig): its row as the handler's transaction sees it, nil if
// there is none.
func PaymentState(orderID string) dryrun.State {
	return func(ctx context.Context, tx *sql.Tx) (any, error) {
		var s struct {
			Status        string `json:"status"`
			OrderVersion  int    `json:"order_version"`
			ChargedCents  int64  `json:"charged_cents"`
			RefundedCents int64  `json:"refunded_cents"`
		}
		err := tx.QueryRowContext(ctx, "SELECT status, order_version, charged_cents, refunded_cents FROM payments WHERE order_id = ?", orderID).
			Scan(&s.Status, &s.OrderVersion, &s.ChargedCents, &s.RefundedCents)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		return s, err
	}
}
