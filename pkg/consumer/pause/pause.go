package pause

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/failure"
)

// Config configures the pause strategy's prober (env prefix PAUSE_, e.g.
// PAYMENT_PAUSE_PROBE_MIN).
type Config struct {
	// ProbeMin is the wait before the first probe of a paused consumer's
	// dependency (its database ping); each failed probe doubles it. Default 200 ms.
	ProbeMin time.Duration `env:"PROBE_MIN"`
	// ProbeMax caps the wait between probes; it also bounds each probe. Default 1 s: a
	// ping is cheap, and every second the consumer stays paused after its
	// dependency is back adds to the delay of every held message.
	ProbeMax time.Duration `env:"PROBE_MAX"`
	// Probe checks the dependency of a paused consumer. Default: a ping of
	// the consumer's database.
	Probe func(ctx context.Context) error `env:"-"`
}

// Defaults returns c with zero fields set to their defaults.
func (c Config) Defaults() Config {
	if c.ProbeMin == 0 {
		c.ProbeMin = 200 * time.Millisecond
	}
	if c.ProbeMax == 0 {
		c.ProbeMax = time.Second
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.ProbeMin <= 0 || c.ProbeMax < c.ProbeMin {
		return fmt.Errorf("pause: probe interval min %s must be positive and at most max %s", c.ProbeMin, c.ProbeMax)
	}
	return nil
}

// Pause is the pause strategy (a consumer.Strategy and consumer.Runner). Make
// it with New; one value serves every consumer given it.
type Pause struct {
	config Config

	mu    sync.Mutex
	gates map[string]*consumer.Gate
	// since is when each paused consumer paused.
	since map[string]time.Time
	// probers counts the probers running; ended is closed when Run's context
	// ends, after which no prober starts.
	probers sync.WaitGroup
	ended   chan struct{}
	over    bool
}

// New returns the pause strategy of c (zero fields take their defaults); it
// fails on an invalid c.
func New(c Config) (*Pause, error) {
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Pause{config: c, gates: map[string]*consumer.Gate{}, since: map[string]time.Time{}, ended: make(chan struct{})}, nil
}

func (p *Pause) gate(name string) *consumer.Gate {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.gates[name]
	if !ok {
		g = &consumer.Gate{}
		p.gates[name] = g
	}
	return g
}

// Held is how many messages of consumer name wait at its gate.
func (p *Pause) Held(name string) int { return p.gate(name).Held() }

// Paused implements consumer.PauseReporter: the consumers paused now, by
// name.
func (p *Pause) Paused() []consumer.Paused {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]consumer.Paused, 0, len(p.since))
	for name, since := range p.since {
		out = append(out, consumer.Paused{Consumer: name, Since: since, Held: p.gates[name].Held()})
	}
	slices.SortFunc(out, func(a, b consumer.Paused) int { return strings.Compare(a.Consumer, b.Consumer) })
	return out
}

// Retryable implements consumer.Strategy: as consumer.RetryableInPlace, but an
// outage is not retried in place either (the consumer pauses instead).
func (p *Pause) Retryable(err error) bool {
	return consumer.RetryableInPlace(err) && !failure.IsUnavailable(err)
}

// Steps implements consumer.Strategy: the poison queue, then the pause step.
// Every message waits at the consumer's gate; a handler that fails with an
// outage shuts the gate, so that every partition of the consumer holds its
// message unacknowledged, and the first to shut it starts the one prober; the
// failed message waits at the gate too and is handled again when it opens.
// Any other error goes on to the poison queue.
func (p *Pause) Steps(c consumer.Consumer) ([]message.HandlerMiddleware, error) {
	g := p.gate(c.Name)
	probe := p.config.Probe
	if probe == nil {
		probe = c.DB.PingContext
	}
	step := func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			for {
				if err := g.Wait(msg.Context(), c.ShuttingDown); err != nil {
					return nil, err
				}
				out, err := h(msg)
				if err == nil || !failure.IsUnavailable(err) || consumer.IsInterrupted(err) || msg.Context().Err() != nil {
					return out, err
				}
				if g.Shut() {
					p.startProber(c, g, probe, err)
				}
			}
		}
	}
	return append(append([]message.HandlerMiddleware{}, c.PoisonSteps...), step), nil
}

// Run implements consumer.Runner: it returns once ctx ended and every prober
// ended.
func (p *Pause) Run(ctx context.Context) {
	<-ctx.Done()
	p.mu.Lock()
	if !p.over {
		p.over = true
		close(p.ended)
	}
	p.mu.Unlock()
	p.probers.Wait()
}

// startProber starts the prober of c's gate g, unless Run ended.
func (p *Pause) startProber(c consumer.Consumer, g *consumer.Gate, probe func(context.Context) error, cause error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.over {
		return
	}
	p.since[c.Name] = time.Now()
	p.probers.Go(func() { p.probeUntilOpen(c, g, probe, cause) })
}

// probeUntilOpen probes c's dependency with exponential backoff (Config) until
// it answers, then opens g; it gives up when the shutdown begins or Run ends.
// It logs the pause and the resume with the outage's duration.
func (p *Pause) probeUntilOpen(c consumer.Consumer, g *consumer.Gate, probe func(context.Context) error, cause error) {
	since := time.Now()
	c.Logger.Warn("consumer paused: its dependency is unavailable; holding every partition and probing",
		"consumer", c.Name, "err", cause)
	wait := p.config.ProbeMin
	for probes := 1; ; probes++ {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.ShuttingDown:
			t.Stop()
			return
		case <-p.ended:
			t.Stop()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.config.ProbeMax)
		err := probe(ctx)
		cancel()
		if err == nil {
			p.mu.Lock()
			delete(p.since, c.Name)
			p.mu.Unlock()
			g.Open()
			c.Logger.Info("consumer resumed: its dependency answers again", "consumer", c.Name,
				"outage", time.Since(since).Round(time.Millisecond).String(), "probes", probes)
			return
		}
		if !errors.Is(err, context.Canceled) {
			c.Logger.Debug("consumer still paused", "consumer", c.Name, "probe", probes, "err", err)
		}
		wait = min(2*wait, p.config.ProbeMax)
	}
}
