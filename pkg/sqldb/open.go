package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/go-sql-driver/mysql"
)

// Open opens a pool on the MariaDB database of dsn (go-sql-driver format, e.g.
// "user:pass@tcp(127.0.0.1:3307)/orders") and waits, retrying with backoff, until
// the server answers or ctx ends. It forces the settings the outbox and the
// repositories rely on: parseTime, UTC, client-side parameter interpolation (one
// round trip per statement) and short dial/read/write timeouts, so that a dead
// server surfaces as an error within seconds instead of a hang. Every session
// it opens is READ COMMITTED, set once per connection, so that InTx
// and the forwarder begin their transactions without a `SET TRANSACTION
// ISOLATION LEVEL` round trip each. The pool keeps up to maxOpen
// connections.
func Open(ctx context.Context, dsn string, maxOpen int) (*sql.DB, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("database DSN %s does not parse", RedactDSN(dsn))
	}
	c.ParseTime = true
	c.Loc = time.UTC
	c.InterpolateParams = true
	c.Timeout = 3 * time.Second
	c.ReadTimeout = 30 * time.Second
	c.WriteTimeout = 30 * time.Second
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	c.Params["time_zone"] = "'+00:00'"
	connector, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("database connector: %w", err)
	}
	db := sql.OpenDB(readCommittedConnector{connector})
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxOpen)
	db.SetConnMaxLifetime(30 * time.Minute)

	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 200*time.Millisecond, 3*time.Second
	_, err = backoff.Retry(ctx, func() (struct{}, error) {
		pingCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return struct{}{}, db.PingContext(pingCtx)
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s at %s does not answer: %w", c.DBName, c.Addr, err)
	}
	return db, nil
}

// sessionReadCommitted makes a session's default isolation READ COMMITTED. The
// statement (not a DSN system variable) is the same on every MariaDB and MySQL
// version: the variable is tx_isolation up to MariaDB 11.0 and
// transaction_isolation from 11.1 (and MySQL 8), where tx_isolation is
// deprecated or gone.
const sessionReadCommitted = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"

// readCommittedConnector opens connections whose session is READ COMMITTED: one
// statement per new connection instead of one per transaction.
type readCommittedConnector struct{ driver.Connector }

// readCommittedDriver is the driver a pool of Open reports (sql.DB.Driver):
// the pool itself carries the fact that its sessions are READ COMMITTED, and
// SessionReadCommitted reads it there. Its Open (the driver's, unused by the
// pool, which connects through the connector) is the plain driver's.
type readCommittedDriver struct{ driver.Driver }

// Driver implements driver.Connector.
func (c readCommittedConnector) Driver() driver.Driver {
	return readCommittedDriver{c.Connector.Driver()}
}

// SessionReadCommitted reports whether every session of db is READ COMMITTED by
// construction (db was opened by Open), so that a transaction begun at the
// default level is READ COMMITTED.
func SessionReadCommitted(db *sql.DB) bool {
	_, ok := db.Driver().(readCommittedDriver)
	return ok
}

// Connect implements driver.Connector. A connection whose session cannot be set
// is closed and the error returned (database/sql retries or reports it).
func (c readCommittedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		conn.Close()
		return nil, errors.New("database driver connection cannot execute statements")
	}
	if _, err := ex.ExecContext(ctx, sessionReadCommitted, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("setting the session READ COMMITTED: %w", err)
	}
	return conn, nil
}
