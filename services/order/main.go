// Command order runs the order service: the HTTP order API, the outbox forwarder
// for order events and the consumer of payment events. Configuration comes from
// environment variables only; "order poison ..." runs the poison queue tooling instead
// (list, show, replay, purge), and "order healthcheck" checks a running one. (see service.Config and the README); the defaults
// fit `make run`.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

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
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" { // for images without curl: exit 0 if /healthz answers
		os.Exit(healthcheck(cfg.HTTPAddr))
	}
	if len(os.Args) > 1 && os.Args[1] == "poison" { // the poison queue tooling, see `order poison`
		if err := poison.RunCLI(ctx, cfg.Messaging, os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	opts, err := options()
	if err != nil {
		fmt.Fprintln(os.Stderr, "order: reading configuration:", err)
		os.Exit(2)
	}
	if err := service.Run(ctx, cfg, logger, opts...); err != nil {
		logger.Error("order service failed", "err", err)
		os.Exit(1)
	}
}

// healthcheck asks the running service at addr for GET /healthz and returns the
// exit code: 0 if it answered 200, 1 otherwise.
func healthcheck(addr string) int {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

// logLevel reads LOG_LEVEL (debug, info, warn, error; default info).
func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}
