// Command order runs the order service: the HTTP order API, the outbox forwarder
// for order events, the consumer of payment events and the order timeline.
// Configuration comes from environment variables only (see service.Config and
// the README; the defaults fit `make run`); "order poison ..." runs the poison
// queue tooling instead, "order healthcheck" checks a running one, "order
// diagnose <id>" asks a running one why an order is where it is
// (service.Diagnose), "order stuck" which orders are stuck (service.Stuck),
// and "order openapi" prints the OpenAPI document it serves
// (servicemain.Main).
package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/services/order/internal/service"
)

func main() {
	cfg := service.DefaultConfig()
	servicemain.Main(servicemain.Service[service.Option]{Name: "order", Config: &cfg, Common: &cfg.Common,
		Options: options, Run: func(ctx context.Context, logger *slog.Logger, opts ...service.Option) error {
			return service.Run(ctx, cfg, logger, opts...)
		}, OpenAPI: service.OpenAPI,
		Commands: map[string]func(context.Context, []string, io.Writer) error{
			"diagnose": func(ctx context.Context, args []string, out io.Writer) error {
				return service.Diagnose(ctx, cfg, args, out)
			},
			"stuck": func(ctx context.Context, args []string, out io.Writer) error {
				return service.Stuck(ctx, cfg, args, out)
			},
		}})
}
