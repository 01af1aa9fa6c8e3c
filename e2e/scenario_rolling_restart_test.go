package e2e

import (
	"fmt"
	"strings"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
)

// rollingRestartDrain is the drain bound (STOP_DRAIN_TIMEOUT) the
// rolling-restart scenario gives every replica; each stop must end within it.
const rollingRestartDrain = 10 * time.Second

// rollingRestartScenario deploys again and again under load: two replicas of
// each service, and one replica after the other gets SIGTERM and, once it has
// exited, is started again (what a rolling deploy does). Graceful stops must
// lose nothing, do nothing twice, poison nothing (the checker's I6 fails on any
// poison entry, since the scenario injects none) and end within the drain
// bound. The fault list records how long each stop took. Around each stop both
// databases answer 20±10 ms late (Toxiproxy), so that handlers take long enough
// for the stop to find messages in flight: the old behaviour, which cancelled
// them, poisoned some in every run.
func rollingRestartScenario() scenario {
	drain := "STOP_DRAIN_TIMEOUT=" + rollingRestartDrain.String()
	return scenario{name: "rolling-restart", rate: 40, duration: 50 * time.Second, proxied: true,
		stack: harness.StackConfig{OrderReplicas: 2, PaymentReplicas: 2,
			OrderEnv: []string{"ORDER_" + drain}, PaymentEnv: []string{"PAYMENT_" + drain}},
		faults: rollingRestartTimeline}
}

func rollingRestartTimeline(f *faultRun) error {
	order := []*harness.Service{f.s.Orders[0], f.s.Payments[0], f.s.Orders[1], f.s.Payments[1]}
	var slow []string
	dbs := []string{harness.OrderDB, harness.PaymentDB}
	slowDBs := func(on bool) error {
		for _, db := range dbs {
			var err error
			if on {
				err = f.proxies.AddLatency(db, 20, 10)
			} else {
				err = f.proxies.RemoveLatency(db)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	f.sleepUntil(4 * time.Second)
	for i := 0; time.Since(f.start) < 42*time.Second; i++ {
		svc := order[i%len(order)]
		from := time.Now()
		if err := slowDBs(true); err != nil {
			return err
		}
		time.Sleep(time.Second) // handlers now take long enough to be caught in flight
		f.hold(svc, true)
		took, err := svc.Stop()
		if err != nil {
			return fmt.Errorf("graceful stop of %s: %w", svc.Name, err)
		}
		if err := slowDBs(false); err != nil {
			return err
		}
		if err := svc.Start(); err != nil {
			return fmt.Errorf("restart of %s: %w", svc.Name, err)
		}
		f.hold(svc, false)
		f.record(fmt.Sprintf("databases 20±10 ms slow, SIGTERM %s: stopped in %.2f s (bound %s), restarted", svc.Name, took.Seconds(), rollingRestartDrain), from, time.Since(from))
		if took > rollingRestartDrain {
			slow = append(slow, fmt.Sprintf("%s took %s", svc.Name, took.Round(time.Millisecond)))
		}
		time.Sleep(time.Duration(1+f.rng.IntN(2)) * time.Second)
	}
	if len(slow) > 0 {
		return fmt.Errorf("stops longer than the drain bound %s: %s", rollingRestartDrain, strings.Join(slow, "; "))
	}
	return nil
}
