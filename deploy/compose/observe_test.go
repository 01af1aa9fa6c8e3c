package compose_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/onceflow/onceflow/deploy/compose"
)

// onceflowMetrics are the metric names issue 14 fixes: the alert rules,
// the dashboard and other tools query exactly these, so neither may use another
// onceflow_ name. A histogram's _bucket/_sum/_count series count as its name.
var onceflowMetrics = []string{
	"onceflow_outbox_pending_rows",
	"onceflow_outbox_oldest_age_seconds",
	"onceflow_outbox_forwarded_total",
	"onceflow_outbox_parked_rows",
	"onceflow_consumer_lag_messages",
	"onceflow_handler_retries_total",
	"onceflow_poison_messages_total",
	"onceflow_inbox_duplicates_total",
	"onceflow_saga_outcomes_total",
	"onceflow_http_requests_total",
	"onceflow_http_request_duration_seconds",
	"onceflow_orders_oldest_not_done_age_seconds",
	"onceflow_audit_violations_total",
	"onceflow_audit_checked_timestamp_seconds",
}

// wantAlerts are the alerts deploy/prometheus/alerts.yml must define.
var wantAlerts = []string{
	"OnceflowServiceDown", "OnceflowOutboxStale", "OnceflowConsumerLagGrowing",
	"OnceflowPoisonMessages", "OnceflowRefundsFailing", "OnceflowOrdersStuck",
	"OnceflowAuditViolation",
}

var metricRef = regexp.MustCompile(`\bonceflow_[a-z_]+`)

// metricsIn returns the onceflow_ metric names expr refers to, histogram
// suffixes folded into their metric, and the names that are not in
// onceflowMetrics.
func metricsIn(expr string) (known, unknown []string) {
	for _, m := range metricRef.FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(m, suffix); ok && contains(onceflowMetrics, base) {
				m = base
			}
		}
		if contains(onceflowMetrics, m) {
			known = append(known, m)
		} else {
			unknown = append(unknown, m)
		}
	}
	return known, unknown
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// readYAML decodes the repository file rel (relative to the repository root)
// into v.
func readYAML(t *testing.T, rel string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

func loadProject(t *testing.T) *types.Project {
	t.Helper()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p
}

// mounts maps a service's bind-mount targets to their (absolute) sources.
func mounts(s types.ServiceConfig) map[string]string {
	m := map[string]string{}
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind {
			m[v.Target] = v.Source
		}
	}
	return m
}

// TestComposeMountsExist: every file or directory compose bind-mounts exists in
// the repository (a renamed config file would otherwise become an empty
// directory in the container), and Prometheus and Grafana get their configuration
// from deploy/prometheus and deploy/grafana, read-only, from pinned images.
func TestComposeMountsExist(t *testing.T) {
	t.Parallel()
	p := loadProject(t)
	for name, s := range p.Services {
		for target, source := range mounts(s) {
			if _, err := os.Stat(source); err != nil {
				t.Errorf("%s mounts %s at %s: %v", name, source, target, err)
			}
		}
	}
	tests := []struct {
		service, imagePrefix string
		mounts               map[string]string // target -> source suffix
	}{
		{"prometheus", "prom/prometheus:v", map[string]string{
			"/etc/prometheus/prometheus.yml": "deploy/prometheus/prometheus.yml",
			"/etc/prometheus/alerts.yml":     "deploy/prometheus/alerts.yml",
		}},
		{"grafana", "grafana/grafana:", map[string]string{
			"/etc/grafana/provisioning": "deploy/grafana/provisioning",
			"/etc/grafana/dashboards":   "deploy/grafana/dashboards",
		}},
	}
	for _, tt := range tests {
		s, ok := p.Services[tt.service]
		if !ok {
			t.Errorf("no service %q", tt.service)
			continue
		}
		if !strings.HasPrefix(s.Image, tt.imagePrefix) || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s: image %q, want a pinned %s<version>", tt.service, s.Image, tt.imagePrefix)
		}
		got := mounts(s)
		for target, suffix := range tt.mounts {
			if !strings.HasSuffix(filepath.ToSlash(got[target]), suffix) {
				t.Errorf("%s: %s is mounted from %q, want .../%s", tt.service, target, got[target], suffix)
			}
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && !v.ReadOnly {
				t.Errorf("%s: bind mount %s is writable; configuration is mounted read-only", tt.service, v.Target)
			}
		}
	}
}

type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// TestPrometheusConfigMatchesCompose: deploy/prometheus/prometheus.yml scrapes
// each service as job <service> at <service>:<the port its HTTP_ADDR listens on>
// in compose, on /metrics, and reads its rules from where compose mounts
// alerts.yml (deploy/local/observe.sh rewrites exactly these literals).
func TestPrometheusConfigMatchesCompose(t *testing.T) {
	t.Parallel()
	p := loadProject(t)
	var cfg promConfig
	readYAML(t, "deploy/prometheus/prometheus.yml", &cfg)
	jobs := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s, want /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			jobs[sc.JobName] = append(jobs[sc.JobName], st.Targets...)
		}
	}
	for _, svc := range []string{"order", "payment"} {
		targets := jobs[svc]
		if len(targets) != 1 {
			t.Errorf("job %s has targets %v, want one", svc, targets)
			continue
		}
		host, port, _ := strings.Cut(targets[0], ":")
		s, ok := p.Services[host]
		if !ok || host != svc {
			t.Errorf("job %s scrapes %s, which is not the compose service %s", svc, targets[0], svc)
			continue
		}
		var addr string
		if v := s.Environment[strings.ToUpper(svc)+"_HTTP_ADDR"]; v != nil {
			addr = *v
		}
		if !strings.HasSuffix(addr, ":"+port) {
			t.Errorf("job %s scrapes port %s, but compose's %s_HTTP_ADDR is %q", svc, port, strings.ToUpper(svc), addr)
		}
	}
	promMounts := mounts(p.Services["prometheus"])
	if len(cfg.RuleFiles) == 0 {
		t.Error("no rule_files")
	}
	for _, rf := range cfg.RuleFiles {
		if _, ok := promMounts[rf]; !ok {
			t.Errorf("rule file %s is not mounted into the prometheus service (mounts %v)", rf, promMounts)
		}
	}
}

// angularPanels are the AngularJS panel types of Grafana's core and of the
// best-known plugins: Grafana 12 removed AngularJS support (ADR 56).
var angularPanels = map[string]bool{
	"graph": true, "singlestat": true, "table-old": true,
	"grafana-piechart-panel": true, "grafana-worldmap-panel": true,
}

type dashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		ID         int    `json:"id"`
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr       string `json:"expr"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestGrafanaProvisioning: the provisioned datasource points at compose's
// Prometheus; the dashboard provider reads the directory compose mounts; the
// dashboard JSON is valid, every query uses that datasource, refers only to the
// issue's metric names, and together the panels show every one of them.
func TestGrafanaProvisioning(t *testing.T) {
	t.Parallel()
	p := loadProject(t)
	var ds struct {
		Datasources []struct {
			UID, Type, URL string
		} `yaml:"datasources"`
	}
	readYAML(t, "deploy/grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("want one prometheus datasource, got %+v", ds.Datasources)
	}
	uid := ds.Datasources[0].UID
	if want := "http://prometheus:9090"; ds.Datasources[0].URL != want {
		t.Errorf("datasource URL %q, want %q", ds.Datasources[0].URL, want)
	}
	listens := false
	for _, port := range p.Services["prometheus"].Ports {
		listens = listens || port.Target == 9090
	}
	if !listens {
		t.Error("the prometheus service does not expose port 9090")
	}

	var providers struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "deploy/grafana/provisioning/dashboards/onceflow.yml", &providers)
	if len(providers.Providers) != 1 {
		t.Fatalf("want one dashboard provider, got %+v", providers.Providers)
	}
	gm := mounts(p.Services["grafana"])
	if gm[providers.Providers[0].Options.Path] == "" {
		t.Errorf("the dashboard provider reads %+v, which grafana does not mount (mounts %v)", providers.Providers, gm)
	}
	if home := p.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home == nil ||
		filepath.ToSlash(filepath.Dir(*home)) != providers.Providers[0].Options.Path {
		t.Errorf("the home dashboard %v is not in the provisioned directory", home)
	}

	b, err := os.ReadFile(filepath.Join("..", "grafana", "dashboards", "onceflow.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("onceflow.json: %v", err)
	}
	if d.UID != "onceflow" {
		t.Errorf("dashboard uid %q, want onceflow (docs/running.md and docs/operating.md link /d/onceflow)", d.UID)
	}
	ids := map[int]bool{}
	shown := map[string]bool{}
	for _, panel := range d.Panels {
		if ids[panel.ID] {
			t.Errorf("panel id %d used twice", panel.ID)
		}
		ids[panel.ID] = true
		if angularPanels[panel.Type] {
			t.Errorf("panel %q is of the AngularJS type %q: Grafana 12 and later dropped AngularJS", panel.Title, panel.Type)
		}
		if panel.Datasource.UID != uid || len(panel.Targets) == 0 {
			t.Errorf("panel %q: datasource %q, %d queries; want datasource %q and a query", panel.Title, panel.Datasource.UID, len(panel.Targets), uid)
		}
		for _, q := range panel.Targets {
			if q.Datasource.UID != uid || strings.Count(q.Expr, "(") != strings.Count(q.Expr, ")") {
				t.Errorf("panel %q: query %q (datasource %q) is malformed", panel.Title, q.Expr, q.Datasource.UID)
			}
			known, unknown := metricsIn(q.Expr)
			if len(unknown) > 0 {
				t.Errorf("panel %q queries %v, not metric names of issue 14", panel.Title, unknown)
			}
			for _, m := range known {
				shown[m] = true
			}
		}
	}
	for _, m := range onceflowMetrics {
		if !shown[m] {
			t.Errorf("no dashboard panel shows %s", m)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestAlertRulesAreComplete: alerts.yml defines exactly the wanted alerts, each
// with a severity and a summary, querying only issue 14's metric names (or up);
// alerts_test.yml tests alerts.yml and has, for every alert, a case where it
// fires and one where it does not. promtool itself runs the tests (make
// test-alerts); this test keeps them from being dropped.
func TestAlertRulesAreComplete(t *testing.T) {
	t.Parallel()
	var rules ruleFile
	readYAML(t, "deploy/prometheus/alerts.yml", &rules)
	var got []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			got = append(got, r.Alert)
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary annotation", r.Alert)
			}
			if _, unknown := metricsIn(r.Expr); len(unknown) > 0 {
				t.Errorf("%s queries %v, not metric names of issue 14", r.Alert, unknown)
			}
		}
	}
	sort.Strings(got)
	want := append([]string(nil), wantAlerts...)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("alerts.yml defines %v, want %v", got, want)
	}

	var tests ruleTests
	readYAML(t, "deploy/prometheus/alerts_test.yml", &tests)
	if len(tests.RuleFiles) != 1 || tests.RuleFiles[0] != "alerts.yml" {
		t.Errorf("alerts_test.yml tests %v, want [alerts.yml]", tests.RuleFiles)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, a := range wantAlerts {
		if !fires[a] || !quiet[a] {
			t.Errorf("alerts_test.yml: %s has a firing case: %v, a not-firing case: %v; want both", a, fires[a], quiet[a])
		}
	}
}
