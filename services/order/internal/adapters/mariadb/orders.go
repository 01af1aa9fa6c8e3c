// Package mariadb stores orders in the order service's MariaDB, together with
// the events each change produces (written to the transactional outbox in the
// same transaction).
package mariadb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/outbox"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/sqldb"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// Migrations holds the order service's schema migrations (goose, embedded) under
// migrations/.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Orders implements app.Orders.
type Orders struct {
	db     *sql.DB
	outbox *outbox.Outbox
	// topic is the Kafka topic the order events go to.
	topic string
}

// NewOrders returns a repository on db that writes events for topic into outbox.
func NewOrders(db *sql.DB, outbox *outbox.Outbox, topic string) *Orders {
	return &Orders{db: db, outbox: outbox, topic: topic}
}

var _ app.Orders = (*Orders)(nil)

const orderColumns = "id, customer_id, amount_cents, currency, status, cancel_reason, paid, refunded, refund_failure, version, created_at, updated_at"

// Add implements app.Orders.
func (r *Orders) Add(ctx context.Context, o *domain.Order, evts ...events.Event) error {
	_, err := r.add(ctx, nil, o, evts)
	return err
}

// AddOnce implements app.Orders.
func (r *Orders) AddOnce(ctx context.Context, key app.KeyClaim, o *domain.Order, evts ...events.Event) (*app.StoredKey, error) {
	return r.add(ctx, &key, o, evts)
}

// add stores o and evts, under key if not nil (see app.Orders.AddOnce).
func (r *Orders) add(ctx context.Context, key *app.KeyClaim, o *domain.Order, evts []events.Event) (*app.StoredKey, error) {
	var stored *app.StoredKey
	err := sqldb.InTx(ctx, r.db, func(ctx context.Context, tx *sql.Tx) error {
		if key != nil {
			var err error
			if stored, err = claimKey(ctx, tx, *key); err != nil || stored != nil {
				return err
			}
			if err := recordKey(ctx, tx, *key, o); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO orders ("+orderColumns+") VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
			o.ID, o.CustomerID, o.AmountCents, o.Currency, o.Status, o.CancelReason, o.Paid, o.Refunded,
			o.RefundFailure, o.Version, o.CreatedAt, o.UpdatedAt)
		if err != nil {
			return fmt.Errorf("insert order %s: %w", o.ID, err)
		}
		return events.Write(ctx, r.outbox, tx, r.topic, evts...)
	})
	return stored, storeErr(err)
}

// Update implements app.Orders.
func (r *Orders) Update(ctx context.Context, id string, fn func(o *domain.Order) ([]events.Event, error)) error {
	_, err := r.update(ctx, nil, id, fn)
	return err
}

// UpdateOnce implements app.Orders.
func (r *Orders) UpdateOnce(ctx context.Context, key app.KeyClaim, id string, fn func(o *domain.Order) ([]events.Event, error)) (*app.StoredKey, error) {
	return r.update(ctx, &key, id, fn)
}

// update is Update, under key if not nil (see app.Orders.UpdateOnce).
func (r *Orders) update(ctx context.Context, key *app.KeyClaim, id string, fn func(o *domain.Order) ([]events.Event, error)) (*app.StoredKey, error) {
	var fnErr error
	var stored *app.StoredKey
	err := sqldb.InTx(ctx, r.db, func(ctx context.Context, tx *sql.Tx) error {
		if key != nil {
			var err error
			if stored, err = claimKey(ctx, tx, *key); err != nil || stored != nil {
				return err
			}
		}
		o, err := scanOrder(tx.QueryRowContext(ctx, "SELECT "+orderColumns+" FROM orders WHERE id = ? FOR UPDATE", id))
		if err != nil {
			return err
		}
		version := o.Version
		evts, err := fn(o)
		if err != nil {
			fnErr = err
			return err
		}
		if key != nil {
			if err := recordKey(ctx, tx, *key, o); err != nil {
				return err
			}
		}
		if o.Version == version {
			return events.Write(ctx, r.outbox, tx, r.topic, evts...) // fn changed nothing
		}
		res, err := tx.ExecContext(ctx, `UPDATE orders SET status = ?, cancel_reason = ?, paid = ?, refunded = ?,
			refund_failure = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?`,
			o.Status, o.CancelReason, o.Paid, o.Refunded, o.RefundFailure, o.Version, o.UpdatedAt, o.ID, version)
		if err != nil {
			return fmt.Errorf("update order %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("update order %s: version %d changed under a row lock", id, version)
		}
		return events.Write(ctx, r.outbox, tx, r.topic, evts...)
	})
	if fnErr != nil && errors.Is(err, fnErr) {
		return nil, fnErr
	}
	return stored, storeErr(err)
}

// Get implements app.Orders.
func (r *Orders) Get(ctx context.Context, id string) (*domain.Order, error) {
	o, err := scanOrder(r.db.QueryRowContext(ctx, "SELECT "+orderColumns+" FROM orders WHERE id = ?", id))
	return o, storeErr(err)
}

// ListByCustomer implements app.Orders.
func (r *Orders) ListByCustomer(ctx context.Context, customerID string, limit int) ([]*domain.Order, error) {
	rows, err := r.db.QueryContext(ctx, "SELECT "+orderColumns+
		" FROM orders WHERE customer_id = ? ORDER BY created_at DESC, id DESC LIMIT ?", customerID, limit)
	if err != nil {
		return nil, storeErr(err)
	}
	defer rows.Close()
	list := []*domain.Order{}
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, storeErr(err)
		}
		list = append(list, o)
	}
	return list, storeErr(rows.Err())
}

// PendingBefore implements app.Orders.
func (r *Orders) PendingBefore(ctx context.Context, t time.Time, limit int) ([]string, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT id FROM orders WHERE status = 'PENDING' AND created_at < ?
		ORDER BY created_at LIMIT ?`, t, limit)
	if err != nil {
		return nil, storeErr(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, storeErr(err)
		}
		ids = append(ids, id)
	}
	return ids, storeErr(rows.Err())
}

func scanOrder(row interface{ Scan(...any) error }) (*domain.Order, error) {
	var o domain.Order
	err := row.Scan(&o.ID, &o.CustomerID, &o.AmountCents, &o.Currency, &o.Status, &o.CancelReason,
		&o.Paid, &o.Refunded, &o.RefundFailure, &o.Version, &o.CreatedAt, &o.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read order: %w", err)
	}
	return &o, nil
}

// storeErr turns driver errors into application errors: an unreachable database
// becomes apperr.CodeUnavailable, and so does a transaction the database
// aborted for a concurrent one (a deadlock, a lock wait timeout, or on a Galera
// cluster a commit that lost certification, ADR 0060): nothing was stored and
// the same request may succeed when sent again, so the client gets a 503 with
// Retry-After, never a 500. Domain errors pass unchanged.
func storeErr(err error) error {
	switch {
	case err == nil, errors.Is(err, domain.ErrNotFound), errors.Is(err, app.ErrKeyInFlight):
		return err
	case failure.IsUnavailable(err):
		return &apperr.Error{Code: apperr.CodeUnavailable, Message: "the order database is unavailable, try again", Err: err}
	case failure.IsAborted(err):
		return &apperr.Error{Code: apperr.CodeUnavailable, Message: "a concurrent change to the same data won; nothing was stored, try again", Err: err}
	case errors.Is(err, outbox.ErrMessageTooLarge):
		// What the client sent makes an event over the outbox's bounds:
		// nothing was stored, and the same request can never succeed.
		return &apperr.Error{Code: apperr.CodeInvalid, Message: "the request makes an event larger than the service accepts", Err: err}
	}
	if apperr.As(err) != nil {
		return err
	}
	return &apperr.Error{Code: apperr.CodeInternal, Message: "storage error", Err: err}
}
