//go:build !faults

package service

import (
	"log/slog"

	"github.com/onceflow/onceflow/services/payment/internal/app"
)

// withFaults returns payments unchanged: a build without the faults tag has no
// fault switches (Config.Validate rejects them).
func withFaults(_ Config, payments app.Payments, _ *slog.Logger) app.Payments { return payments }
