//go:build faults

package main

import (
	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/services/order/internal/service"
)

// options reads this test build's fault-injection switches (ORDER_FAULT_*,
// see service.Faults and ADR 21).
func options() ([]service.Option, error) { return servicemain.ParseOptions(service.WithFaults) }
