package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/problem"
)

// schemathesisChecks are the Schemathesis checks the run applies to every
// response. Not "all": positive_data_acceptance and
// missing_required_header expect a schema-valid request to succeed, which an
// order API that answers 404 for an unknown id or 422 for a reused
// Idempotency-Key cannot promise, and the authorization checks need several
// users, which the admin endpoints do not have.
var schemathesisChecks = []string{
	"not_a_server_error",
	"status_code_conformance",
	"content_type_conformance",
	"response_headers_conformance",
	"response_schema_conformance",
	"negative_data_rejection",
	"unsupported_method",
}

// schemathesisRun is how long and how hard Schemathesis runs. The defaults are
// the `make test` run (about a minute of requests on 2 cores); `make fuzz-api`
// raises them through the environment.
type schemathesisRun struct {
	// MaxExamples is Schemathesis' --max-examples: test cases per operation and phase
	// (SCHEMATHESIS_MAX_EXAMPLES, default 150).
	MaxExamples int
	// Seed makes the generated data repeatable (SCHEMATHESIS_SEED, default 17;
	// "random" lets Schemathesis pick one, which it prints).
	Seed string
	// MinRequests is the floor on the requests the run must have made: a document
	// that lost its operations, or a run cut short, fails instead of passing on a
	// handful of requests (SCHEMATHESIS_MIN_REQUESTS, default 2000).
	MinRequests int
}

func schemathesisRunFromEnv(t *testing.T) schemathesisRun {
	t.Helper()
	r := schemathesisRun{MaxExamples: 150, Seed: "17", MinRequests: 2000}
	for name, dst := range map[string]*int{"SCHEMATHESIS_MAX_EXAMPLES": &r.MaxExamples, "SCHEMATHESIS_MIN_REQUESTS": &r.MinRequests} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a positive integer", name, v)
			}
			*dst = n
		}
	}
	if v := os.Getenv("SCHEMATHESIS_SEED"); v != "" {
		r.Seed = v
	}
	return r
}

// schemathesis returns the path of the `st` command, installed by
// deploy/local/schemathesis.sh into .local/venv-schemathesis (idempotent, a
// stamp check when already installed). An install that fails fails the test
// under CI=true and skips it otherwise, like a missing server (testenv.Missing).
func schemathesis(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(harness.RepoRoot(), "deploy", "local", "schemathesis.sh"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		testenv.Missing(t, "Schemathesis (deploy/local/schemathesis.sh)", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String())))
	}
	return strings.TrimSpace(string(out))
}

// TestAPISchemathesis runs Schemathesis against a live order service with the
// OpenAPI document it serves at /openapi.json: generated and
// mutated requests for every documented operation (examples, coverage and
// fuzzing phases) and stateful sequences along the document's links (place →
// read → cancel). It then asserts, from Schemathesis' own JSON report and from
// the HAR record of every request it made:
//   - the run made at least MinRequests requests, tested every operation, and
//     its stateful phase ran;
//   - no check failed (no 5xx, every status, content type, header and body as
//     documented) and no request errored;
//   - every response with a 4xx or 5xx status is application/problem+json;
//
// and, after the run, that the system still works: a normal order is placed and
// CONFIRMED, both outboxes drain to empty with consumer lag 0, nothing is parked
// or in a poison topic, and no order is left PENDING.
func TestAPISchemathesis(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	run := schemathesisRunFromEnv(t)
	st := schemathesis(t)
	const token = "schemathesis-admin"
	s := newStack(t, harness.StackConfig{
		OrderEnv:   []string{"ORDER_ADMIN_TOKEN=" + token},
		PaymentEnv: []string{"PAYMENT_ADMIN_TOKEN=" + token},
	}, harness.Account{CustomerID: "after-fuzz", BalanceCents: 1_000_000, Currency: "EUR"})
	base := "http://" + s.Orders[0].HTTPAddr
	servedDocument(t, base+"/openapi.json")

	dir := filepath.Join(buildDir, "schemathesis", s.Config.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	jsonReport, harReport := filepath.Join(dir, "report.json"), filepath.Join(dir, "requests.har")
	args := []string{"run", base + "/openapi.json",
		"--checks", strings.Join(schemathesisChecks, ","),
		"--phases", "examples,coverage,fuzzing,stateful",
		"--max-examples", strconv.Itoa(run.MaxExamples),
		// One worker: with two, Python 3.11's AST constructor races between
		// Hypothesis' threads (python/cpython#106905) and operations error
		// with "AST constructor recursion depth mismatch"; one is as fast
		// here, where the service and Schemathesis share 2 cores.
		"--workers", "1",
		"--request-timeout", "10",
		// Hypothesis' too_slow health check fails a run whose data generation
		// is slow: a timing, which on 2 shared cores can go either way (the
		// other health checks depend only on the schema and the seed).
		"--suppress-health-check", "too_slow",
		"--wait-for-schema", "10",
		"--header", "Authorization: Bearer " + token,
		"--generation-database", "none",
		"--report", "json,har,junit",
		"--report-dir", dir,
		"--report-json-path", jsonReport,
		"--report-har-path", harReport,
		"--no-color",
	}
	if run.Seed != "random" {
		args = append(args, "--seed", run.Seed)
	}
	cmd := exec.CommandContext(ctxFor(t, 25*time.Minute), st, args...)
	cmd.Dir = dir // Schemathesis keeps its .hypothesis and .schemathesis state in the working directory
	logPath := filepath.Join(dir, "st.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	start := time.Now()
	runErr := cmd.Run()
	_ = logFile.Close()
	took := time.Since(start).Round(100 * time.Millisecond)

	rep, repErr := readSchemathesisReport(jsonReport)
	har, harErr := readHAR(harReport)
	if runErr != nil || repErr != nil || harErr != nil {
		t.Errorf("st run: %v (report: %v, HAR: %v); its output (%s), last lines:\n%s", runErr, repErr, harErr, logPath, tail(logPath, 60))
	}
	if repErr != nil || harErr != nil {
		t.FailNow()
	}
	sum := summarizeHAR(har)
	t.Logf("schemathesis %s, seed %s: %d requests in %s (%d test cases, %d operations tested of %d), statuses %s",
		rep.Version, rep.Seed, sum.requests, took, rep.TestCases.Generated, rep.Operations.Tested, rep.Operations.Selected, sum.statuses())
	t.Logf("schemathesis: %d server errors (%d 5xx seen), %d schema violations, %d errors; reports in %s",
		rep.serverErrors(), sum.serverErrors, rep.schemaViolations(), len(rep.Errors), dir)
	for _, f := range rep.Failures {
		t.Errorf("schemathesis failure %s %s (%s) x%d", f.Code, f.Title, strings.Join(f.Operations, ", "), f.Count)
	}
	for _, e := range rep.Errors {
		t.Errorf("schemathesis error: %s x%d", e.Title, e.Count)
	}
	if sum.requests < run.MinRequests {
		t.Errorf("schemathesis made %d requests, want at least %d", sum.requests, run.MinRequests)
	}
	if sum.serverErrors > 0 {
		t.Errorf("%d responses with a 5xx status (first: %s)", sum.serverErrors, sum.firstServerError)
	}
	if len(sum.notProblem) > 0 {
		t.Errorf("%d error responses are not application/problem+json, e.g. %s", len(sum.notProblem), strings.Join(sum.notProblem[:min(3, len(sum.notProblem))], "; "))
	}
	if rep.Operations.Selected == 0 || rep.Operations.Tested != rep.Operations.Selected {
		t.Errorf("schemathesis tested %d of %d operations (%d errored, %d skipped)",
			rep.Operations.Tested, rep.Operations.Selected, rep.Operations.Errored, rep.Operations.Skipped)
	}
	if st := rep.Phases["stateful"].Status; st != "success" {
		t.Errorf("the stateful phase (place → read → cancel along the document's links) did not run to success: %q (%v)", st, rep.Phases["stateful"].SkipReason)
	}
	if rep.TestCases.WithFailures > 0 && len(rep.Failures) == 0 {
		t.Errorf("schemathesis reports %d test cases with failures", rep.TestCases.WithFailures)
	}
	if t.Failed() {
		t.FailNow()
	}

	// The system still works after thousands of bad requests: a normal order
	// goes through the whole saga, and nothing is stuck anywhere.
	o := place(t, s, "after-fuzz", 1250, "EUR")
	if v := terminal(t, s, o.ID)[o.ID]; v.Status != "CONFIRMED" || !v.Paid {
		t.Fatalf("an order placed after the fuzzing ended %s (paid %v, reason %q), want CONFIRMED", v.Status, v.Paid, v.CancelReason)
	}
	if err := s.WaitDrained(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	stuck := map[string]string{
		"order outbox":         "SELECT COUNT(*) FROM watermill_outbox",
		"order parked events":  "SELECT COUNT(*) FROM outbox_parked",
		"orders still PENDING": "SELECT COUNT(*) FROM orders WHERE status = 'PENDING'",
	}
	for what, q := range stuck {
		assertZero(t, s.OrderDB.QueryRow(q), what)
	}
	assertZero(t, s.PaymentDB.QueryRow("SELECT COUNT(*) FROM watermill_outbox"), "payment outbox")
	assertZero(t, s.PaymentDB.QueryRow("SELECT COUNT(*) FROM outbox_parked"), "payment parked events")
	for _, topic := range []string{s.Topics.OrderPoison, s.Topics.PaymentPoison} {
		msgs, err := s.ReadAll(topic)
		if err != nil {
			t.Fatalf("reading %s: %v", topic, err)
		}
		if len(msgs) > 0 {
			t.Errorf("%d message(s) in the poison topic %s after the fuzzing", len(msgs), topic)
		}
	}
	var orders int
	if err := s.OrderDB.QueryRow("SELECT COUNT(*) FROM orders").Scan(&orders); err != nil {
		t.Fatal(err)
	}
	t.Logf("after the run: order %s CONFIRMED, %d orders in the database, all settled; both outboxes empty, nothing parked or poisoned", o.ID, orders)
}

// servedDocument fails the test unless url answers 200 with a JSON OpenAPI
// 3.x document: without it Schemathesis has nothing to test, and its
// own error would hide the cause.
func servedDocument(t *testing.T, url string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxFor(t, 10*time.Second), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200 with the OpenAPI document (ADR 46)", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") || len(doc.Paths) == 0 {
		t.Fatalf("GET %s: not an OpenAPI 3.x document with paths (openapi %q, %d paths, %v)", url, doc.OpenAPI, len(doc.Paths), err)
	}
}

func assertZero(t *testing.T, row interface{ Scan(...any) error }, what string) {
	t.Helper()
	var n int
	if err := row.Scan(&n); err != nil {
		t.Fatalf("counting %s: %v", what, err)
	}
	if n != 0 {
		t.Errorf("%s: %d row(s) after the fuzzing, want 0", what, n)
	}
}

// schemathesisReport is the part of Schemathesis 4.x's JSON run report
// (--report json) the test reads.
type schemathesisReport struct {
	Version    string `json:"schemathesis_version"`
	Seed       json.Number
	ExitCode   int  `json:"exit_code"`
	Complete   bool `json:"complete"`
	Operations struct {
		Selected, Tested, Errored, Skipped int
	} `json:"operations"`
	Phases map[string]struct {
		Status     string `json:"status"`
		SkipReason any    `json:"skip_reason"`
	} `json:"phases"`
	TestCases struct {
		Generated    int `json:"generated"`
		WithFailures int `json:"with_failures"`
	} `json:"test_cases"`
	Failures []schemathesisFailure `json:"failures"`
	Errors   []struct {
		Title string `json:"title"`
		Count int    `json:"count"`
	} `json:"errors"`
}

// schemathesisFailure is one kind of failed check, with the operations it hit.
type schemathesisFailure struct {
	Type       string   `json:"type"`
	Code       string   `json:"code"`
	Title      string   `json:"title"`
	Count      int      `json:"count"`
	Operations []string `json:"operations"`
}

// serverError reports whether the failure is Schemathesis' "server error"
// (ST101, a 5xx; ST102, a 5xx whose body is not what it claims to be).
func (f schemathesisFailure) serverError() bool { return f.Code == "ST101" || f.Code == "ST102" }

// serverErrors and schemaViolations split the failures: a 5xx, or a response
// the document does not describe (status, content type, headers, body) or any
// other failed check.
func (r *schemathesisReport) serverErrors() (n int) {
	for _, f := range r.Failures {
		if f.serverError() {
			n += f.Count
		}
	}
	return n
}

func (r *schemathesisReport) schemaViolations() (n int) {
	for _, f := range r.Failures {
		if !f.serverError() {
			n += f.Count
		}
	}
	return n
}

func readSchemathesisReport(path string) (*schemathesisReport, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r schemathesisReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Version == "" || r.Phases == nil {
		return nil, fmt.Errorf("%s: not a Schemathesis 4.x JSON report", path)
	}
	return &r, nil
}

// harEntry is one request and its response in the HAR file Schemathesis writes
// (--report har).
type harEntry struct {
	Request struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	Response struct {
		Status  int `json:"status"`
		Headers []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"headers"`
	} `json:"response"`
}

func (e harEntry) header(name string) string {
	for _, h := range e.Response.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

func readHAR(path string) ([]harEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var h struct {
		Log struct {
			Entries []harEntry `json:"entries"`
		} `json:"log"`
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h.Log.Entries, nil
}

// harSummary is what the HAR record says about every response.
type harSummary struct {
	requests, serverErrors int
	byStatus               map[int]int
	firstServerError       string
	// notProblem lists the 4xx and 5xx responses whose media type is not
	// application/problem+json (RFC 9457, package problem).
	notProblem []string
}

func summarizeHAR(entries []harEntry) harSummary {
	s := harSummary{byStatus: map[int]int{}}
	for _, e := range entries {
		status := e.Response.Status
		if status == 0 { // no response: a network error, which the report counts
			continue
		}
		s.requests++
		s.byStatus[status]++
		what := e.Request.Method + " " + e.Request.URL + " → " + strconv.Itoa(status)
		if status >= 500 {
			s.serverErrors++
			if s.firstServerError == "" {
				s.firstServerError = what
			}
		}
		if status >= 400 {
			ct := e.header("Content-Type")
			if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != problem.ContentType {
				s.notProblem = append(s.notProblem, fmt.Sprintf("%s (%q)", what, ct))
			}
		}
	}
	return s
}

func (s harSummary) statuses() string {
	codes := make([]int, 0, len(s.byStatus))
	for c := range s.byStatus {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d×%d", c, s.byStatus[c])
	}
	return strings.Join(parts, " ")
}

// tail returns the last n lines of a file (for a failure message).
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
