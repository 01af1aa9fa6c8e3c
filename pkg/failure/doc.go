// Package failure classifies the errors of message handlers, so that a
// consumer stack can decide what to do with a message whose handler failed,
// and names those errors in public, stable words.
//
// Guarantees:
//   - Permanent and PermanentCode mark an error that retrying cannot fix;
//     IsPermanent recognises any error in a chain with a `Permanent() bool`
//     method that returns true (events.DecodeError uses that convention).
//   - IsUnavailable recognises an outage (a server that could not be reached,
//     a lost connection, a timeout) and any error with an `Unavailable() bool`
//     method that returns true (an open circuit breaker). An outage is never
//     the message's fault. A Galera node outside the primary component (1047)
//     counts as an outage.
//   - IsAborted recognises a transaction the database rolled back because of
//     a concurrent one (a deadlock, a commit that lost Galera's certification:
//     1213; a lock wait timeout: 1205): nothing of it was stored, and running
//     it again may succeed.
//   - ReasonCode always returns a valid reason code (apperr.ValidReason), never
//     error text: the code an error names (a `ReasonCode() string` method), or
//     ReasonHandlerFailed.
//
// Needs: the standard library, pkg/apperr (the shape of a reason code) and the
// MariaDB driver's error types (IsUnavailable knows its connection errors).
//
// Fails: never; a classification is a pure function of the error.
package failure
