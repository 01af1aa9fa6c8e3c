// Command order runs the order service: the HTTP order API, the outbox forwarder
// for order events and the consumer of payment events. Configuration comes from
// environment variables only; "order poison ..." runs the poison queue tooling instead
// (list, show, replay, purge) (see service.Config and the README); the defaults
// fit `make run`.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/caarlos0/env/v11"

	"github.com/onceflow/onceflow/pkg/messaging/poison"
	"github.com/onceflow/onceflow/services/order/internal/service"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()})).With("service", "order")
	cfg := service.DefaultConfig()
	if err := env.Parse(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "order: reading configuration:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "poison" { // the poison queue tooling, see `order poison`
		if err := poison.RunCLI(ctx, cfg.Messaging, os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := service.Run(ctx, cfg, logger); err != nil {
		logger.Error("order service failed", "err", err)
		os.Exit(1)
	}
}

// logLevel reads LOG_LEVEL (debug, info, warn, error; default info).
func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}
