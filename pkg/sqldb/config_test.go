package sqldb_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/pkg/sqldb"
)

// TestDBConfigNeverPrintsThePassword: whatever is wrong with the database
// configuration, the error text never contains the DSN's password, and there is
// no default DSN to fall back to.
func TestDBConfigNeverPrintsThePassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-Pa55"
	const valid = "app:" + secret + "@tcp(db:3306)/orders"
	tests := []struct {
		name, dsn, migrateDSN string
		maxOpen               int
	}{
		{"unparsable DSN", "app:" + secret + "@tcp(db:3306/orders", "", 32},
		{"bad parameter", "app:" + secret + "@tcp(db:3306)/orders?parseTime=maybe", "", 32},
		{"password without user@host", "app:" + secret, "", 32},
		{"valid DSN, other field invalid", valid, "", -1},
		{"unparsable migrate DSN", valid, "migrate:" + secret + "@tcp(db:3306/orders", 32},
		{"migrate DSN on another database", valid, "migrate:" + secret + "@tcp(db:3306)/payments", 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := sqldb.Config{DSN: tt.dsn, MigrateDSN: tt.migrateDSN}.Defaults()
			c.MaxOpenConns = tt.maxOpen
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
	if err := (sqldb.Config{DSN: valid, MigrateDSN: "migrate:" + secret + "@tcp(db:3306)/orders"}).Defaults().Validate(); err != nil {
		t.Fatalf("Validate() with both DSNs on one database = %v, want nil", err)
	}
	if err := (sqldb.Config{}).Defaults().Validate(); !errors.Is(err, sqldb.ErrNoDSN) {
		t.Fatalf("Validate() without a DSN = %v, want ErrNoDSN (no default DSN)", err)
	}
}

func TestRedactDSN(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"app:pw@tcp(db:3306)/orders", "app:***@tcp(db:3306)/orders"},
		{"app@tcp(db:3306)/orders", "app@tcp(db:3306)/orders"},
		{"app:pw@tcp(db:3306/orders", "***@tcp(db:3306/orders"},
		{"app:pw", "(6 characters, not shown)"},
	}
	for _, tt := range tests {
		if got := sqldb.RedactDSN(tt.in); got != tt.want {
			t.Errorf("RedactDSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
