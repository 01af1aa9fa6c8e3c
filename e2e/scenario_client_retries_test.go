package e2e

import (
	"fmt"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
)

// keylessControls names the negative controls whose load sends no
// Idempotency-Key (TestFaultsNegativeControl).
var keylessControls = map[string]bool{"client-retries": true}

// clientRetriesScenario: the load reaches the order API through a ClientProxy
// that cuts connections by a rule drawn from the seed: every Nth request (5 ≤ N
// ≤ 8) is forwarded, answered by the service, and then its connection is closed
// before the client sees a byte; every Mth (9 ≤ M ≤ 12) is dropped before it
// reaches the service. The client cannot tell the two apart and retries both
// with the same Idempotency-Key: no order may exist twice (I8, 0
// extra orders), nothing is charged twice, every accepted order ends terminal.
// Its negative control sends no key: each answer cut after the commit then
// becomes a second order, every run.
func clientRetriesScenario() scenario {
	return scenario{name: "client-retries", rate: 40, duration: 35 * time.Second,
		client: func(f *faultRun) (string, func(), error) {
			policy := harness.CutPolicyFromSeed(f.rng.Uint64())
			p, err := harness.StartClientProxy(f.s.Orders[0].HTTPAddr, policy)
			if err != nil {
				return "", nil, err
			}
			return p.Addr, func() {
				seen, before, after := p.Stats()
				f.record(fmt.Sprintf("client proxy: %d requests, %d cut before the service saw them (every %dth), %d cut after it answered (every %dth)",
					seen, before, policy.BeforeEvery, after, policy.AfterEvery), f.start, time.Since(f.start))
				_ = p.Close()
			}, nil
		}}
}
