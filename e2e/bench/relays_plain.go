//go:build !faults

package main

import (
	"context"
	"errors"
)

// relays needs the stock relay, which only the fault build has (ADR 21):
// `make bench` builds the bench with -tags faults.
func (b *bench) relays(context.Context, *Report) error {
	return errors.New("the relays phase needs the fault build: go run -tags faults ./e2e/bench")
}
