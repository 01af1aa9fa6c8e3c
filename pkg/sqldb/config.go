package sqldb

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Config says how to reach a service's database.
type Config struct {
	// DSN is the go-sql-driver DSN, e.g. "user:pass@tcp(127.0.0.1:3307)/orders".
	// Required, and deliberately without a default: a production service must
	// never fall back to development credentials. It holds a secret:
	// it is never logged or printed in full (RedactDSN).
	DSN string `env:"DSN"`
	// MigrateDSN is the DSN of the migration user: OpenAndMigrate
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
func (c Config) Defaults() Config {
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
func (c Config) Validate() error {
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
