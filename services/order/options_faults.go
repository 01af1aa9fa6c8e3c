//go:build faults

package main

import (
	"github.com/caarlos0/env/v11"

	"github.com/onceflow/onceflow/services/order/internal/service"
)

// options reads this test build's fault-injection switches (ORDER_FAULT_*,
// see service.Faults and ADR 21).
func options() ([]service.Option, error) {
	var f service.Faults
	if err := env.Parse(&f); err != nil {
		return nil, err
	}
	return []service.Option{service.WithFaults(f)}, nil
}
