//go:build !faults

package main

import "github.com/onceflow/onceflow/services/order/internal/service"

// options returns how to adjust the service's wiring: nothing, in a production
// build.
func options() ([]service.Option, error) { return nil, nil }
