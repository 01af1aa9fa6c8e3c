// Package servicemain is what every service's main function does, once: read
// the configuration from the environment, build the logger, stop on SIGTERM
// or Ctrl-C, and dispatch the subcommands ("healthcheck", "poison ...") or run
// the service.
package servicemain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/onceflow/onceflow/pkg/poison/poisoncli"
	"github.com/onceflow/onceflow/pkg/tracing"
)

// Service describes one service command to Main. O is the service's wiring
// option type (service.Option).
type Service[O any] struct {
	// Name is the command's name ("order"): the logger's "service" attribute
	// and the prefix of its error messages.
	Name string
	// Config points to the service's configuration, holding its defaults; Main
	// fills it from the environment (its env tags, caarlos0/env) before anything
	// else, so Common and Run see the result.
	Config any
	// Common points to the part of Config every service has: "healthcheck"
	// asks its HTTPAddr, "poison" uses its Messaging.
	Common *Common
	// Options returns the options Run gets (a test build may read some from
	// the environment; a production main returns none).
	Options func() ([]O, error)
	// Run runs the service until ctx ends.
	Run func(ctx context.Context, logger *slog.Logger, opts ...O) error
	// OpenAPI returns the document the service serves at /openapi.json, for
	// the "openapi" subcommand (nil: the subcommand fails).
	OpenAPI func() ([]byte, error)
	// Commands are the service's own subcommands by name (the order service's
	// "diagnose"): each gets the arguments after its name and writes to stdout.
	Commands map[string]func(ctx context.Context, args []string, stdout io.Writer) error
}

// Main runs s as the process's command and exits: 2 when the configuration
// cannot be read, 1 when the service or a subcommand fails, 0 otherwise.
//
//   - no argument: run the service until SIGTERM or SIGINT, then stop it
//     gracefully (Run returns); logs are JSON on stderr at LOG_LEVEL (debug,
//     info, warn, error; default info), with trace_id and span_id on lines
//     logged in a span; spans are exported as <Common>.Tracing (and the
//     standard OTEL_EXPORTER_OTLP_ENDPOINT) say (tracing.Setup).
//   - "healthcheck": exit 0 if the running service answers GET /healthz with
//     200 within 2 s (for images without curl).
//   - "openapi": print the OpenAPI document the service serves at
//     /openapi.json (indented), without running it: code generators read it.
//   - "poison ...": the poison queue tooling (poisoncli.RunCLI: list, show,
//     replay, purge, parked ...).
//   - any name in s.Commands: that command.
func Main[O any](s Service[O]) {
	os.Exit(s.main(os.Args[1:], os.Stdout, os.Stderr))
}

func (s Service[O]) main(args []string, stdout, stderr io.Writer) int {
	if err := env.Parse(s.Config); err != nil {
		fmt.Fprintf(stderr, "%s: reading configuration: %v\n", s.Name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 {
		switch args[0] {
		case "healthcheck":
			return Healthcheck(s.Common.HTTPAddr)
		case "openapi":
			if s.OpenAPI == nil {
				fmt.Fprintf(stderr, "%s: openapi: this service has no OpenAPI document\n", s.Name)
				return 2
			}
			doc, err := s.OpenAPI()
			var out bytes.Buffer
			if err == nil {
				err = json.Indent(&out, doc, "", "  ")
			}
			if err != nil {
				fmt.Fprintf(stderr, "%s: openapi: %v\n", s.Name, err)
				return 1
			}
			fmt.Fprintln(stdout, out.String())
			return 0
		case "poison":
			m := s.Common.Messaging
			c := poisoncli.Config{DB: m.DB, Kafka: m.Kafka, PoisonTopic: m.PoisonTopic,
				Service: s.Name, ServiceAddr: LocalAddr(s.Common.HTTPAddr), AdminToken: s.Common.AdminToken}
			if err := poisoncli.RunCLI(ctx, c, args[1:], stdout); err != nil {
				fmt.Fprintln(stderr, err)
				return 1
			}
			return 0
		default:
			if cmd, ok := s.Commands[args[0]]; ok {
				if err := cmd(ctx, args[1:], stdout); err != nil {
					fmt.Fprintf(stderr, "%s %s: %v\n", s.Name, args[0], err)
					return 1
				}
				return 0
			}
			fmt.Fprintf(stderr, "%s: unknown subcommand %q (want none, healthcheck, openapi, poison or one of the service's own)\n", s.Name, args[0])
			return 2
		}
	}
	opts, err := s.Options()
	if err != nil {
		fmt.Fprintf(stderr, "%s: reading configuration: %v\n", s.Name, err)
		return 2
	}
	logger := slog.New(tracing.LogHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: LogLevel()}))).With("service", s.Name)
	shutdownTracing, err := tracing.Setup(ctx, s.Common.Tracing.FromStandardEnv(os.Getenv), s.Name)
	if err != nil {
		fmt.Fprintf(stderr, "%s: tracing: %v\n", s.Name, err)
		return 2
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(ctx); err != nil {
			logger.Warn("flushing the last spans", "err", err)
		}
	}()
	if err := s.Run(ctx, logger, opts...); err != nil {
		logger.Error(s.Name+" service failed", "err", err)
		return 1
	}
	return 0
}

// Healthcheck asks the running service at addr for GET /healthz and returns the
// exit code: 0 if it answered 200 within 2 s, 1 otherwise. A wildcard host
// (empty, 0.0.0.0, ::) is asked on 127.0.0.1.
func Healthcheck(addr string) int {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+LocalAddr(addr)+"/healthz", nil)
	if err != nil {
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

// LogLevel reads LOG_LEVEL (debug, info, warn, error; default info, also for
// an unknown value).
func LogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// LocalAddr is how a command, or the service itself, reaches the service
// listening at listen: an empty or unspecified host (":8080",
// "0.0.0.0:8080", "[::]:8080") becomes 127.0.0.1.
func LocalAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
