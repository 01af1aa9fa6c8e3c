package failure

import (
	"context"
	"database/sql/driver"
	"errors"
	"net"
	"syscall"

	"github.com/go-sql-driver/mysql"
)

// Permanent marks err as one that retrying cannot fix (a malformed message, an
// event for an order that does not exist, ...). A consumer stack gives up on
// a message whose handler returns a permanent error without retrying it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() error   { return e.err }
func (e permanentError) Permanent() bool { return true }

// IsPermanent reports whether the first error in err's chain that has a
// Permanent() bool method returns true (Permanent, PermanentCode and
// events.DecodeError use this convention).
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// IsUnavailable reports whether err says that a server could not be reached (the
// database or Kafka down, a connection reset, a timeout). Such an error is not the
// message's fault: a consumer stack retries it and, when the retries are spent,
// leaves the message in place to be delivered again rather than giving up on it.
// A cancelled context is not an outage: it is a shutdown interrupting the work.
// An error with an `Unavailable() bool` method that returns true (an open
// circuit breaker) counts as unavailable too.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	var myErr *mysql.MySQLError
	var marked interface{ Unavailable() bool }
	switch {
	case errors.As(err, &marked) && marked.Unavailable():
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &netErr):
		return true
	case errors.As(err, &myErr):
		// 1053 server shutdown in progress, 2006/2013 server gone away / lost
		// connection, 1047 a Galera node outside the primary component ("WSREP
		// has not yet prepared node for application use": it refuses every
		// query until it rejoins a majority), 1180 a COMMIT that failed (on
		// Galera: the node lost the primary component while replicating the
		// commit). At COMMIT the outcome of all of these is unknown, as after a
		// lost connection (ADR 0060). Deadlocks (1213) and lock wait timeouts
		// (1205) are ordinary transient errors (IsAborted): retried, then given
		// up on if they persist.
		switch myErr.Number {
		case 1047, 1053, 1180, 2006, 2013:
			return true
		}
	}
	return false
}

// IsAborted reports whether err says that the database rolled the
// transaction back because of a concurrent one, so that nothing of it was
// stored and running it again may succeed: a deadlock or, on a Galera
// cluster, a commit that lost certification against another node's or a
// brute-force abort by a replicated change (all error 1213, also at COMMIT);
// or a lock wait timeout (1205, after which InTx rolls back).
func IsAborted(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && (myErr.Number == 1213 || myErr.Number == 1205)
}
