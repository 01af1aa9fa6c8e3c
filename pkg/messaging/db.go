package messaging

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"
	"weak"

	"github.com/cenkalti/backoff/v5"
	"github.com/go-sql-driver/mysql"
)

// DBConfig says how to reach a service's database.
type DBConfig struct {
	// DSN is the go-sql-driver DSN, e.g. "user:pass@tcp(127.0.0.1:3307)/orders".
	// Required, and deliberately without a default: a production service must
	// never fall back to development credentials (ADR 0026). It holds a secret:
	// it is never logged or printed in full (RedactDSN).
	DSN string `env:"DSN"`
	// MigrateDSN is the DSN of the migration user (ADR 0049): OpenAndMigrate
	// opens it once at start-up, runs the migrations and closes it, so that
	// the service's own pool (DSN) needs no DDL privilege: SELECT, INSERT,
	// UPDATE and DELETE on its schema are enough. It must name the same
	// database as DSN. Empty: the migrations run as DSN's user, which then
	// needs DDL while migrations are pending (with none pending, goose only
	// reads its version tables). It holds a secret, like DSN.
	MigrateDSN string `env:"MIGRATE_DSN"`
	// MaxOpenConns bounds the connection pool. Default 32.
	MaxOpenConns int `env:"MAX_OPEN_CONNS"`
	// StartupTimeout bounds the wait for the database at start-up. Default 60 s.
	StartupTimeout time.Duration `env:"STARTUP_TIMEOUT"`
}

// Defaults returns c with zero fields set to their defaults.
func (c DBConfig) Defaults() DBConfig {
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = 32
	}
	if c.StartupTimeout == 0 {
		c.StartupTimeout = 60 * time.Second
	}
	return c
}

// ErrNoDSN is the error of a configuration without a database DSN.
var ErrNoDSN = errors.New("db: no DSN configured: set the service's *_DB_DSN variable (e.g. ORDER_DB_DSN=user:password@tcp(host:3306)/orders); there is no default")

// Validate reports the first invalid field. Its error never contains the DSN's
// password: an unparsable DSN is shown redacted (RedactDSN), without the
// driver's parse error (which may quote parts of it).
func (c DBConfig) Validate() error {
	if c.DSN == "" {
		return ErrNoDSN
	}
	if _, err := mysql.ParseDSN(c.DSN); err != nil {
		return fmt.Errorf("db: DSN %s is not a valid go-sql-driver DSN (expected user:password@tcp(host:port)/database[?params])", RedactDSN(c.DSN))
	}
	if c.MigrateDSN != "" {
		m, err := mysql.ParseDSN(c.MigrateDSN)
		if err != nil {
			return fmt.Errorf("db: migrate DSN %s is not a valid go-sql-driver DSN (expected user:password@tcp(host:port)/database[?params])", RedactDSN(c.MigrateDSN))
		}
		if d, _ := mysql.ParseDSN(c.DSN); m.DBName != d.DBName {
			return fmt.Errorf("db: migrate DSN names database %q, DSN %q: they must be the same", m.DBName, d.DBName)
		}
	}
	if c.MaxOpenConns < 1 || c.StartupTimeout <= 0 {
		return errors.New("db: max open conns must be >= 1 and startup timeout positive")
	}
	return nil
}

// RedactDSN returns dsn fit for logs and error messages: the password replaced
// by "***". A DSN that does not parse is cut at its last "@" (what comes before
// may hold the password), or hidden entirely if it has none.
func RedactDSN(dsn string) string {
	if c, err := mysql.ParseDSN(dsn); err == nil {
		if c.Passwd != "" {
			c.Passwd = "***"
		}
		return c.FormatDSN()
	}
	if i := strings.LastIndex(dsn, "@"); i >= 0 {
		return "***" + dsn[i:]
	}
	return fmt.Sprintf("(%d characters, not shown)", len(dsn))
}

// OpenDB opens a pool on the MariaDB database of dsn (go-sql-driver format, e.g.
// "user:pass@tcp(127.0.0.1:3307)/orders") and waits, retrying with backoff, until
// the server answers or ctx ends. It forces the settings the outbox and the
// repositories rely on: parseTime, UTC, client-side parameter interpolation (one
// round trip per statement) and short dial/read/write timeouts, so that a dead
// server surfaces as an error within seconds instead of a hang. Every session
// it opens is READ COMMITTED (ADR 0004), set once per connection, so that InTx
// and the forwarder begin their transactions without a `SET TRANSACTION
// ISOLATION LEVEL` round trip each (ADR 0043). The pool keeps up to maxOpen
// connections.
func OpenDB(ctx context.Context, dsn string, maxOpen int) (*sql.DB, error) {
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
	readCommittedPools.Store(weak.Make(db), struct{}{})
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
		readCommittedPools.Delete(weak.Make(db))
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
