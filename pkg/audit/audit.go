package audit

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onceflow/onceflow/pkg/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations create the auditor's tables, tracked in goose_audit_version.
var Migrations = sqldb.Migrations{Table: "goose_audit_version", FS: migrations, Dir: "migrations"}

// Violation is one broken promise a check proved.
type Violation struct {
	// Scope is where the check looked (a table, a topic, a consumer group);
	// Subject is what broke it there (an order id, an event id).
	Scope, Subject string
	// Detail says what was found, for people (at most 255 bytes are kept).
	Detail string
}

// Check is one invariant.
type Check struct {
	// Name labels its violations (check="..."): lowercase words joined by _.
	Name string
	// Scopes are the scopes it reports in, exported at zero from the start
	// (so that an alert sees the first violation as an increase).
	Scopes []string
	// Run reads on from the cursor after (0 the first time) and returns what
	// it proved broken, and the cursor to continue from next time. It reads a
	// bounded batch; a Violation found again is counted once. It returns next
	// == after once it has judged everything it can judge now, and ErrPending
	// while it holds items it can judge only later (it waits for a reader).
	Run func(ctx context.Context, after int64) (found []Violation, next int64, err error)
}

// ErrPending is what a check's Run returns while it waits to judge what it
// has read: the pass ends without moving the check's checked time.
var ErrPending = errors.New("audit: waiting to judge")

// maxBatches bounds the batches one pass of a check reads.
const maxBatches = 100

// Config is the auditor's wiring.
type Config struct {
	DB     *sql.DB
	Checks []Check
	// Registry gets onceflow_audit_violations_total{check, scope} and
	// onceflow_audit_checked_timestamp_seconds{check}.
	Registry prometheus.Registerer
}

var checkName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.DB == nil || c.Registry == nil {
		return errors.New("audit: DB and Registry are required")
	}
	if len(c.Checks) == 0 {
		return errors.New("audit: no check")
	}
	seen := map[string]bool{}
	for _, ch := range c.Checks {
		if !checkName.MatchString(ch.Name) || seen[ch.Name] || ch.Run == nil {
			return fmt.Errorf("audit: check %q: want a unique lowercase name and a Run", ch.Name)
		}
		seen[ch.Name] = true
	}
	return nil
}

// Auditor runs the checks and exports their counts. Make it with New.
type Auditor struct {
	config Config

	mu sync.Mutex
	// counts are the violations per check and scope, as of the last pass;
	// counted says whether a pass has read them (before, none is exported:
	// a restarted replica never shows a total falling to zero and rising
	// again, which an alert would take for new violations).
	counts  map[[2]string]int
	counted bool
	// checked is, for each check, when the last pass started that judged
	// everything the check could judge.
	checked map[string]time.Time
}

// New returns the auditor of c and registers its metrics; it fails on an
// invalid c or if the registry already has them.
func New(c Config) (*Auditor, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	a := &Auditor{config: c, counts: map[[2]string]int{}, checked: map[string]time.Time{}}
	if err := c.Registry.Register(collector{a}); err != nil {
		return nil, fmt.Errorf("audit: metrics: %w", err)
	}
	return a, nil
}

// Run is one pass of every check: each reads on from its cursor, batch after
// batch, until it has judged all it can (its checked time is then the pass's
// start), waits (ErrPending) or has read maxBatches. Each batch's violations
// are stored once and its cursor moves forward, in one transaction. Then the
// counts are read again. It returns the first error, after trying every check.
func (a *Auditor) Run(ctx context.Context) error {
	var errs []error
	for _, ch := range a.config.Checks {
		start := time.Now()
		done, err := a.pass(ctx, ch)
		if err != nil {
			errs = append(errs, fmt.Errorf("audit: check %s: %w", ch.Name, err))
			continue
		}
		if done {
			a.mu.Lock()
			a.checked[ch.Name] = start
			a.mu.Unlock()
		}
	}
	if err := a.recount(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// pass runs ch batch after batch, as Run says.
// It reports whether ch judged all it could.
func (a *Auditor) pass(ctx context.Context, ch Check) (done bool, err error) {
	for range maxBatches {
		moved, err := a.batch(ctx, ch)
		if errors.Is(err, ErrPending) {
			return false, nil
		}
		if err != nil || !moved {
			return err == nil, err
		}
	}
	return false, nil
}

// batch runs ch once from its stored cursor (another replica may have moved
// it) and reports whether the cursor moved forward.
func (a *Auditor) batch(ctx context.Context, ch Check) (moved bool, err error) {
	var after int64
	err = a.config.DB.QueryRowContext(ctx, "SELECT position FROM audit_cursors WHERE check_name = ?", ch.Name).Scan(&after)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	found, next, err := ch.Run(ctx, after)
	if err != nil {
		return false, err
	}
	return next > after, sqldb.InTx(ctx, a.config.DB, func(ctx context.Context, tx *sql.Tx) error {
		for _, v := range found {
			if _, err := tx.ExecContext(ctx, "INSERT IGNORE INTO audit_violations (check_name, scope, subject, detail) VALUES (?, ?, ?, LEFT(?, 255))",
				ch.Name, v.Scope, v.Subject, v.Detail); err != nil {
				return err
			}
		}
		// GREATEST: a cursor only moves forward, whichever replica wrote last.
		_, err := tx.ExecContext(ctx, "INSERT INTO audit_cursors (check_name, position) VALUES (?, ?) ON DUPLICATE KEY UPDATE position = GREATEST(position, VALUES(position))",
			ch.Name, next)
		return err
	})
}

// recount reads the violations per check and scope.
func (a *Auditor) recount(ctx context.Context) error {
	rows, err := a.config.DB.QueryContext(ctx, "SELECT check_name, scope, COUNT(*) FROM audit_violations GROUP BY check_name, scope")
	if err != nil {
		return fmt.Errorf("audit: counting: %w", err)
	}
	defer rows.Close()
	counts := map[[2]string]int{}
	for rows.Next() {
		var check, scope string
		var n int
		if err := rows.Scan(&check, &scope, &n); err != nil {
			return fmt.Errorf("audit: counting: %w", err)
		}
		counts[[2]string{check, scope}] = n
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("audit: counting: %w", err)
	}
	a.mu.Lock()
	a.counts, a.counted = counts, true
	a.mu.Unlock()
	return nil
}

var (
	violationsDesc = prometheus.NewDesc("onceflow_audit_violations_total",
		"Broken promises the delivery auditor proved (each subject once, durably), by check and scope.", []string{"check", "scope"}, nil)
	checkedDesc = prometheus.NewDesc("onceflow_audit_checked_timestamp_seconds",
		"When the check last completed a pass (Unix seconds; 0: not yet).", []string{"check"}, nil)
)

// collector exports the counts of the last pass.
type collector struct{ a *Auditor }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- violationsDesc
	ch <- checkedDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, check := range a.config.Checks {
		var at float64
		if t := a.checked[check.Name]; !t.IsZero() {
			at = float64(t.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(checkedDesc, prometheus.GaugeValue, at, check.Name)
	}
	if !a.counted {
		return
	}
	counts := maps.Clone(a.counts)
	for _, check := range a.config.Checks {
		for _, scope := range check.Scopes {
			if k := [2]string{check.Name, scope}; counts[k] == 0 {
				counts[k] = 0
			}
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(violationsDesc, prometheus.CounterValue, float64(n), k[0], k[1])
	}
}

// Settings are a service's auditor settings (env prefix AUDIT_, e.g.
// PAYMENT_AUDIT_INTERVAL).
type Settings struct {
	// Disabled switches the auditor off: no check runs, and the order
	// service writes no receipts (what it costs is in the bench).
	Disabled bool `env:"DISABLED"`
	// Interval is the time between passes. Default 10 s.
	Interval time.Duration `env:"INTERVAL"`
	// Settle: a check reads rows once they are older than this, so that a
	// pass does not move past a row whose transaction is still open. Default
	// 30 s; it delays what the auditor finds, never what it counts.
	Settle time.Duration `env:"SETTLE"`
}

// Defaults returns s with zero fields set to their defaults.
func (s Settings) Defaults() Settings {
	if s.Interval == 0 {
		s.Interval = 10 * time.Second
	}
	if s.Settle == 0 {
		s.Settle = 30 * time.Second
	}
	return s
}

// Validate reports the first invalid field.
func (s Settings) Validate() error {
	if s.Interval <= 0 || s.Settle <= 0 {
		return fmt.Errorf("audit: interval %s and settle %s must be positive", s.Interval, s.Settle)
	}
	return nil
}
