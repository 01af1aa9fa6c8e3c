package strategies

import (
	"fmt"
	"slices"

	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/parkkey"
	"github.com/onceflow/onceflow/pkg/consumer/pause"
	"github.com/onceflow/onceflow/pkg/consumer/requeue"
	"github.com/onceflow/onceflow/pkg/consumer/skip"
	"github.com/onceflow/onceflow/pkg/consumer/stop"
)

// Mode is the name of a failure strategy (docs/strategies.md compares them).
type Mode string

// The failure strategies.
const (
	// Poison (the default): consumer.Poison.
	Poison Mode = "poison"
	// Block: consumer.Block.
	Block Mode = "block"
	// ParkKey: package parkkey.
	ParkKey Mode = "park-key"
	// Skip: package skip.
	Skip Mode = "skip"
	// Stop: package stop.
	Stop Mode = "stop"
	// Pause: package pause.
	Pause Mode = "pause"
	// Requeue: package requeue.
	Requeue Mode = "requeue"
)

// Modes lists every failure strategy a consumer can be given.
var Modes = []Mode{Poison, Block, Skip, Stop, Requeue, ParkKey, Pause}

// Validate reports whether m is one of Modes.
func (m Mode) Validate() error {
	if !slices.Contains(Modes, m) {
		return fmt.Errorf("failure mode %q is not one of %v", m, Modes)
	}
	return nil
}

// Config configures the strategies that need settings.
type Config struct {
	Pause   pause.Config
	Requeue requeue.Config
	ParkKey parkkey.Config
	Skip    skip.Config
}

// Built are the strategies of one service: the default, and those of single
// consumers by name, one value per mode (a strategy that keeps state, such as
// stop's health or park-key's poller, serves all its consumers).
type Built struct {
	Default    consumer.Strategy
	ByConsumer map[string]consumer.Strategy
	// Skip is the skip strategy, if a consumer uses it (its count of skipped
	// messages); nil otherwise.
	Skip *skip.Skip
}

// Build builds the strategy of mode def for every consumer and of modes by
// consumer name for single consumers. It fails on an unknown mode or an
// invalid setting.
func Build(def Mode, byConsumer map[string]Mode, c Config) (Built, error) {
	made := map[Mode]consumer.Strategy{}
	var b Built
	get := func(m Mode) (consumer.Strategy, error) {
		if s, ok := made[m]; ok {
			return s, nil
		}
		s, err := c.build(m)
		if err != nil {
			return nil, err
		}
		made[m] = s
		if sk, ok := s.(*skip.Skip); ok {
			b.Skip = sk
		}
		return s, nil
	}
	var err error
	if b.Default, err = get(def); err != nil {
		return Built{}, err
	}
	b.ByConsumer = map[string]consumer.Strategy{}
	for name, m := range byConsumer {
		s, err := get(m)
		if err != nil {
			return Built{}, fmt.Errorf("consumer %s: %w", name, err)
		}
		b.ByConsumer[name] = s
	}
	return b, nil
}

func (c Config) build(m Mode) (consumer.Strategy, error) {
	switch m {
	case Poison:
		return consumer.Poison, nil
	case Block:
		return consumer.Block, nil
	case Skip:
		return skip.New(c.Skip), nil
	case Stop:
		return stop.New(), nil
	case Pause:
		return pause.New(c.Pause)
	case Requeue:
		return requeue.New(c.Requeue)
	case ParkKey:
		return parkkey.New(c.ParkKey)
	}
	return nil, m.Validate()
}
