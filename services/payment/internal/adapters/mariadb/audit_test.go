package mariadb_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/audit"
)

// TestLedgerChecks: the auditor, as the service user, counts each order
// charged twice and each refund above its charge once, over passes that read
// the ledger in order, also when the second charge comes in a later pass;
// an order charged and refunded once is fine, and a row younger than the
// settle time waits for a later pass.
func TestLedgerChecks(t *testing.T) {
	db, dsn := paymentsDB(t)
	repo := paymentsRepo(t, dsn, "")
	reg := prometheus.NewRegistry()
	appDB, _ := testenv.RepoDeps(t, dsn) // the service user's pool
	a, err := audit.New(audit.Config{DB: appDB, Checks: repo.LedgerChecks(time.Second), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ledger := func(order, kind string, cents int, age time.Duration) {
		t.Helper()
		if _, err := db.Exec("INSERT INTO ledger (order_id, customer_id, kind, amount_cents, created_at) VALUES (?, 'alice', ?, ?, ?)",
			order, kind, cents, time.Now().UTC().Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	passes := []struct {
		name  string
		write func()
		want  string // the violations' counts after the pass
	}{
		{"charges, a refund, a double charge, an over-refund", func() {
			ledger("fine", "charge", 700, time.Minute)
			ledger("fine", "refund", 700, time.Minute)
			ledger("twice", "charge", 700, time.Minute)
			ledger("twice", "charge", 700, time.Minute)
			ledger("over", "charge", 700, time.Minute)
			ledger("over", "refund", 900, time.Minute)
			ledger("later", "charge", 500, time.Minute)
		}, "double_charge/ledger=1 over_refund/ledger=1"},
		{"the same orders again: counted once", func() {}, "double_charge/ledger=1 over_refund/ledger=1"},
		{"a second charge too young to read", func() { ledger("later", "charge", 500, 0) }, "double_charge/ledger=1 over_refund/ledger=1"},
		{"read once it settled", func() { time.Sleep(1500 * time.Millisecond) }, "double_charge/ledger=2 over_refund/ledger=1"},
	}
	for _, p := range passes {
		p.write()
		if err := a.Run(context.Background()); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		if got := violations(t, reg); got != p.want {
			t.Fatalf("%s: violations %q, want %q", p.name, got, p.want)
		}
	}
}

// violations reads onceflow_audit_violations_total from reg as
// "check/scope=n ...", sorted.
func violations(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range families {
		if f.GetName() != "onceflow_audit_violations_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out = append(out, fmt.Sprintf("%s/%s=%d", labels["check"], labels["scope"], int(m.GetCounter().GetValue())))
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}
