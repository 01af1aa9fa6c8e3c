//go:build faults

package servicemain

import "github.com/caarlos0/env/v11"

// ParseOptions reads a struct F from the environment (its env tags) and
// returns the one option wrap makes of it. The fault build's mains use it to
// read their fault switches (service.Faults, service.WithFaults); it is
// not compiled into a production binary.
func ParseOptions[F, O any](wrap func(F) O) ([]O, error) {
	var f F
	if err := env.Parse(&f); err != nil {
		return nil, err
	}
	return []O{wrap(f)}, nil
}
