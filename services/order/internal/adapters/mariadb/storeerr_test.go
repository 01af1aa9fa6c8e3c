package mariadb

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/pkg/apperr"
	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// TestStoreErr: what each driver error becomes at the edge of the order
// store. A transaction the database aborted for a concurrent one (1213: a
// deadlock, or on Galera a commit that lost certification; 1205: a lock wait
// timeout) stored nothing and may succeed when sent again: unavailable (503
// with Retry-After), like a database that does not answer; never internal (500).
func TestStoreErr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want apperr.Code // "" for an error that passes unchanged
	}{
		{"deadlock or lost certification at COMMIT", fmt.Errorf("commit: %w", &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock; try restarting transaction"}), apperr.CodeUnavailable},
		{"lock wait timeout", &mysql.MySQLError{Number: 1205}, apperr.CodeUnavailable},
		{"a Galera node outside the primary component", &mysql.MySQLError{Number: 1047, Message: "WSREP has not yet prepared node for application use"}, apperr.CodeUnavailable},
		{"a commit on a Galera node that lost the primary component", fmt.Errorf("commit: %w", &mysql.MySQLError{Number: 1180, Message: "Error while appending streaming replication fragment(provider status: Not connected to Primary Component)"}), apperr.CodeUnavailable},
		{"server gone away", &mysql.MySQLError{Number: 2006}, apperr.CodeUnavailable},
		{"duplicate key", &mysql.MySQLError{Number: 1062}, apperr.CodeInternal},
		{"unknown order", domain.ErrNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := storeErr(tt.err)
			if tt.want == "" {
				if !errors.Is(got, tt.err) || apperr.As(got) != nil {
					t.Fatalf("storeErr(%v) = %v, want it unchanged", tt.err, got)
				}
				return
			}
			if e := apperr.As(got); e == nil || e.Code != tt.want || !errors.Is(got, tt.err) {
				t.Fatalf("storeErr(%v) = %#v, want code %s wrapping it", tt.err, got, tt.want)
			}
		})
	}
}
