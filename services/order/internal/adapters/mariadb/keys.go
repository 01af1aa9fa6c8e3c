package mariadb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/pkg/sqldb"
	"github.com/onceflow/onceflow/services/order/internal/app"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// MariaDB error numbers the key claim tells apart.
const (
	errDuplicateKey    = 1062 // ER_DUP_ENTRY: the key is committed
	errLockWaitTimeout = 1205 // ER_LOCK_WAIT_TIMEOUT: with a 0 s wait, another transaction holds the key
)

// claimKey claims key inside tx. It inserts the key's row without
// waiting for any lock (innodb_lock_wait_timeout=0 for that one statement):
//   - the insert succeeds: the key is new; tx now holds the row's lock, so a
//     second request with the key sees it in flight until tx ends, and the row
//     disappears with tx if tx rolls back. Returns (nil, nil).
//   - duplicate key: a committed row exists. If it has not expired it is
//     returned with its answer; an expired one (not cleaned up yet) is deleted and the insert is
//     tried once more.
//   - lock wait timeout: another transaction inserted (or is deleting) the row
//     and has not ended: app.ErrKeyInFlight, at once.
func claimKey(ctx context.Context, tx *sql.Tx, key app.KeyClaim) (*app.StoredKey, error) {
	for range 2 {
		_, err := tx.ExecContext(ctx, `SET STATEMENT innodb_lock_wait_timeout=0 FOR
			INSERT INTO idempotency_keys (scope, idem_key, fingerprint, created_at, expires_at) VALUES (?,?,?,?,?)`,
			key.Scope, key.Key, key.Fingerprint, key.CreatedAt, key.ExpiresAt)
		switch mysqlErrNo(err) {
		case 0:
			if err != nil {
				return nil, fmt.Errorf("claim idempotency key: %w", err)
			}
			return nil, nil
		case errLockWaitTimeout:
			return nil, app.ErrKeyInFlight
		case errDuplicateKey:
		default:
			return nil, fmt.Errorf("claim idempotency key: %w", err)
		}
		var fingerprint string
		var stored storedAnswer
		var expires time.Time
		err = tx.QueryRowContext(ctx, `SELECT fingerprint, expires_at, answer_status, answer_header, answer_body, result
			FROM idempotency_keys WHERE scope = ? AND idem_key = ?`, key.Scope, key.Key).
			Scan(&fingerprint, &expires, &stored.status, &stored.header, &stored.body, &stored.legacyResult)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue // expired and deleted since the insert failed: claim it anew
		case err != nil:
			return nil, fmt.Errorf("read idempotency key: %w", err)
		case expires.After(key.CreatedAt):
			a, err := stored.answer(key.Render)
			if err != nil {
				return nil, err
			}
			return &app.StoredKey{Fingerprint: fingerprint, Answer: a}, nil
		}
		_, err = tx.ExecContext(ctx, `SET STATEMENT innodb_lock_wait_timeout=0 FOR
			DELETE FROM idempotency_keys WHERE scope = ? AND idem_key = ? AND expires_at <= ?`,
			key.Scope, key.Key, key.CreatedAt)
		if mysqlErrNo(err) == errLockWaitTimeout {
			return nil, app.ErrKeyInFlight
		}
		if err != nil {
			return nil, fmt.Errorf("delete expired idempotency key: %w", err)
		}
	}
	return nil, app.ErrKeyInFlight // taken and released twice meanwhile: busy, let the client retry
}

// recordKey stores the answer key.Render gives for o with the key claimKey
// inserted in tx.
func recordKey(ctx context.Context, tx *sql.Tx, key app.KeyClaim, o *domain.Order) error {
	a, err := key.Render(o)
	if err != nil {
		return fmt.Errorf("render idempotency answer: %w", err)
	}
	header, err := json.Marshal(a.Header)
	if err != nil {
		return fmt.Errorf("encode idempotency answer: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET answer_status = ?, answer_header = ?, answer_body = ?
		WHERE scope = ? AND idem_key = ?`, a.Status, string(header), a.Body, key.Scope, key.Key); err != nil {
		return fmt.Errorf("record idempotency answer: %w", err)
	}
	return nil
}

// storedAnswer is a committed key's answer as stored: status, headers (a JSON
// object) and body; or, for a key stored before migration 00005, only
// legacyResult, the order as its request left it (legacyOrder).
type storedAnswer struct {
	status       sql.NullInt16
	header       sql.NullString
	body         []byte
	legacyResult sql.NullString
}

// answer returns the stored answer. A key from before migration 00005 has none:
// its answer is rendered now from the order it stored, which is the original
// unless that order had a refund failure (those rows lack it). Such keys are
// gone one key TTL after the upgrade.
func (s storedAnswer) answer(render func(*domain.Order) (app.Answer, error)) (app.Answer, error) {
	if !s.status.Valid {
		o, err := decodeLegacyResult(s.legacyResult)
		if err != nil {
			return app.Answer{}, err
		}
		return render(o)
	}
	a := app.Answer{Status: int(s.status.Int16), Body: s.body}
	if err := json.Unmarshal([]byte(s.header.String), &a.Header); err != nil {
		return app.Answer{}, fmt.Errorf("decode idempotency answer: %w", err)
	}
	return a, nil
}

// legacyOrder is the JSON of a key's result before migration 00005: the order
// as the request left it.
type legacyOrder struct {
	ID           string    `json:"id"`
	CustomerID   string    `json:"customer_id"`
	AmountCents  int64     `json:"amount_cents"`
	Currency     string    `json:"currency"`
	Status       string    `json:"status"`
	CancelReason string    `json:"cancel_reason"`
	Paid         bool      `json:"paid"`
	Refunded     bool      `json:"refunded"`
	Version      int       `json:"version"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

func decodeLegacyResult(result sql.NullString) (*domain.Order, error) {
	if !result.Valid {
		return nil, errors.New("idempotency key committed without an answer")
	}
	var s legacyOrder
	dec := json.NewDecoder(strings.NewReader(result.String))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode idempotency result: %w", err)
	}
	return &domain.Order{
		ID: s.ID, CustomerID: s.CustomerID, AmountCents: s.AmountCents, Currency: s.Currency,
		Status: domain.Status(s.Status), CancelReason: s.CancelReason, Paid: s.Paid, Refunded: s.Refunded,
		Version: s.Version, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
	}, nil
}

// DeleteExpiredKeys implements app.Orders: one short transaction that locks up
// to limit expired rows, skipping rows another transaction holds (a request
// re-claiming an expired key), and deletes them by primary key. It never waits
// for a lock and holds its own only for these two statements.
func (r *Orders) DeleteExpiredKeys(ctx context.Context, t time.Time, limit int) (int, error) {
	deleted := 0
	err := sqldb.InTx(ctx, r.db, func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT scope, idem_key FROM idempotency_keys WHERE expires_at <= ?
			ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED`, t, limit)
		if err != nil {
			return fmt.Errorf("select expired idempotency keys: %w", err)
		}
		var conds []string
		var args []any
		for rows.Next() {
			var scope, key string
			if err := rows.Scan(&scope, &key); err != nil {
				rows.Close()
				return err
			}
			conds = append(conds, "(scope = ? AND idem_key = ?)")
			args = append(args, scope, key)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(conds) == 0 {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM idempotency_keys WHERE "+strings.Join(conds, " OR "), args...) //nolint:gosec // G202: conds are constant "(scope = ? AND idem_key = ?)" terms; the keys go in args
		if err != nil {
			return fmt.Errorf("delete expired idempotency keys: %w", err)
		}
		n, _ := res.RowsAffected()
		deleted = int(n)
		return nil
	})
	if err != nil {
		return 0, storeErr(err)
	}
	return deleted, nil
}

// mysqlErrNo returns the MariaDB error number of err, 0 if it has none.
func mysqlErrNo(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}
