package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/contract"
	"github.com/onceflow/onceflow/services/payment/internal/domain"
)

func TestPlaceChargesOrRefuses(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		acct        *domain.Account
		amount      int64
		wantCharged bool
		wantReason  string
		wantBalance int64
	}{
		{"enough money", &domain.Account{CustomerID: "c", BalanceCents: 1000, Currency: "EUR"}, 400, true, "", 600},
		{"exactly enough", &domain.Account{CustomerID: "c", BalanceCents: 400, Currency: "EUR"}, 400, true, "", 0},
		{"one cent short", &domain.Account{CustomerID: "c", BalanceCents: 399, Currency: "EUR"}, 400, false, contract.ReasonInsufficientFunds, 399},
		{"other currency", &domain.Account{CustomerID: "c", BalanceCents: 1000, Currency: "USD"}, 400, false, contract.ReasonCurrencyMismatch, 1000},
		{"no account", nil, 400, false, contract.ReasonUnknownCustomer, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := domain.NewPayment("o-1")
			if !p.IsNewer(1) {
				t.Fatal("an empty payment must accept version 1")
			}
			charged, err := p.Place(1, "c", tt.amount, "EUR", tt.acct, now)
			if err != nil || charged != tt.wantCharged || p.Reason != tt.wantReason {
				t.Fatalf("Place = %v, %v (reason %q), want %v (%q)", charged, err, p.Reason, tt.wantCharged, tt.wantReason)
			}
			if tt.acct != nil && tt.acct.BalanceCents != tt.wantBalance {
				t.Fatalf("balance = %d, want %d", tt.acct.BalanceCents, tt.wantBalance)
			}
			wantMoves := 0
			if charged {
				wantMoves = 1
			}
			if len(p.Movements()) != wantMoves {
				t.Fatalf("movements = %v, want %d", p.Movements(), wantMoves)
			}
			if p.IsNewer(1) || !p.IsNewer(2) {
				t.Fatal("after acting on version 1, version 1 must be stale and version 2 newer")
			}
		})
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	charged := func(p *domain.Payment, a *domain.Account) { _, _ = p.Place(1, "c", 300, "EUR", a, now) }
	refused := func(p *domain.Payment, a *domain.Account) { _, _ = p.Place(1, "c", 5000, "EUR", a, now) }
	tests := []struct {
		name         string
		before       func(*domain.Payment, *domain.Account)
		wantRefund   int64
		wantStatus   domain.PaymentStatus
		wantBalance  int64
		wantMoves    int
		placeAfter   bool // a late OrderPlaced (v1) must be stale
		cancelTwice  bool
		wantRefunded int64
	}{
		{"before anything happened", nil, 0, domain.StatusCancelled, 1000, 0, true, false, 0},
		{"after a charge", charged, 300, domain.StatusRefunded, 1000, 2, true, false, 300},
		{"after a refusal", refused, 0, domain.StatusRefused, 1000, 0, true, false, 0},
		{"twice after a charge", charged, 300, domain.StatusRefunded, 1000, 2, false, true, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &domain.Account{CustomerID: "c", BalanceCents: 1000, Currency: "EUR"}
			p := domain.NewPayment("o-1")
			if tt.before != nil {
				tt.before(p, a)
			}
			if got := p.Cancel(2, a, now); got.RefundedCents != tt.wantRefund || got.UnrefundedCents != 0 {
				t.Fatalf("cancel = %+v, want %d refunded", got, tt.wantRefund)
			}
			if tt.cancelTwice {
				if got := p.Cancel(3, a, now); got != (domain.CancelOutcome{}) {
					t.Fatalf("second cancellation did %+v, want nothing", got)
				}
			}
			if p.Status != tt.wantStatus || a.BalanceCents != tt.wantBalance || len(p.Movements()) != tt.wantMoves ||
				p.RefundedCents != tt.wantRefunded || p.RefundedCents > p.ChargedCents {
				t.Fatalf("after cancel: status %s, balance %d, movements %v, refunded %d/%d", p.Status, a.BalanceCents,
					p.Movements(), p.RefundedCents, p.ChargedCents)
			}
			if tt.placeAfter && p.IsNewer(1) {
				t.Fatal("a placement older than the cancellation must be stale")
			}
		})
	}
}

// TestCancelWithoutAccount: a charged order whose account no longer exists is
// not marked refunded: REFUND_FAILED, nothing moves, and the outcome says how
// much stays charged and why.
func TestCancelWithoutAccount(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	p := domain.NewPayment("o-1")
	if _, err := p.Place(1, "c", 300, "EUR", &domain.Account{CustomerID: "c", BalanceCents: 1000, Currency: "EUR"}, now); err != nil {
		t.Fatal(err)
	}
	moves := len(p.Movements())
	got := p.Cancel(2, nil, now)
	want := domain.CancelOutcome{UnrefundedCents: 300, FailReason: contract.ReasonAccountNotFound}
	if got != want || p.Status != domain.StatusRefundFailed || p.Reason != contract.ReasonAccountNotFound ||
		p.RefundedCents != 0 || len(p.Movements()) != moves {
		t.Fatalf("cancel = %+v, payment %s (%s), refunded %d, movements %v; want %+v, REFUND_FAILED, nothing moved",
			got, p.Status, p.Reason, p.RefundedCents, p.Movements(), want)
	}
	if again := p.Cancel(3, nil, now); again != (domain.CancelOutcome{}) {
		t.Fatalf("a later cancellation did %+v, want nothing", again)
	}
}

// fakeFunds is domain.Funds on an account in memory, debiting by the rule the
// repository's conditional UPDATE states; refuseDebit makes DebitIfEnough
// refuse regardless (money arrived after the refused debit).
type fakeFunds struct {
	acct        *domain.Account
	refuseDebit bool
	reads       int
}

func (f *fakeFunds) DebitIfEnough(amount int64, currency string) (bool, error) {
	if f.refuseDebit || f.acct == nil || f.acct.Currency != currency || f.acct.BalanceCents < amount {
		return false, nil
	}
	f.acct.BalanceCents -= amount
	return true, nil
}

func (f *fakeFunds) Account() (*domain.Account, error) { f.reads++; return f.acct, nil }

// TestChargeMatchesPlace: Charge through funds decides like Place on the same
// account; the account is read only when the debit is refused.
func TestChargeMatchesPlace(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name        string
		acct        *domain.Account
		refuseDebit bool
		wantCharged bool
		wantReason  string
		wantBalance int64
		wantReads   int
	}{
		{"enough", &domain.Account{CustomerID: "c", BalanceCents: 1000, Currency: "EUR"}, false, true, "", 600, 0},
		{"one cent short", &domain.Account{CustomerID: "c", BalanceCents: 399, Currency: "EUR"}, false, false, contract.ReasonInsufficientFunds, 399, 1},
		{"other currency", &domain.Account{CustomerID: "c", BalanceCents: 1000, Currency: "USD"}, false, false, contract.ReasonCurrencyMismatch, 1000, 1},
		{"no account", nil, false, false, contract.ReasonUnknownCustomer, 0, 1},
		{"money arrived after the refused debit", &domain.Account{CustomerID: "c", BalanceCents: 1000, Currency: "EUR"}, true, true, "", 600, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := domain.NewPayment("o")
			f := &fakeFunds{acct: tt.acct, refuseDebit: tt.refuseDebit}
			charged, err := p.Charge(1, "c", 400, "EUR", f, now)
			if err != nil || charged != tt.wantCharged || p.Reason != tt.wantReason || f.reads != tt.wantReads {
				t.Fatalf("Charge = %v, %v, reason %q, %d reads; want %v, reason %q, %d reads", charged, err, p.Reason, f.reads, tt.wantCharged, tt.wantReason, tt.wantReads)
			}
			if tt.acct != nil && tt.acct.BalanceCents != tt.wantBalance {
				t.Fatalf("balance %d, want %d", tt.acct.BalanceCents, tt.wantBalance)
			}
			if tt.wantCharged && (p.Status != domain.StatusCharged || p.ChargedCents != 400 || len(p.Movements()) != 1) {
				t.Fatalf("charged payment %+v, want CHARGED 400 with one movement", p)
			}
		})
	}
}

// TestPlacementOnlyFromNoPayment: a placement charges or refuses only a payment
// nothing has happened to. On any other payment it moves nothing and changes
// nothing: it is stale when it agrees with the payment and is not newer (a
// duplicate; the late placement of an order cancelled first), inconsistent
// when it names another customer, amount or currency, or a newer version (a
// refunded order placed "again" must never be charged again).
func TestPlacementOnlyFromNoPayment(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	place := func(customer string, amount int64) func(*domain.Payment, *domain.Account) {
		return func(p *domain.Payment, a *domain.Account) {
			if _, err := p.Place(1, customer, amount, "EUR", a, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	cancel := func(v int) func(*domain.Payment, *domain.Account) {
		return func(p *domain.Payment, a *domain.Account) { p.Cancel(v, a, now) }
	}
	tests := []struct {
		name     string
		before   []func(*domain.Payment, *domain.Account)
		version  int
		customer string
		amount   int64
		currency string
		want     error // nil: charged
	}{
		{"no payment yet", nil, 1, "c", 300, "EUR", nil},
		{"duplicate of the charged placement", []func(*domain.Payment, *domain.Account){place("c", 300)}, 1, "c", 300, "EUR", domain.ErrStale},
		{"duplicate of a refused placement", []func(*domain.Payment, *domain.Account){place("c", 5000)}, 1, "c", 5000, "EUR", domain.ErrStale},
		{"placement after the order was cancelled first", []func(*domain.Payment, *domain.Account){cancel(2)}, 1, "c", 300, "EUR", domain.ErrStale},
		{"refunded order placed again at a newer version", []func(*domain.Payment, *domain.Account){place("c", 300), cancel(2)}, 3, "c", 300, "EUR", domain.ErrInconsistent},
		{"charged order placed again at a newer version", []func(*domain.Payment, *domain.Account){place("c", 300)}, 2, "c", 300, "EUR", domain.ErrInconsistent},
		{"cancelled-first order placed at a newer version", []func(*domain.Payment, *domain.Account){cancel(2)}, 3, "c", 300, "EUR", domain.ErrInconsistent},
		{"another amount", []func(*domain.Payment, *domain.Account){place("c", 300)}, 1, "c", 301, "EUR", domain.ErrInconsistent},
		{"another customer", []func(*domain.Payment, *domain.Account){place("c", 300)}, 1, "d", 300, "EUR", domain.ErrInconsistent},
		{"another currency", []func(*domain.Payment, *domain.Account){place("c", 300)}, 1, "c", 300, "USD", domain.ErrInconsistent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &domain.Account{CustomerID: "c", BalanceCents: 1000, Currency: "EUR"}
			p := domain.NewPayment("o-1")
			for _, do := range tt.before {
				do(p, a)
			}
			before, balance, moves := *p, a.BalanceCents, len(p.Movements())
			f := &fakeFunds{acct: a}
			charged, err := p.Charge(tt.version, tt.customer, tt.amount, tt.currency, f, now.Add(time.Hour))
			if !errors.Is(err, tt.want) || charged != (tt.want == nil) {
				t.Fatalf("Charge = %v, %v; want charged %v, error %v", charged, err, tt.want == nil, tt.want)
			}
			if tt.want == nil {
				return
			}
			if a.BalanceCents != balance || len(p.Movements()) != moves || p.Status != before.Status ||
				p.OrderVersion != before.OrderVersion || p.ChargedCents != before.ChargedCents || !p.UpdatedAt.Equal(before.UpdatedAt) {
				t.Fatalf("a refused placement changed the payment %+v to %+v, balance %d to %d, movements %d to %d",
					before, *p, balance, a.BalanceCents, moves, len(p.Movements()))
			}
		})
	}
}
