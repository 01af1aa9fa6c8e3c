package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caarlos0/env/v11"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestConfig(t *testing.T) {
	ratio := func(r float64) *float64 { return &r }
	tests := []struct {
		name    string
		c       Config
		env     map[string]string
		want    string // exporter after FromStandardEnv and Defaults
		wantErr bool
	}{
		{name: "default is off", want: ExporterNone},
		{name: "standard endpoint turns it on", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: ExporterOTLP},
		{name: "standard traces endpoint turns it on", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, want: ExporterOTLP},
		{name: "explicit none wins over the standard variable", c: Config{Exporter: ExporterNone},
			env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: ExporterNone},
		{name: "unknown exporter", c: Config{Exporter: "jaeger"}, want: "jaeger", wantErr: true},
		{name: "ratio above 1", c: Config{SampleRatio: ratio(1.5)}, want: ExporterNone, wantErr: true},
		{name: "ratio 0 is valid", c: Config{SampleRatio: ratio(0)}, want: ExporterNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c.FromStandardEnv(func(k string) string { return tt.env[k] })
			if got := c.Defaults().Exporter; got != tt.want {
				t.Errorf("exporter %q, want %q", got, tt.want)
			}
			if err := c.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

// TestLogHandler: a line logged in a span carries its trace_id and span_id;
// one logged without a span carries neither.
func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("service", "order")
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}, TraceFlags: trace.FlagsSampled})
	logger.InfoContext(trace.ContextWithSpanContext(context.Background(), sc), "in a span")
	logger.InfoContext(context.Background(), "outside")

	var lines []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	if lines[0]["trace_id"] != sc.TraceID().String() || lines[0]["span_id"] != sc.SpanID().String() {
		t.Errorf("line in a span: %v, want trace_id %s and span_id %s", lines[0], sc.TraceID(), sc.SpanID())
	}
	if _, ok := lines[1]["trace_id"]; ok {
		t.Errorf("line outside a span has a trace_id: %v", lines[1])
	}
}

// TestEcho: a request gets a server span named after its route, child of its
// traceparent header, in the handler's context, with the status the error
// handler answers; the untraced routes get none.
func TestEcho(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	e := echo.New()
	e.Use(Echo("/healthz"))
	var inHandler trace.SpanContext
	e.POST("/orders/:id/cancel", func(c echo.Context) error {
		inHandler = trace.SpanContextFromContext(c.Request().Context())
		return errors.New("boom") // Echo answers 500
	})
	e.GET("/healthz", func(c echo.Context) error { return c.NoContent(http.StatusOK) })

	const parent = "00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01"
	req := httptest.NewRequest(http.MethodPost, "/orders/o1/cancel", nil)
	req.Header.Set("traceparent", parent)
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	e.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))

	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", w.Code)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1 (none for /healthz)", len(spans))
	}
	sp := spans[0]
	if sp.Name() != "POST /orders/:id/cancel" || sp.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q (%s), want server span \"POST /orders/:id/cancel\"", sp.Name(), sp.SpanKind())
	}
	if sp.SpanContext().TraceID().String() != "0102030405060708090a0b0c0d0e0f10" || sp.Parent().SpanID().String() != "0102030405060708" {
		t.Errorf("span in trace %s with parent %s, want the traceparent header's", sp.SpanContext().TraceID(), sp.Parent().SpanID())
	}
	if inHandler.SpanID() != sp.SpanContext().SpanID() {
		t.Errorf("the handler saw span %s, want %s", inHandler.SpanID(), sp.SpanContext().SpanID())
	}
	if sp.Status().Code != codes.Error {
		t.Errorf("status %v, want an error for a 500", sp.Status())
	}
	var status int64
	for _, a := range sp.Attributes() {
		if a.Key == "http.response.status_code" {
			status = a.Value.AsInt64()
		}
	}
	if status != http.StatusInternalServerError {
		t.Errorf("http.response.status_code %d, want 500", status)
	}
}

// TestConfigFromEnvironment: the variables fill the config, the ratio included.
func TestConfigFromEnvironment(t *testing.T) {
	var c Config
	err := env.ParseWithOptions(&c, env.Options{Environment: map[string]string{
		"EXPORTER": "otlp", "ENDPOINT": "http://c:4318", "SAMPLE_RATIO": "0.25"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Exporter != ExporterOTLP || c.Endpoint != "http://c:4318" || c.SampleRatio == nil || *c.SampleRatio != 0.25 {
		t.Fatalf("config %+v", c)
	}
}
