package failure

import (
	"errors"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// TestMariaDBErrors: which of the database's errors are an outage (retried,
// never the message's fault), which a transaction aborted for a concurrent one
// (nothing stored, run it again), and which neither. A Galera node outside the
// primary component refuses every query with 1047 until it rejoins a majority,
// and a commit it was replicating when it lost the majority fails with 1180; a
// commit that lost Galera's certification fails with 1213 like a deadlock.
func TestMariaDBErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		number               uint16
		unavailable, aborted bool
	}{
		{"server shutdown in progress", 1053, true, false},
		{"server gone away", 2006, true, false},
		{"lost connection", 2013, true, false},
		{"Galera node outside the primary component", 1047, true, false},
		{"COMMIT failed: the Galera node lost the primary component", 1180, true, false},
		{"deadlock or lost certification at COMMIT", 1213, false, true},
		{"lock wait timeout", 1205, false, true},
		{"duplicate key", 1062, false, false},
		{"command denied", 1142, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fmt.Errorf("commit: %w", &mysql.MySQLError{Number: tt.number})
			if got := IsUnavailable(err); got != tt.unavailable {
				t.Errorf("IsUnavailable(%d) = %v, want %v", tt.number, got, tt.unavailable)
			}
			if got := IsAborted(err); got != tt.aborted {
				t.Errorf("IsAborted(%d) = %v, want %v", tt.number, got, tt.aborted)
			}
		})
	}
	if IsAborted(errors.New("1213")) || IsAborted(nil) {
		t.Error("IsAborted is true for an error that is not the driver's")
	}
}
