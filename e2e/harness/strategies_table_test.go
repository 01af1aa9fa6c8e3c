package harness

import (
	"strings"
	"testing"
)

// TestStrategiesTable: one line per strategy, null figures as "never", a
// failed promise and an expected cost in the verdict, and only the part
// between the markers replaced.
func TestStrategiesTable(t *testing.T) {
	t.Parallel()
	p99, rec := int64(1234), 6.5
	table := StrategiesTable([]StrategyRow{
		{Strategy: "poison", HealthyP99Ms: &p99, RecoveryS: &rec, Poisoned: 50, PoisonedEvents: 30, Pass: true},
		{Strategy: "skip", Lost: 30, Pass: true, Expected: []string{"30 event(s) lost"}},
		{Strategy: "block", Pending: 700, Violations: []string{"a | b"}},
	})
	for _, want := range []string{
		"| `poison` | 0 | 0 | 0 | 50 (30) | 0 | 0 | 0 | 1.2 s | 0 | 6.5 s | 0 | pass |",
		"| `skip` | 30 | 0 | 0 | 0 (0) | 0 | 0 | 0 | never | 0 | never | 0 | pass (expected: 30 event(s) lost) |",
		"| `block` | 0 | 0 | 0 | 0 (0) | 0 | 0 | 700 | never | 0 | never | 0 | FAIL: a / b |",
	} {
		if !strings.Contains(table, want+"\n") {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	doc := "# Title\nhand-written\n" + TableBegin + "\nold table\n" + TableEnd + "\nrecommendations\n"
	got, err := ReplaceTable(doc, table)
	if err != nil {
		t.Fatal(err)
	}
	if want := "# Title\nhand-written\n" + TableBegin + "\n" + table + TableEnd + "\nrecommendations\n"; got != want {
		t.Errorf("ReplaceTable:\n%s\nwant\n%s", got, want)
	}
	if _, err := ReplaceTable("no markers", table); err == nil {
		t.Error("ReplaceTable accepted a document without markers")
	}
}
