// Package tracing is the OpenTelemetry adapter: it installs the
// process's tracer provider and exporter from Config, traces HTTP requests
// (Echo), and adds trace_id and span_id to log lines. The context of a trace
// crosses the outbox and Kafka in the message metadata (W3C traceparent, see
// pkg/msgtrace); this package only decides where spans go.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Exporters a Config may name.
const (
	// ExporterNone: no tracer provider is installed; spans are no-ops and cost
	// next to nothing (the default, `make run`).
	ExporterNone = "none"
	// ExporterOTLP: spans are batched and sent with OTLP over HTTP (protobuf).
	ExporterOTLP = "otlp"
)

// Config is the tracing part of a service's configuration, nested as
// <SERVICE>_TRACING_*, e.g. ORDER_TRACING_EXPORTER. Zero fields take the
// defaults.
type Config struct {
	// Exporter is "none" (default) or "otlp". Left empty, it is "otlp" when the
	// standard OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	// is set (main decides, see servicemain), "none" otherwise.
	Exporter string `env:"EXPORTER"`
	// Endpoint is the OTLP/HTTP collector's base URL, e.g.
	// http://127.0.0.1:4318 (spans go to its /v1/traces). Empty: the exporter's
	// standard variables (OTEL_EXPORTER_OTLP_ENDPOINT, ..._TRACES_ENDPOINT,
	// ..._HEADERS), else http://localhost:4318.
	Endpoint string `env:"ENDPOINT"`
	// SampleRatio is the share of new traces (POST /orders without a
	// traceparent) that are recorded, 0..1; a span with a parent follows its
	// parent's decision (parent-based sampling), so a trace is whole or absent.
	// Default 1 (always on).
	SampleRatio *float64 `env:"SAMPLE_RATIO"`
}

// Defaults returns c with zero fields set to their defaults.
func (c Config) Defaults() Config {
	if c.Exporter == "" {
		c.Exporter = ExporterNone
	}
	if c.SampleRatio == nil {
		one := 1.0
		c.SampleRatio = &one
	}
	return c
}

// FromStandardEnv returns c with Exporter "otlp" when it is empty and getenv
// (os.Getenv, in main) finds OpenTelemetry's standard
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: setting
// either turns tracing on, as for any OpenTelemetry program. The exporter then
// reads them (and OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_*) itself.
func (c Config) FromStandardEnv(getenv func(string) string) Config {
	if c.Exporter == "" && (getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		c.Exporter = ExporterOTLP
	}
	return c
}

// Validate reports the first invalid field (after Defaults).
func (c Config) Validate() error {
	c = c.Defaults()
	if c.Exporter != ExporterNone && c.Exporter != ExporterOTLP {
		return fmt.Errorf("tracing exporter %q is not %q or %q", c.Exporter, ExporterNone, ExporterOTLP)
	}
	if r := *c.SampleRatio; r < 0 || r > 1 {
		return fmt.Errorf("tracing sample ratio %v is outside 0..1", r)
	}
	return nil
}

// Setup installs, for the whole process, the tracer provider that c describes
// for the service named service (the spans' service.name), and the W3C trace
// context as the propagator. With ExporterNone it installs nothing. The
// returned shutdown flushes the spans still buffered and stops the exporter;
// call it once, at the end of the process, with a bounded context. Setup fails
// on an invalid config; an unreachable collector never fails it (spans that
// cannot be sent are dropped, and OpenTelemetry's error handler logs why).
func Setup(ctx context.Context, c Config, service string) (shutdown func(context.Context) error, err error) {
	c = c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Exporter == ExporterNone {
		return func(context.Context) error { return nil }, nil
	}
	var opts []otlptracehttp.Option
	if c.Endpoint != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(c.Endpoint+"/v1/traces"))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", service)))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("trace resource: %w", err), exp.Shutdown(ctx))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*c.SampleRatio))),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp.Shutdown, nil
}

// tracerName names the spans this package starts.
const tracerName = "github.com/onceflow/onceflow/pkg/tracing"

// Echo returns an Echo middleware that gives every request a server span named
// after its method and route ("POST /orders"), child of the request's
// traceparent header if it has one, and puts the span in the request's
// context, where the handlers, the outbox (which stores it with each event)
// and the log lines find it. It answers a handler's error itself (Echo's
// HTTPErrorHandler, as the router would) so that the span records the status
// the client gets; a 5xx marks the span as an error. Use it first. Routes in
// untraced (e.g. the health probes, asked every few seconds) get no span.
func Echo(untraced ...string) echo.MiddlewareFunc {
	tracer := otel.Tracer(tracerName)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			route := c.Path()
			if slices.Contains(untraced, route) {
				return next(c)
			}
			if route == "" {
				route = "unmatched"
			}
			ctx := propagation.TraceContext{}.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
			ctx, span := tracer.Start(ctx, req.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", req.Method), attribute.String("http.route", route)))
			defer span.End()
			c.SetRequest(req.WithContext(ctx))
			// The error is answered here (as Echo's router would, once) so that
			// the span sees the status the client gets.
			if err := next(c); err != nil {
				span.RecordError(err)
				c.Error(err)
			}
			status := c.Response().Status
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= http.StatusInternalServerError {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			return nil
		}
	}
}

// LogHandler wraps h so that every record logged with a context holding a
// recording span (logger.InfoContext(ctx, ...)) carries that span's trace_id
// and span_id; records without one pass unchanged.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return l.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (l logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.Handler.WithGroup(name)} }
