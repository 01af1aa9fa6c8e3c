package harness

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/onceflow/onceflow/internal/testenv"
)

// AuditSettle is the delivery auditor's settle time in every stack
// (*_AUDIT_SETTLE); its passes run every second (*_AUDIT_INTERVAL).
const AuditSettle = 2 * time.Second

// auditEnv paces the services' auditors for the tests.
var auditEnv = []string{"AUDIT_INTERVAL=1s", "AUDIT_SETTLE=" + AuditSettle.String()}

var (
	auditViolation = regexp.MustCompile(`^onceflow_audit_violations_total\{check="([^"]*)",scope="([^"]*)"\}$`)
	auditChecked   = regexp.MustCompile(`^onceflow_audit_checked_timestamp_seconds\{check="([^"]*)"\}$`)
)

// auditMargin covers the whole seconds of the times the checks compare.
const auditMargin = time.Second

// Audit returns what the services' delivery auditors proved broken, as
// "check/scope" -> violations (only those with one; the largest of the
// running replicas). It waits (up to a minute) until every check of every
// running service has judged everything written before since: its checked
// time (the start of a pass that judged all it could) is past since, its
// settle time and auditMargin. A service that is not running is not asked.
func (s *Stack) Audit(ctx context.Context, since time.Time) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	found := map[string]int{}
	for _, svc := range append(append([]*Service{}, s.Orders...), s.Payments...) {
		if !svc.Running() {
			continue
		}
		for {
			scrape, err := scrape(ctx, "http://"+svc.HTTPAddr+"/metrics")
			behind := ""
			for series, v := range scrape {
				if m := auditChecked.FindStringSubmatch(series); m != nil && time.Unix(0, int64(v*1e9)).Before(since.Add(AuditSettle+auditMargin)) {
					behind = m[1]
				}
			}
			if err == nil && behind == "" {
				for series, v := range scrape {
					if m := auditViolation.FindStringSubmatch(series); m != nil && v > 0 {
						found[m[1]+"/"+m[2]] = max(found[m[1]+"/"+m[2]], int(v))
					}
				}
				break
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("audit of %s: check %q has not judged everything written before %s (last scrape error: %w)", svc.Name, behind, since.Format(time.RFC3339), cmp.Or(err, errors.New("none")))
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return found, nil
}

// scrape reads a Prometheus text endpoint.
func scrape(ctx context.Context, url string) (testenv.Scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return testenv.ParseMetrics(resp.Body)
}
