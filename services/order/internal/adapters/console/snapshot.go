package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/onceflow/onceflow/services/order/internal/domain"
)

// The metric names the console reads from each service's GET /metrics (issue 14).
const (
	MetricOutboxPending  = "onceflow_outbox_pending_rows"
	MetricOutboxOldest   = "onceflow_outbox_oldest_age_seconds"
	MetricConsumerLag    = "onceflow_consumer_lag_messages"
	MetricRetries        = "onceflow_handler_retries_total"
	MetricPoison         = "onceflow_poison_messages_total"
	MetricSagaOutcomes   = "onceflow_saga_outcomes_total"
	MetricHTTPRequests   = "onceflow_http_requests_total"
	maxMetricsBodyBytes  = 4 << 20
	recentOrdersShown    = 20
	orderRateWindow      = 10 * time.Second
	defaultSnapshotEvery = time.Second
)

// Snapshot is what the console shows at one moment; the page receives it as
// JSON once a second. A figure the console could not get is absent (null), never 0.
type Snapshot struct {
	At time.Time `json:"at"`
	// Order and Payment describe each service as its /metrics (and, for the
	// order service, its own database) show it.
	Order   ServiceView `json:"order"`
	Payment ServiceView `json:"payment"`
	// RecentOrders are the newest orders, newest first.
	RecentOrders []OrderView `json:"recent_orders"`
	// OrdersPerSecond is the rate of new orders over the last 10 s (database).
	OrdersPerSecond *float64 `json:"orders_per_second"`
	// Errors lists what could not be read, for the page's status line.
	Errors []string `json:"errors,omitempty"`
}

// ServiceView is one service's figures. Up is false when its /metrics did not
// answer; Metrics is false when it answered without onceflow_* metrics (an
// older build), in which case the order service's figures come from its
// database (Source "db").
type ServiceView struct {
	Up            bool               `json:"up"`
	Metrics       bool               `json:"metrics"`
	Error         string             `json:"error,omitempty"`
	OutboxPending *float64           `json:"outbox_pending"`
	OutboxOldest  *float64           `json:"outbox_oldest_age_seconds"`
	OutboxSource  string             `json:"outbox_source,omitempty"`
	Lag           []LagView          `json:"lag"`
	LagTotal      *float64           `json:"lag_total"`
	Retries       *float64           `json:"retries_total"`
	Poison        map[string]float64 `json:"poison_by_reason"`
	Outcomes      map[string]float64 `json:"outcomes"`
	HTTPRequests  *float64           `json:"http_requests_total"`
}

// LagView is one partition's consumer lag.
type LagView struct {
	Topic     string  `json:"topic"`
	Partition string  `json:"partition"`
	Group     string  `json:"group"`
	Messages  float64 `json:"messages"`
}

// OrderView is an order as the console lists it.
type OrderView struct {
	ID           string    `json:"id"`
	CustomerID   string    `json:"customer_id"`
	AmountCents  int64     `json:"amount_cents"`
	Currency     string    `json:"currency"`
	Status       string    `json:"status"`
	CancelReason string    `json:"cancel_reason,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// Source produces snapshots. Snapshot never fails: what it cannot read it
// leaves absent and names in Snapshot.Errors.
type Source interface {
	Snapshot(ctx context.Context) Snapshot
}

// Store is the order database's part of a snapshot (mariadb.ConsoleStats):
// cheap queries, each of which fails only when the database does not answer.
type Store interface {
	RecentOrders(ctx context.Context, limit int) ([]*domain.Order, error)
	OrdersSince(ctx context.Context, since time.Time) (int64, error)
	OutboxBacklog(ctx context.Context) (rows int64, oldestAgeSeconds float64, err error)
}

// Scraper is the Source of a running order service: it reads both services'
// GET /metrics (Prometheus text format) and the order database, and keeps the
// result for MinInterval so that many open pages cost one scrape a second.
type Scraper struct {
	// OrderMetricsURL and PaymentMetricsURL are the two /metrics addresses.
	OrderMetricsURL, PaymentMetricsURL string
	// Store answers the database queries; nil leaves those figures absent.
	Store Store
	// Client makes the scrapes; its Timeout bounds each (default 800 ms).
	Client *http.Client
	// MinInterval is how long a snapshot is reused (default 900 ms).
	MinInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu   sync.Mutex
	last Snapshot
	at   time.Time
}

// Snapshot implements Source. It never fails; each part has its own time limit
// so a service that hangs cannot stall the page.
func (s *Scraper) Snapshot(ctx context.Context) Snapshot {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	minInterval := s.MinInterval
	if minInterval == 0 {
		minInterval = 900 * time.Millisecond
	}
	if !s.at.IsZero() && now.Sub(s.at) < minInterval {
		return s.last
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	snap := Snapshot{At: now, RecentOrders: []OrderView{}}
	var wg sync.WaitGroup
	var orderFams, payFams map[string]*dto.MetricFamily
	var orderErr, payErr error
	wg.Add(2)
	go func() { defer wg.Done(); orderFams, orderErr = s.scrape(ctx, s.OrderMetricsURL) }()
	go func() { defer wg.Done(); payFams, payErr = s.scrape(ctx, s.PaymentMetricsURL) }()
	wg.Wait()
	snap.Order = viewOf(orderFams, orderErr)
	snap.Payment = viewOf(payFams, payErr)
	if orderErr != nil {
		snap.Errors = append(snap.Errors, "order /metrics: "+orderErr.Error())
	}
	if payErr != nil {
		snap.Errors = append(snap.Errors, "payment /metrics: "+payErr.Error())
	}
	if s.Store != nil {
		s.fromStore(ctx, now, &snap)
	}
	s.last, s.at = snap, now
	return snap
}

// fromStore adds the database's figures: the recent orders, the order rate and,
// when the metrics lack it, the order outbox's backlog.
func (s *Scraper) fromStore(ctx context.Context, now time.Time, snap *Snapshot) {
	if list, err := s.Store.RecentOrders(ctx, recentOrdersShown); err != nil {
		snap.Errors = append(snap.Errors, "recent orders: "+err.Error())
	} else {
		for _, o := range list {
			snap.RecentOrders = append(snap.RecentOrders, OrderView{ID: o.ID, CustomerID: o.CustomerID,
				AmountCents: o.AmountCents, Currency: o.Currency, Status: string(o.Status),
				CancelReason: o.CancelReason, CreatedAt: o.CreatedAt})
		}
	}
	if n, err := s.Store.OrdersSince(ctx, now.Add(-orderRateWindow)); err != nil {
		snap.Errors = append(snap.Errors, "order rate: "+err.Error())
	} else {
		rate := float64(n) / orderRateWindow.Seconds()
		snap.OrdersPerSecond = &rate
	}
	if snap.Order.OutboxPending == nil {
		if rows, age, err := s.Store.OutboxBacklog(ctx); err != nil {
			snap.Errors = append(snap.Errors, "order outbox: "+err.Error())
		} else {
			r := float64(rows)
			snap.Order.OutboxPending, snap.Order.OutboxOldest, snap.Order.OutboxSource = &r, &age, "db"
		}
	}
}

func (s *Scraper) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// scrape reads and parses one /metrics page.
func (s *Scraper) scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	if url == "" {
		return nil, fmt.Errorf("no address configured")
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 800 * time.Millisecond}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("unreachable")
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return map[string]*dto.MetricFamily{}, nil // up, but a build without /metrics
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return ParseMetrics(io.LimitReader(resp.Body, maxMetricsBodyBytes))
}

// ParseMetrics parses the Prometheus text exposition format. It fails on text
// that is not in that format.
func ParseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	// The parser must be told which metric names are valid: the zero value
	// panics on the first name (prometheus/common v0.66 and later).
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("not Prometheus text format: %w", err)
	}
	return fams, nil
}

// viewOf turns a service's metric families into its view; err says the
// service did not answer.
func viewOf(fams map[string]*dto.MetricFamily, err error) ServiceView {
	v := ServiceView{Lag: []LagView{}, Poison: map[string]float64{}, Outcomes: map[string]float64{}}
	if err != nil {
		v.Error = err.Error()
		return v
	}
	v.Up = true
	for name := range fams {
		if len(name) > 9 && name[:9] == "onceflow_" {
			v.Metrics = true
			break
		}
	}
	if x, ok := sum(fams[MetricOutboxPending], nil); ok {
		v.OutboxPending, v.OutboxSource = &x, "metrics"
	}
	if x, ok := maxOf(fams[MetricOutboxOldest]); ok {
		v.OutboxOldest = &x
	}
	if f := fams[MetricConsumerLag]; f != nil {
		var total float64
		for _, m := range f.GetMetric() {
			l := LagView{Topic: label(m, "topic"), Partition: label(m, "partition"), Group: label(m, "group"), Messages: value(m)}
			v.Lag = append(v.Lag, l)
			total += l.Messages
		}
		sort.Slice(v.Lag, func(i, j int) bool {
			a, b := v.Lag[i], v.Lag[j]
			if a.Topic != b.Topic {
				return a.Topic < b.Topic
			}
			return a.Partition < b.Partition
		})
		v.LagTotal = &total
	}
	if x, ok := sum(fams[MetricRetries], nil); ok {
		v.Retries = &x
	}
	if x, ok := sum(fams[MetricHTTPRequests], nil); ok {
		v.HTTPRequests = &x
	}
	byLabel(fams[MetricPoison], "reason", v.Poison)
	byLabel(fams[MetricSagaOutcomes], "outcome", v.Outcomes)
	return v
}

// sum adds the values of f's series that keep (nil: all); ok is false when f is absent.
func sum(f *dto.MetricFamily, keep func(*dto.Metric) bool) (float64, bool) {
	if f == nil {
		return 0, false
	}
	var total float64
	for _, m := range f.GetMetric() {
		if keep == nil || keep(m) {
			total += value(m)
		}
	}
	return total, true
}

func maxOf(f *dto.MetricFamily) (float64, bool) {
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, false
	}
	mx := value(f.GetMetric()[0])
	for _, m := range f.GetMetric()[1:] {
		mx = max(mx, value(m))
	}
	return mx, true
}

func byLabel(f *dto.MetricFamily, name string, into map[string]float64) {
	if f == nil {
		return
	}
	for _, m := range f.GetMetric() {
		into[label(m, name)] += value(m)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// value is a counter's, gauge's or untyped series' value.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}
