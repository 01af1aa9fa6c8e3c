// Package metrics is the Prometheus adapter of the services: one
// registry per service (never the global default, so that two services can run
// in one test process), the onceflow_* collectors, Watermill's own metrics
// component for handlers, publishers and subscribers, an Echo middleware for
// the HTTP API, a background sampler for the gauges that need a query, and the
// GET /metrics handler.
//
// Scrapes are cheap: counters are incremented where things happen (through
// consumer.Hooks and the order application's outcome port) and gauges hold
// the last values the sampler stored; a scrape only reads memory.
package metrics

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	wmetrics "github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/outbox"
	"github.com/onceflow/onceflow/pkg/outbox/parking"
)

// Metrics holds one service's registry and collectors. Make it with New.
type Metrics struct {
	// Registry is the service's own registry; Handler serves it.
	Registry *prometheus.Registry

	outboxPending   prometheus.Gauge
	outboxOldestAge prometheus.Gauge
	outboxParked    prometheus.Gauge
	forwarded       prometheus.Counter
	lag             *prometheus.GaugeVec
	retries         prometheus.Counter
	poisoned        *prometheus.CounterVec
	duplicates      prometheus.Counter
	skipped         prometheus.Counter
	sagaOutcomes    *prometheus.CounterVec
	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
	sampleErrors    *prometheus.CounterVec

	watermill wmetrics.PrometheusMetricsBuilder
}

// New returns the metrics of a service with a fresh registry holding every
// onceflow_* collector (at zero), Go's runtime and process collectors.
// sagaOutcomes are the outcome labels to show at zero from the start (the
// order service passes its outcomes, so that a rate over them exists before
// the first order; nil for none).
func New(sagaOutcomes ...string) *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{
		Registry: reg,
		outboxPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "onceflow_outbox_pending_rows",
			Help: "Rows waiting in the service's outbox (sampled; exact up to 10000, an upper bound above)."}),
		outboxOldestAge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "onceflow_outbox_oldest_age_seconds",
			Help: "How long the oldest outbox row has waited, in seconds (sampled; 0 when empty)."}),
		outboxParked: prometheus.NewGauge(prometheus.GaugeOpts{Name: "onceflow_outbox_parked_rows",
			Help: "Rows in outbox_parked: events Kafka refused for good, and the rows of their keys behind them (sampled)."}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "onceflow_outbox_forwarded_total",
			Help: "Outbox rows the forwarder published and Kafka acknowledged."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "onceflow_consumer_lag_messages",
			Help: "Messages of a partition the consumer group has not committed yet (sampled from Kafka)."},
			[]string{"topic", "partition", "group"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "onceflow_handler_retries_total",
			Help: "In-place retries of consumer handlers."}),
		poisoned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "onceflow_poison_messages_total",
			Help: "Messages sent to the poison topic, by public reason code."}, []string{"reason"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "onceflow_inbox_duplicates_total",
			Help: "Redelivered messages the inbox absorbed without running the handler."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "onceflow_skipped_messages_total",
			Help: "Messages the skip failure mode acknowledged without their effect."}),
		sagaOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "onceflow_saga_outcomes_total",
			Help: "Orders that reached an outcome (confirmed, cancelled_<reason>, refunded, refund_failed)."}, []string{"outcome"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "onceflow_http_requests_total",
			Help: "HTTP requests answered, by route template, method and status."}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "onceflow_http_request_duration_seconds",
			Help: "Time to answer an HTTP request, by route template and method.", Buckets: prometheus.DefBuckets},
			[]string{"route", "method"}),
		sampleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "onceflow_metrics_sample_errors_total",
			Help: "Failed samples of the sampled gauges (outbox or kafka): those gauges keep their last value."}, []string{"source"}),
	}
	for _, c := range []prometheus.Collector{m.outboxPending, m.outboxOldestAge, m.outboxParked, m.forwarded, m.lag,
		m.retries, m.poisoned, m.duplicates, m.skipped, m.sagaOutcomes, m.httpRequests, m.httpDuration, m.sampleErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	for _, o := range sagaOutcomes {
		m.sagaOutcomes.WithLabelValues(o)
	}
	for _, r := range []string{failure.ReasonInvalidEvent, failure.ReasonHandlerFailed, consumer.ReasonHandlerTimeout} {
		m.poisoned.WithLabelValues(r)
	}
	m.sampleErrors.WithLabelValues("outbox")
	m.sampleErrors.WithLabelValues("kafka")
	// Watermill's names as its own docs and dashboards have them (no namespace).
	m.watermill = wmetrics.NewPrometheusMetricsBuilder(reg, "", "")
	return m
}

// Forwarded counts n outbox rows Kafka acknowledged (outbox.Config.OnForwarded).
func (m *Metrics) Forwarded(n int) { m.forwarded.Add(float64(n)) }

// Hooks returns the consumer stack's hooks that feed the counters
// (consumer.Config.Hooks).
func (m *Metrics) Hooks() consumer.Hooks {
	return consumer.Hooks{
		Retried:   m.retries.Inc,
		Poisoned:  func(reason string) { m.poisoned.WithLabelValues(reason).Inc() },
		Duplicate: m.duplicates.Inc,
	}
}

// Skipped counts one message the skip strategy acknowledged without its
// effect (skip.Config.OnSkipped).
func (m *Metrics) Skipped() { m.skipped.Inc() }

// SagaOutcome counts one order reaching outcome (the order application's
// outcome port). outcome must come from a fixed set: it is a label value.
func (m *Metrics) SagaOutcome(outcome string) { m.sagaOutcomes.WithLabelValues(outcome).Inc() }

// Router adds Watermill's metrics component to a router: handler execution
// time, and its subscribers' and publishers' metrics. Give it to
// Consumers.OnRouter. It panics only if this registry already holds a
// collector of Watermill's names with other labels (a programming error).
func (m *Metrics) Router(r *message.Router) { m.watermill.AddPrometheusRouterMetrics(r) }

// Publisher wraps pub with Watermill's publisher metrics (publish time by
// topic and outcome). On a registration failure it returns pub unchanged. The
// result's Unwrap returns pub, so that the outbox's batch relay can still use
// pub's batch produce (it bypasses the publish-time metric).
func (m *Metrics) Publisher(pub message.Publisher) message.Publisher {
	d, err := m.watermill.DecoratePublisher(pub)
	if err != nil {
		return pub
	}
	return decorated{Publisher: d, inner: pub}
}

// decorated is a metrics-decorated publisher that can be unwrapped.
type decorated struct {
	message.Publisher
	inner message.Publisher
}

// Unwrap returns the publisher without the metrics.
func (d decorated) Unwrap() message.Publisher { return d.inner }

// Handler serves the registry in Prometheus' text format (or OpenMetrics, if
// the scraper asks). Errors collecting are served as HTTP 500.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Register serves GET /metrics on e, without authentication (like /healthz),
// and counts every request of e with Echo's middleware, installed with e.Pre:
// outermost, so that requests refused by other middleware (body too large,
// timeouts, panics turned into 500) are counted with the status they got.
func (m *Metrics) Register(e *echo.Echo) {
	e.Pre(m.Echo())
	e.GET("/metrics", echo.WrapHandler(m.Handler()))
}

// unmatchedRoute labels requests no route matched, so that scanners probing
// random paths cannot grow the label set.
const unmatchedRoute = "unmatched"

// Echo returns a middleware counting requests and their duration by route
// template (c.Path(), e.g. /orders/:id; never the raw path: bounded
// cardinality; requests no route matched are "unmatched"), method (the
// standard ones, else "other") and status. An error the handler returns is
// handed to Echo's error handler here, as Echo would at the end, so that the
// status counted is the one sent. Install it with e.Pre (see Register): the
// route is known once the inner handler returned.
func (m *Metrics) Echo() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				c.Error(err)
			}
			route := c.Path()
			if route == "" || c.Response().Status == http.StatusNotFound && isAny(route) {
				route = unmatchedRoute
			}
			method := c.Request().Method
			if !knownMethod(method) {
				method = "other"
			}
			m.httpRequests.WithLabelValues(route, method, strconv.Itoa(c.Response().Status)).Inc()
			m.httpDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
			return nil
		}
	}
}

// isAny reports whether route is Echo's catch-all.
func isAny(route string) bool { return len(route) > 0 && route[len(route)-1] == '*' }

// knownMethod bounds the method label to the standard methods.
func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return true
	}
	return false
}

// Sampler stores the gauges that need a query: the outbox backlog and parked
// rows (outbox.ReadBacklog and parking.Count, primary-key reads only) and consumer lag
// (kafka.LagReader). Run Job on a timer (jobs.Jobs.Every).
type Sampler struct {
	m      *Metrics
	db     *sql.DB
	lag    *kafka.LagReader
	subs   func() []kafka.Subscription
	logger *slog.Logger

	mu      sync.Mutex
	failing map[string]bool // sources whose last sample failed
}

// NewSampler returns a sampler of db's outbox and, if lag is not nil, of the
// lag of subs() (asked at each sample). logger gets one line when a source
// starts failing and one when it recovers.
func (m *Metrics) NewSampler(db *sql.DB, lag *kafka.LagReader, subs func() []kafka.Subscription, logger *slog.Logger) *Sampler {
	return &Sampler{m: m, db: db, lag: lag, subs: subs, logger: logger, failing: map[string]bool{}}
}

// Sample reads the backlog and the lag once and stores them. A failing source
// keeps its gauges at their last value, counts
// onceflow_metrics_sample_errors_total{source} and its error is returned (the
// other source is still sampled).
func (s *Sampler) Sample(ctx context.Context) error {
	b, err := outbox.ReadBacklog(ctx, s.db)
	var parked int64
	if err == nil {
		parked, err = parking.Count(ctx, s.db)
	}
	outboxErr := s.note("outbox", err)
	if err == nil {
		s.m.outboxPending.Set(float64(b.Pending))
		s.m.outboxOldestAge.Set(b.OldestAge.Seconds())
		s.m.outboxParked.Set(float64(parked))
	}
	if s.lag == nil || s.subs == nil {
		return outboxErr
	}
	lags, err := s.lag.Read(s.subs())
	kafkaErr := s.note("kafka", err)
	for _, l := range lags {
		s.m.lag.WithLabelValues(l.Topic, strconv.Itoa(int(l.Partition)), l.Group).Set(float64(l.Messages))
	}
	return errors.Join(outboxErr, kafkaErr)
}

// Job is Sample for jobs.Jobs: it logs a source's failure once when it
// starts and once when it ends (a Kafka outage would otherwise log every
// interval) and never fails the job.
func (s *Sampler) Job(ctx context.Context) error {
	_ = s.Sample(ctx)
	return nil
}

// note counts err for source and logs the transitions between failing and working.
func (s *Sampler) note(source string, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.failing[source]
	s.failing[source] = err != nil
	switch {
	case err != nil:
		s.m.sampleErrors.WithLabelValues(source).Inc()
		if !was && s.logger != nil {
			s.logger.Warn("metrics: sampling failed; its gauges keep their last value", "source", source, "err", err)
		}
	case was && s.logger != nil:
		s.logger.Info("metrics: sampling works again", "source", source)
	}
	return err
}
