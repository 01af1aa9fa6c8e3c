package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

type txKey struct{}

// ContextWithTx returns a context that carries tx, so that code called with it
// (a repository) joins the transaction instead of opening its own. The inbox
// uses it to run a handler's writes in the transaction that records the
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
// for each other. InTx passes it only to a pool not opened by Open:
// Open's sessions are READ COMMITTED already, and asking for the level
// explicitly costs a `SET TRANSACTION ISOLATION LEVEL` round trip per
// transaction.
var TxOptions = &sql.TxOptions{Isolation: sql.LevelReadCommitted}

// sessionTxOptions begins a transaction at the session's level: READ COMMITTED
// on a pool of Open.
var sessionTxOptions = &sql.TxOptions{Isolation: sql.LevelDefault}

// txOptionsFor is the options InTx begins a transaction of db with: READ
// COMMITTED either way, without a SET round trip when the session has it.
func txOptionsFor(db *sql.DB) *sql.TxOptions {
	if SessionReadCommitted(db) {
		return sessionTxOptions
	}
	return TxOptions
}

type commitHooksKey struct{}

// commitHooks are what runs after InTx committed a transaction: one function per
// key (an outbox that the transaction wrote to wakes its forwarders once).
type commitHooks struct {
	mu    sync.Mutex
	keys  []any
	hooks []func()
}

// OnCommit registers fn, once per key, to run after the transaction ctx carries
// commits (InTx's transactions only; a rollback runs nothing). It reports false
// when ctx carries no transaction of InTx: nobody will run fn.
func OnCommit(ctx context.Context, key any, fn func()) bool {
	h, ok := ctx.Value(commitHooksKey{}).(*commitHooks)
	if !ok {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range h.keys {
		if k == key {
			return true
		}
	}
	h.keys, h.hooks = append(h.keys, key), append(h.hooks, fn)
	return true
}

func (h *commitHooks) run() {
	h.mu.Lock()
	hooks := h.hooks
	h.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
}

// InTx runs fn in a transaction. If ctx already carries one (ContextWithTx), fn
// joins it and InTx neither commits nor rolls back: the owner does. Otherwise InTx
// begins a READ COMMITTED transaction (TxOptions, or the session's level on a
// pool of Open), passes fn a context that carries it, commits if fn returns
// nil and rolls back if fn returns an error or panics. After a successful
// commit it runs what the transaction's writers registered with OnCommit (an
// outbox written to wakes its forwarders); a rollback runs nothing.
// The error is fn's, or the begin/commit error.
func InTx(ctx context.Context, db *sql.DB, fn func(ctx context.Context, tx *sql.Tx) error) (err error) {
	if tx, ok := TxFromContext(ctx); ok {
		return fn(ctx, tx)
	}
	tx, err := db.BeginTx(ctx, txOptionsFor(db))
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
	hooks := &commitHooks{}
	if err = fn(ContextWithTx(context.WithValue(ctx, commitHooksKey{}, hooks), tx), tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	hooks.run()
	return nil
}
