package messaging

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

type txKey struct{}

// ContextWithTx returns a context that carries tx, so that code called with it
// (a repository) joins the transaction instead of opening its own. The Inbox
// middleware uses it to run a handler's writes in the transaction that records the
// message as processed.
func ContextWithTx(ctx context.Context, tx *sql.Tx) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// TxFromContext returns the transaction ctx carries, if any.
func TxFromContext(ctx context.Context) (*sql.Tx, bool) {
	tx, ok := ctx.Value(txKey{}).(*sql.Tx)
	return tx, ok && tx != nil
}

// TxOptions is the isolation every service transaction uses: READ COMMITTED plus
// explicit row locks (SELECT ... FOR UPDATE) on the aggregate being changed. It
// takes no gap locks, so concurrent inserts (new orders, outbox rows) never wait
// for each other (ADR 0004).
var TxOptions = &sql.TxOptions{Isolation: sql.LevelReadCommitted}

// InTx runs fn in a transaction. If ctx already carries one (ContextWithTx), fn
// joins it and InTx neither commits nor rolls back: the owner does. Otherwise InTx
// begins a transaction with TxOptions, passes fn a context that carries it,
// commits if fn returns nil and rolls back if fn returns an error or panics.
// The error is fn's, or the begin/commit error.
func InTx(ctx context.Context, db *sql.DB, fn func(ctx context.Context, tx *sql.Tx) error) (err error) {
	if tx, ok := TxFromContext(ctx); ok {
		return fn(ctx, tx)
	}
	tx, err := db.BeginTx(ctx, TxOptions)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
				err = errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
			}
		}
	}()
	if err = fn(ContextWithTx(ctx, tx), tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
