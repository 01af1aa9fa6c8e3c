package e2e

import (
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
)

// lateCommitsScenario is the fault scenario late-commits (ADR 3, ADR 62):
// commits that become visible in an order other than their outbox offsets.
// Under real concurrency a transaction that took offset 10 commits after one
// that took 11 only by chance; here the order service's outbox writes every
// 25th OrderPlaced with an offset below every offset the table hands out
// (ORDER_FAULT_LATE_OFFSET_EVERY), which is what a relay sees when such a
// transaction commits after the relay went past it, in every run.
//
// Expected with onceflow's relay: every order completes (it selects the rows
// not yet relayed, whatever their offset). With the stock Watermill relay
// (ORDER_FAULT_STOCK_RELAY, TestFaultsNegativeControl) those OrderPlaced
// events stay below its watermark for good: lost orders, every run.
func lateCommitsScenario() scenario {
	return scenario{name: "late-commits", rate: 50, duration: 24 * time.Second,
		stack: harness.StackConfig{OrderEnv: []string{"ORDER_FAULT_LATE_OFFSET_EVERY=25", "ORDER_FAULT_LATE_OFFSET_EVENT_TYPE=order.placed"}}}
}
