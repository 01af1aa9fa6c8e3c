// Command order runs the order service: the HTTP order API, the outbox forwarder
// for order events, the consumer of payment events and the order timeline.
// Configuration comes from environment variables only (see service.Config and
// docs/operating.md; the defaults fit `make run`); "order poison ..." runs the poison
// queue tooling instead, "order healthcheck" checks a running one, and "order
// openapi" prints the OpenAPI document it serves (servicemain.Main).
package main

import (
	"context"
	"log/slog"

	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/services/order/internal/service"
)

func main() {
	cfg := service.DefaultConfig()
	servicemain.Main(servicemain.Service[service.Option]{Name: "order", Config: &cfg, Common: &cfg.Common,
		Options: options, Run: func(ctx context.Context, logger *slog.Logger, opts ...service.Option) error {
			return service.Run(ctx, cfg, logger, opts...)
		}, OpenAPI: service.OpenAPI})
}
