package messaging

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/pkg/failure"

	"github.com/ThreeDotsLabs/watermill/message"
)

// PauseConfig configures FailurePause's prober (env prefix PAUSE_, e.g.
// PAYMENT_PAUSE_PROBE_MIN).
type PauseConfig struct {
	// ProbeMin is the wait before the first probe of a paused consumer's
	// dependency (its database ping); each failed probe doubles it. Default 200 ms.
	ProbeMin time.Duration `env:"PROBE_MIN"`
	// ProbeMax caps the wait between probes; it also bounds each probe. Default 1 s: a
	// ping is cheap, and every second the consumer stays paused after its
	// dependency is back adds to the delay of every held message.
	ProbeMax time.Duration `env:"PROBE_MAX"`
}

// Defaults returns c with zero fields set to their defaults.
func (c PauseConfig) Defaults() PauseConfig {
	if c.ProbeMin == 0 {
		c.ProbeMin = 200 * time.Millisecond
	}
	if c.ProbeMax == 0 {
		c.ProbeMax = time.Second
	}
	return c
}

// Validate reports the first invalid field.
func (c PauseConfig) Validate() error {
	if c.ProbeMin <= 0 || c.ProbeMax < c.ProbeMin {
		return fmt.Errorf("pause: probe interval min %s must be positive and at most max %s", c.ProbeMin, c.ProbeMax)
	}
	return nil
}

// pauseStep is FailurePause's step (inside the poison step): every message
// waits at the consumer's gate; a handler that fails with an outage
// (IsUnavailable, not retried in place under this strategy) shuts the gate, so
// that every partition of the consumer holds its message unacknowledged, and
// the first to shut it starts the one prober; the failed message waits at the
// gate too and is handled again when it opens. Any other error goes on to the
// poison step.
func (cs *Consumers) pauseStep(name string) message.HandlerMiddleware {
	g := cs.gates.of(name)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			for {
				if err := g.wait(msg.Context(), cs.drain.stopped); err != nil {
					return nil, err
				}
				out, err := h(msg)
				if err == nil || !failure.IsUnavailable(err) || IsInterrupted(err) || msg.Context().Err() != nil {
					return out, err
				}
				if g.close() {
					go cs.probeUntilOpen(g, err)
				}
			}
		}
	}
}

// probeUntilOpen probes the paused consumer's dependency with exponential
// backoff (PauseConfig) until it answers, then opens g; it gives up when the
// consumers stop. It logs the pause and the resume with the outage's duration.
func (cs *Consumers) probeUntilOpen(g *gate, cause error) {
	c := cs.config.Pause
	since := time.Now()
	cs.logger.Warn("consumer paused: its dependency is unavailable; holding every partition and probing",
		"consumer", g.name, "err", cause)
	probe := cs.gates.probe
	if probe == nil {
		probe = cs.inbox.DB.PingContext
	}
	wait := c.ProbeMin
	for probes := 1; ; probes++ {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-cs.drain.stopped:
			t.Stop()
			return
		case <-cs.closing:
			t.Stop()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.ProbeMax)
		err := probe(ctx)
		cancel()
		if err == nil {
			g.open()
			cs.logger.Info("consumer resumed: its dependency answers again", "consumer", g.name,
				"outage", time.Since(since).Round(time.Millisecond).String(), "probes", probes)
			return
		}
		if !errors.Is(err, context.Canceled) {
			cs.logger.Debug("consumer still paused", "consumer", g.name, "probe", probes, "err", err)
		}
		wait = min(2*wait, c.ProbeMax)
	}
}
