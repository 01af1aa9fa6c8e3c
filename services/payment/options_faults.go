//go:build faults

package main

import (
	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/services/payment/internal/service"
)

// options reads this test build's fault-injection switches (PAYMENT_FAULT_*,
// see service.Faults and ADR 21).
func options() ([]service.Option, error) { return servicemain.ParseOptions(service.WithFaults) }
