package messaging

import (
	"context"
	"sync"
	"sync/atomic"
)

// gate is the per-consumer hold of FailureStop and FailurePause: every message
// of the consumer (on any of its partitions) waits at it before its handler
// runs, unacknowledged, while the gate is shut. Kafka's pause/resume is not
// exposed by watermill-kafka's subscriber; holding the one message in flight per
// partition has the same effect (nothing behind it is fetched into the handler),
// and sarama keeps heartbeating from its own goroutine meanwhile, so the
// consumer group session stays alive (ADR 35).
type gate struct {
	name string

	mu sync.Mutex
	// shut is non-nil while the gate is shut; closing it opens the gate.
	shut chan struct{}
	// stopped is why a FailureStop consumer gave up (the gate then never opens).
	stopped *ConsumerStoppedError
	// held counts the messages waiting at the gate.
	held atomic.Int64
}

// gates are a Consumers' gates, one per consumer name. The zero value is ready.
type gates struct {
	mu     sync.Mutex
	byName map[string]*gate
	// probe checks the dependency of paused consumers; nil: the database ping.
	probe func(ctx context.Context) error
}

// of returns the gate of consumer name, creating it.
func (gs *gates) of(name string) *gate {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.byName == nil {
		gs.byName = map[string]*gate{}
	}
	g, ok := gs.byName[name]
	if !ok {
		g = &gate{name: name}
		gs.byName[name] = g
	}
	return g
}

// all returns every gate.
func (gs *gates) all() []*gate {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	out := make([]*gate, 0, len(gs.byName))
	for _, g := range gs.byName {
		out = append(out, g)
	}
	return out
}

// close shuts the gate and reports whether this call shut it (false: it
// already was).
func (g *gate) close() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut != nil {
		return false
	}
	g.shut = make(chan struct{})
	return true
}

// open opens the gate (releasing every message held at it), unless the
// consumer stopped.
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut != nil && g.stopped == nil {
		close(g.shut)
		g.shut = nil
	}
}

// wait returns nil once the gate is open, or ErrStopping as soon as the stop
// begins (stopping is closed: Consumers.Drain), or an interrupted error when
// ctx ends. A message for which wait fails is handed back unacknowledged and
// never poisoned (IsInterrupted is true).
func (g *gate) wait(ctx context.Context, stopping <-chan struct{}) error {
	for {
		g.mu.Lock()
		shut := g.shut
		g.mu.Unlock()
		if shut == nil {
			return nil
		}
		g.held.Add(1)
		select {
		case <-shut:
			g.held.Add(-1)
		case <-stopping:
			g.held.Add(-1)
			return ErrStopping
		case <-ctx.Done():
			g.held.Add(-1)
			return interruptedError{context.Cause(ctx)}
		}
	}
}
