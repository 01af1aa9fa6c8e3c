package e2e

import (
	"testing"

	"github.com/onceflow/onceflow/e2e/harness"
)

// TestJudgeStrategy: what every strategy must keep (the production
// auditor silent included) fails any of them; an
// unfinished order fails only a strategy that cannot stall; a strategy's own
// promise fails it, its known cost does not.
func TestJudgeStrategy(t *testing.T) {
	t.Parallel()
	byName := map[string]strategy{}
	for _, st := range comparedStrategies() {
		byName[st.name] = st
	}
	tests := []struct {
		strategy     string
		row          harness.StrategyRow
		wantPass     bool
		wantExpected int
	}{
		{"poison", harness.StrategyRow{OutOfOrderKeys: 18}, true, 0},
		{"poison", harness.StrategyRow{Lost: 1}, false, 0},
		{"poison", harness.StrategyRow{NotTerminal: 1}, false, 0},
		{"skip", harness.StrategyRow{Lost: 30}, true, 1},
		{"skip", harness.StrategyRow{Lost: 30, Double: 1}, false, 1},
		{"block", harness.StrategyRow{NotTerminal: 1, Disagreements: 1, Pending: 2000}, true, 2},
		{"block", harness.StrategyRow{OutOfOrderKeys: 1}, false, 0},
		{"block", harness.StrategyRow{MoneyDelta: -5}, false, 0},
		{"park-key", harness.StrategyRow{OutOfOrderKeys: 1}, false, 0},
		{"requeue", harness.StrategyRow{OverRefunded: 1}, false, 0},
		{"skip", harness.StrategyRow{Lost: 30, Audit: map[string]int{"double_charge/ledger": 1}}, false, 1},
	}
	for _, tt := range tests {
		row := tt.row
		judge(&row, byName[tt.strategy])
		if row.Pass != tt.wantPass || len(row.Expected) != tt.wantExpected {
			t.Errorf("%s %+v: pass %v (violations %q), expected %q; want pass %v and %d expected",
				tt.strategy, tt.row, row.Pass, row.Violations, row.Expected, tt.wantPass, tt.wantExpected)
		}
	}
}
