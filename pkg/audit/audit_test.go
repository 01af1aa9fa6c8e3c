package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/audit"
)

func noop(context.Context, int64) ([]audit.Violation, int64, error) { return nil, 0, nil }

// TestConfigValidate: the wiring is required and check names are unique
// metric label values.
func TestConfigValidate(t *testing.T) {
	db, err := sql.Open("mysql", "nobody@tcp(127.0.0.1:1)/none") // never used
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		config audit.Config
		ok     bool
	}{
		{"valid", audit.Config{DB: db, Registry: prometheus.NewRegistry(), Checks: []audit.Check{{Name: "double_charge", Run: noop}}}, true},
		{"no database", audit.Config{Registry: prometheus.NewRegistry(), Checks: []audit.Check{{Name: "a", Run: noop}}}, false},
		{"no check", audit.Config{DB: db, Registry: prometheus.NewRegistry()}, false},
		{"a name that is no label value", audit.Config{DB: db, Registry: prometheus.NewRegistry(), Checks: []audit.Check{{Name: "Double Charge", Run: noop}}}, false},
		{"twice the same name", audit.Config{DB: db, Registry: prometheus.NewRegistry(),
			Checks: []audit.Check{{Name: "a", Run: noop}, {Name: "a", Run: noop}}}, false},
		{"no run", audit.Config{DB: db, Registry: prometheus.NewRegistry(), Checks: []audit.Check{{Name: "a"}}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := audit.New(c.config); (err == nil) != c.ok {
				t.Fatalf("New: %v, want ok %v", err, c.ok)
			}
		})
	}
}

// TestRun: a check reads on from its cursor, batch after batch, until it has
// judged what it can; what it finds is counted once per subject; a failing
// check keeps its cursor (the next pass reads the same rows) without stopping
// the others; a cursor never moves back; a check's checked time moves only
// when a pass judged all it could (not after a failure, nor while it waits
// to judge); nothing is exported before the first pass, and a check's scopes
// are exported at zero before anything is found.
func TestRun(t *testing.T) {
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	var afters []int64 // the cursor of each pass's first batch
	fail, pending := false, false
	found := []audit.Violation{{Scope: "ledger", Subject: "o-1"}, {Scope: "ledger", Subject: "o-1"}, {Scope: "ledger", Subject: "o-2"}}
	steps := []struct {
		fail, pending bool
		// next is where the check's batches end in this pass.
		next        int64
		wantAfter   int64
		wantCount   float64
		wantChecked bool
	}{
		{next: 10, wantAfter: 0, wantCount: 0, wantChecked: true},  // nothing found yet: exported at zero
		{next: 20, wantAfter: 10, wantCount: 2, wantChecked: true}, // found: o-1 (twice) and o-2
		{fail: true, wantAfter: 20, wantCount: 2},
		{pending: true, wantAfter: 20, wantCount: 2},
		{next: 5, wantAfter: 20, wantCount: 2, wantChecked: true}, // a replica behind: the cursor stays at 20
		{next: 30, wantAfter: 20, wantCount: 2, wantChecked: true},
	}
	i := 0
	reg := prometheus.NewRegistry()
	a, err := audit.New(audit.Config{DB: d.Open(t, 2), Registry: reg, Checks: []audit.Check{
		{Name: "double_charge", Scopes: []string{"ledger"}, Run: func(_ context.Context, after int64) ([]audit.Violation, int64, error) {
			if len(afters) == i {
				afters = append(afters, after)
			}
			switch {
			case fail:
				return nil, 0, errors.New("database down")
			case pending:
				return nil, after, audit.ErrPending
			case after > steps[i].next:
				return nil, steps[i].next, nil // a replica behind
			case after == steps[i].next:
				return nil, after, nil // judged all it can
			case i == 1 && after < 15:
				return found, 15, nil // the first of two batches
			}
			return nil, steps[i].next, nil
		}},
		{Name: "other", Run: noop},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n := metric(t, reg, "onceflow_audit_violations_total", "double_charge"); n != -1 {
		t.Fatalf("before the first pass: %v violations exported, want none (a restart is no reset)", n)
	}
	checked := 0.0
	for i = range steps {
		fail, pending = steps[i].fail, steps[i].pending
		time.Sleep(time.Millisecond)
		err := a.Run(context.Background())
		if (err != nil) != steps[i].fail {
			t.Fatalf("pass %d: %v, want failure %v", i, err, steps[i].fail)
		}
		if afters[i] != steps[i].wantAfter {
			t.Fatalf("pass %d read after %d, want %d", i, afters[i], steps[i].wantAfter)
		}
		if n := metric(t, reg, "onceflow_audit_violations_total", "double_charge"); n != steps[i].wantCount {
			t.Fatalf("pass %d: %v violations, want %v", i, n, steps[i].wantCount)
		}
		at := metric(t, reg, "onceflow_audit_checked_timestamp_seconds", "double_charge")
		if moved := at > checked; moved != steps[i].wantChecked {
			t.Fatalf("pass %d: checked time moved %v, want %v", i, moved, steps[i].wantChecked)
		}
		checked = at
	}
}

// metric is the value of name{check=check} in reg (for the violations, the
// scope "ledger"); -1: not exported.
func metric(t *testing.T, reg *prometheus.Registry, name, check string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if f.GetName() != name || labels["check"] != check || (labels["scope"] != "" && labels["scope"] != "ledger") {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}
