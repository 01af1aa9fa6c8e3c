package consumer

import (
	"context"
	"sync"
	"sync/atomic"
)

// Gate holds the messages of one consumer (on any of its partitions) before
// its handler runs, unacknowledged, while it is shut: the stop and pause
// strategies use it. Kafka's pause/resume is not exposed by watermill-kafka's
// subscriber; holding the one message in flight per partition has the same
// effect (nothing behind it is fetched into the handler), and sarama keeps
// heartbeating from its own goroutine meanwhile, so the consumer group session
// stays alive. The zero value is an open gate.
type Gate struct {
	mu sync.Mutex
	// shut is non-nil while the gate is shut; closing it opens the gate.
	shut chan struct{}
	// forGood: the gate never opens again.
	forGood bool
	// held counts the messages waiting at the gate.
	held atomic.Int64
}

// Shut shuts the gate and reports whether this call shut it (false: it
// already was).
func (g *Gate) Shut() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut != nil {
		return false
	}
	g.shut = make(chan struct{})
	return true
}

// ShutForGood shuts the gate so that Open never opens it again, and reports
// whether this call did (false: it already was shut for good).
func (g *Gate) ShutForGood() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.forGood {
		return false
	}
	g.forGood = true
	if g.shut == nil {
		g.shut = make(chan struct{})
	}
	return true
}

// Open opens the gate (releasing every message held at it), unless it was
// shut for good.
func (g *Gate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shut != nil && !g.forGood {
		close(g.shut)
		g.shut = nil
	}
}

// Held is how many messages wait at the gate.
func (g *Gate) Held() int { return int(g.held.Load()) }

// Wait returns nil once the gate is open, or ErrShuttingDown as soon as the
// shutdown begins (shuttingDown is closed: Consumers.Drain), or an
// interrupted error when ctx ends. A message for which Wait fails is handed
// back unacknowledged and never given up on (IsInterrupted is true).
func (g *Gate) Wait(ctx context.Context, shuttingDown <-chan struct{}) error {
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
		case <-shuttingDown:
			g.held.Add(-1)
			return ErrShuttingDown
		case <-ctx.Done():
			g.held.Add(-1)
			return interruptedError{context.Cause(ctx)}
		}
	}
}
