//go:build faults

package service

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/services/payment/internal/app"
	"github.com/onceflow/onceflow/services/payment/internal/domain"
)

// ReasonInjectedFault is the reason code of the permanent error that
// CustomerFaults injects, so that a poisoned or parked message says it was put
// there on purpose.
const ReasonInjectedFault = "injected_fault"

// ErrInjectedTransient is the ordinary (retryable, not unavailable) error that
// CustomerFaults injects for a flaky customer.
var ErrInjectedTransient = errors.New("injected transient fault (PAYMENT_FAULT_TRANSIENT_CUSTOMER_PREFIX)")

// CustomerFaults makes the placement of some customers' orders fail, for the
// strategy comparison (e2e TestStrategies): bad data and a transient bug
// that depend on the message, not on an outage. Zero values are off. Only the
// OrderPlaced of such a customer fails (PlacePayment); later events of the same
// order (OrderCancelled) are handled normally.
type CustomerFaults struct {
	// PermanentPrefix: the OrderPlaced of a customer whose id starts with it
	// fails, every time, with a permanent error (reason code injected_fault):
	// a message no retry can fix.
	PermanentPrefix string `env:"PAYMENT_FAULT_PERMANENT_CUSTOMER_PREFIX"`
	// TransientPrefix: the OrderPlaced of a customer whose id starts with it
	// fails with ErrInjectedTransient until TransientFor after the first such
	// failure in the process, then succeeds: a bug that heals (a restart of the
	// process starts the clock again).
	TransientPrefix string        `env:"PAYMENT_FAULT_TRANSIENT_CUSTOMER_PREFIX"`
	TransientFor    time.Duration `env:"PAYMENT_FAULT_TRANSIENT_FOR" envDefault:"30s"`
	// UnavailablePrefix: the OrderPlaced of a customer whose id starts with it
	// fails as if the database were down (driver.ErrBadConn, an outage), on
	// the same clock as TransientPrefix: an outage the pause strategy pauses
	// for.
	UnavailablePrefix string `env:"PAYMENT_FAULT_UNAVAILABLE_CUSTOMER_PREFIX"`
}

// on reports whether any of the faults is switched on.
func (f CustomerFaults) on() bool {
	return f.PermanentPrefix != "" || f.TransientPrefix != "" || f.UnavailablePrefix != ""
}

// wrap returns p with the faults applied; now is the clock of the transient one.
func (f CustomerFaults) wrap(p app.Payments, now func() time.Time) app.Payments {
	return &faultyCustomers{Payments: p, faults: f, now: now}
}

// faultyCustomers fails Update for the customers CustomerFaults names, before
// anything is read or written, so that the failure has no effect.
type faultyCustomers struct {
	app.Payments
	faults CustomerFaults
	now    func() time.Time

	mu    sync.Mutex
	first time.Time // the first transient failure in this process
}

// Update implements app.Payments. customerID is set only for a new payment
// (PlacePayment); a cancellation passes "" and is never failed.
func (r *faultyCustomers) Update(ctx context.Context, orderID, customerID string,
	fn func(p *domain.Payment, f domain.Funds) ([]events.Event, error)) error {
	if customerID != "" {
		if err := r.fault(orderID, customerID); err != nil {
			return err
		}
	}
	return r.Payments.Update(ctx, orderID, customerID, fn)
}

// fault returns the error to inject for the placement of orderID, or nil.
func (r *faultyCustomers) fault(orderID, customerID string) error {
	f := r.faults
	if f.PermanentPrefix != "" && strings.HasPrefix(customerID, f.PermanentPrefix) {
		return failure.PermanentCode(ReasonInjectedFault,
			fmt.Errorf("order %s: customer %s is cursed (PAYMENT_FAULT_PERMANENT_CUSTOMER_PREFIX)", orderID, customerID))
	}
	transient := f.TransientPrefix != "" && strings.HasPrefix(customerID, f.TransientPrefix)
	unavailable := f.UnavailablePrefix != "" && strings.HasPrefix(customerID, f.UnavailablePrefix)
	if !transient && !unavailable {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.first.IsZero() {
		r.first = now
	}
	if now.Sub(r.first) >= f.TransientFor {
		return nil
	}
	if unavailable {
		return fmt.Errorf("order %s, customer %s: injected outage (PAYMENT_FAULT_UNAVAILABLE_CUSTOMER_PREFIX): %w", orderID, customerID, driver.ErrBadConn)
	}
	return fmt.Errorf("order %s, customer %s: %w", orderID, customerID, ErrInjectedTransient)
}
