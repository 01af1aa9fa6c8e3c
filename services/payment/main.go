// Command payment runs the payment service: the consumer of order events that
// charges customers, the outbox forwarder for payment events, and an HTTP
// endpoint for health, readiness and the poison admin endpoints. Configuration
// comes from environment variables only (see service.Config and docs/operating.md;
// the defaults fit `make run`); "payment poison ..." runs the poison queue
// tooling instead, "payment healthcheck" checks a running one, and "payment
// openapi" prints the OpenAPI document it serves (servicemain.Main).
package main

import (
	"context"
	"log/slog"

	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/services/payment/internal/service"
)

func main() {
	cfg := service.DefaultConfig()
	run := func(ctx context.Context, logger *slog.Logger, opts ...service.Option) error {
		return service.Run(ctx, cfg, logger, opts...)
	}
	servicemain.Main(servicemain.Service[service.Option]{Name: "payment", Config: &cfg, Common: &cfg.Common, Options: options, Run: run,
		OpenAPI: service.OpenAPI})
}
