//go:build faults

package service

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/services/payment/internal/domain"
)

// countingPayments is an app.Payments that counts the calls that reach it.
type countingPayments struct{ calls int }

func (c *countingPayments) Update(context.Context, string, string, func(*domain.Payment, domain.Funds) ([]events.Event, error)) error {
	c.calls++
	return nil
}

// TestCustomerFaults: a cursed customer's placement fails permanently with the
// injected_fault reason and never reaches the repository, its cancellation does;
// a flaky customer's placement fails with an ordinary (retryable, not
// unavailable) error until TransientFor after the first failure, then passes;
// a down customer's fails as an outage on the same clock; other customers are
// untouched.
func TestCustomerFaults(t *testing.T) {
	t.Parallel()
	f := CustomerFaults{PermanentPrefix: "cursed-", TransientPrefix: "flaky-", UnavailablePrefix: "down-", TransientFor: 30 * time.Second}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := start
	inner := &countingPayments{}
	p := f.wrap(inner, func() time.Time { return clock })
	noop := func(*domain.Payment, domain.Funds) ([]events.Event, error) { return nil, nil }
	tests := []struct {
		name          string
		at            time.Duration // since start
		customer      string        // "" is a cancellation
		wantErr       bool
		wantPermanent bool
		wantOutage    bool
	}{
		{"cursed placement", 0, "cursed-1", true, true, false},
		{"cursed cancellation", 0, "", false, false, false},
		{"healthy placement", 0, "rich-1", false, false, false},
		{"flaky placement, first failure starts the clock", time.Second, "flaky-1", true, false, false},
		{"placement during an outage", 2 * time.Second, "down-1", true, false, true},
		{"flaky placement just before healing", 30*time.Second + time.Second - time.Nanosecond, "flaky-2", true, false, false},
		{"flaky placement once healed", 31 * time.Second, "flaky-1", false, false, false},
		{"placement once the outage is over", 31 * time.Second, "down-1", false, false, false},
		{"cursed placement much later", time.Hour, "cursed-2", true, true, false},
	}
	for _, tt := range tests { // in order: the transient fault has a clock
		clock = start.Add(tt.at)
		before := inner.calls
		err := p.Update(context.Background(), "o-1", tt.customer, noop)
		if (err != nil) != tt.wantErr {
			t.Fatalf("%s: err = %v, want error %v", tt.name, err, tt.wantErr)
		}
		if reached := inner.calls > before; reached == tt.wantErr {
			t.Fatalf("%s: reached the repository = %v with err = %v", tt.name, reached, err)
		}
		if err == nil {
			continue
		}
		if failure.IsPermanent(err) != tt.wantPermanent || failure.IsUnavailable(err) != tt.wantOutage {
			t.Fatalf("%s: permanent = %v, unavailable = %v, want permanent %v, unavailable %v",
				tt.name, failure.IsPermanent(err), failure.IsUnavailable(err), tt.wantPermanent, tt.wantOutage)
		}
		if tt.wantPermanent && failure.ReasonCode(err) != ReasonInjectedFault {
			t.Fatalf("%s: reason code %q, want %q", tt.name, failure.ReasonCode(err), ReasonInjectedFault)
		}
		if !tt.wantPermanent && !tt.wantOutage && !errors.Is(err, ErrInjectedTransient) {
			t.Fatalf("%s: %v is not ErrInjectedTransient", tt.name, err)
		}
	}
}

// TestCustomerFaultsFromEnvironment: the switches are read from the
// PAYMENT_FAULT_* variables the comparison sets.
func TestCustomerFaultsFromEnvironment(t *testing.T) {
	t.Setenv("PAYMENT_FAULT_PERMANENT_CUSTOMER_PREFIX", "cursed-")
	t.Setenv("PAYMENT_FAULT_TRANSIENT_CUSTOMER_PREFIX", "flaky-")
	t.Setenv("PAYMENT_FAULT_TRANSIENT_FOR", "12s")
	var f Faults
	if err := env.Parse(&f); err != nil {
		t.Fatal(err)
	}
	want := CustomerFaults{PermanentPrefix: "cursed-", TransientPrefix: "flaky-", TransientFor: 12 * time.Second}
	if f.Customers != want || !f.Customers.on() {
		t.Fatalf("parsed %+v, want %+v", f.Customers, want)
	}
}

// TestFaultsFromEnvironment: every part's switches are read from the
// PAYMENT_FAULT_* variables the fault suite sets, the forwarder's and the
// consumers' alike.
func TestFaultsFromEnvironment(t *testing.T) {
	t.Setenv("PAYMENT_FAULT_CRASH_AFTER_PUBLISH", "7")
	t.Setenv("PAYMENT_FAULT_STOCK_ACK", "true")
	t.Setenv("PAYMENT_FAULT_CRASH_AFTER_COMMIT", "5")
	t.Setenv("PAYMENT_FAULT_DISABLE_INBOX", "true")
	t.Setenv("PAYMENT_FAULT_DISABLE_VERSION_CHECK", "true")
	var f Faults
	if err := env.Parse(&f); err != nil {
		t.Fatal(err)
	}
	if f.Outbox.CrashAfterPublish != 7 || !f.Outbox.StockAck || f.Consumers.CrashAfterCommit != 5 || !f.Consumers.DisableInbox || !f.DisableVersionCheck {
		t.Fatalf("parsed %+v", f)
	}
}
