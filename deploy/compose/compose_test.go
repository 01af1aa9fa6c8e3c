package compose_test

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/deploy/compose"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/messaging"
)

// systemTopics is every topic the two services create at start (their
// service.go), with its partition count and settings.
func systemTopics() []messaging.TopicSpec {
	return []messaging.TopicSpec{
		{Name: events.TopicOrders, Partitions: events.DefaultPartitions},
		{Name: events.TopicPayments, Partitions: events.DefaultPartitions},
		messaging.PoisonTopicSpec(events.TopicOrderPoison),
		messaging.PoisonTopicSpec(events.TopicPaymentPoison),
	}
}

// TestComposeFile: compose.yaml is valid for the Compose specification, has every
// service the system needs (and Prometheus and Grafana, ADR 40) with a
// healthcheck, starts them in a safe order, and publishes the contract ports,
// each once.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	tests := []struct {
		service    string
		hostPort   string // "" for none
		healthy    bool   // has a healthcheck
		dependsOn  map[string]string
		needsBuild bool
	}{
		{"order-db", "3307", true, nil, false},
		{"payment-db", "3308", true, nil, false},
		{"kafka", "9092", true, nil, false},
		{"kafka-init", "", false, map[string]string{"kafka": "service_healthy"}, false},
		{"payment", "8081", true, map[string]string{"payment-db": "service_healthy", "kafka": "service_healthy",
			"kafka-init": "service_completed_successfully"}, true},
		{"payment-seed", "", false, map[string]string{"payment": "service_healthy"}, false},
		{"order", "8080", true, map[string]string{"order-db": "service_healthy", "kafka": "service_healthy",
			"kafka-init": "service_completed_successfully", "payment": "service_healthy"}, true},
		{"prometheus", "9090", true, nil, false},
		{"grafana", "3000", true, map[string]string{"prometheus": "service_healthy"}, false},
	}
	published := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			s, ok := p.Services[tt.service]
			if !ok {
				t.Fatalf("no service %q", tt.service)
			}
			if tt.healthy && (s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 || s.HealthCheck.Disable) {
				t.Errorf("no healthcheck")
			}
			for dep, cond := range tt.dependsOn {
				if got := s.DependsOn[dep].Condition; got != cond {
					t.Errorf("depends_on %s: condition %q, want %q", dep, got, cond)
				}
			}
			if tt.needsBuild && (s.Build == nil || !strings.HasSuffix(s.Build.Dockerfile, "deploy/compose/Dockerfile")) {
				t.Errorf("not built from deploy/compose/Dockerfile")
			}
			var ports []string
			for _, port := range s.Ports {
				ports = append(ports, port.Published)
				if other, dup := published[port.Published]; dup {
					t.Errorf("host port %s also published by %s", port.Published, other)
				}
				published[port.Published] = tt.service
			}
			if tt.hostPort != "" && (len(ports) != 1 || ports[0] != tt.hostPort) {
				t.Errorf("published ports %v, want [%s]", ports, tt.hostPort)
			}
		})
	}
	for _, want := range []string{"mariadb:11.4", "apache/kafka:3.9.1"} {
		found := false
		for _, s := range p.Services {
			found = found || s.Image == want
		}
		if !found {
			t.Errorf("no service uses image %s", want)
		}
	}
}

// TestComposeCreatesTheTopics: the one-shot topic step creates exactly
// systemTopics(), with their partition counts.
func TestComposeCreatesTheTopics(t *testing.T) {
	t.Parallel()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Join(p.Services["kafka-init"].Command, " ")
	for _, topic := range systemTopics() {
		want := topic.Name + ":" + itoa(topic.Partitions)
		if !strings.Contains(script, want) {
			t.Errorf("kafka-init does not create %s (looked for %q in %q)", topic.Name, want, script)
		}
	}
}

// TestComposeKeepsPoisonForever: kafka-init gives each poison topic of
// systemTopics() its settings (retention.ms=-1), on creation and on a topic
// that exists already.
func TestComposeKeepsPoisonForever(t *testing.T) {
	t.Parallel()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Join(p.Services["kafka-init"].Command, " ")
	for _, topic := range systemTopics() {
		for k, v := range topic.Config {
			if !strings.Contains(script, "--config "+k+"="+v) || !strings.Contains(script, "--add-config "+k+"="+v) {
				t.Errorf("kafka-init does not set %s=%s on %s", k, v, topic.Name)
			}
		}
	}
	if !strings.Contains(script, "retention.ms=-1") {
		t.Error("kafka-init sets no unlimited retention")
	}
}

// TestComposeSeedsTheDemoAccounts: the demo customers come from the one-shot
// payment-seed step with deploy/demo/accounts.sql, not from a migration.
func TestComposeSeedsTheDemoAccounts(t *testing.T) {
	t.Parallel()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := p.Services["payment-seed"]
	if !ok {
		t.Fatal("no payment-seed service")
	}
	mounted := false
	for _, v := range s.Volumes {
		mounted = mounted || strings.HasSuffix(v.Source, "deploy/demo/accounts.sql")
	}
	if !mounted || !strings.Contains(strings.Join(s.Command, " "), "/seed/accounts.sql") {
		t.Fatalf("payment-seed does not load deploy/demo/accounts.sql: volumes %+v, command %q", s.Volumes, s.Command)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// TestDockerBuildCommand runs the Dockerfile's `go build` line, with its flags and
// CGO_ENABLED=0, for both services, and checks that the results are static
// executables (what the distroless image needs) without the fault-injection
// code. It does not run Docker.
func TestDockerBuildCommand(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds both services: skipped with -short")
	}
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 .*go build .* -o /out/service \./services/\$\{SERVICE\})$`).FindSubmatch(dockerfile)
	if m == nil {
		t.Fatal("the Dockerfile has no `RUN CGO_ENABLED=0 ... go build ... -o /out/service ./services/${SERVICE}` line")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	for _, svc := range []string{"order", "payment"} {
		t.Run(svc, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), svc)
			line := strings.NewReplacer("/out/service", out, "${SERVICE}", svc).Replace(string(m[1]))
			cmd := exec.Command("bash", "-c", line) // the RUN line, as the image's shell runs it
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
			}
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					t.Fatalf("%s is dynamically linked; the distroless static image cannot run it", svc)
				}
			}
			// No fault-injection code (ADR 21): its log line and its switches' names
			// are string data that even a stripped binary keeps.
			bin, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, mark := range []string{"FAULT INJECTION", "REFUSE_MID_BATCH", "DISABLE_INBOX"} {
				if bytes.Contains(bin, []byte(mark)) {
					t.Errorf("the %s image binary contains %q: it was built with the fault-injection code", svc, mark)
				}
			}
		})
	}
}

// TestComposeLeastPrivilege (ADR 0049): each database container creates its
// service's users from deploy/dbusers on first start, and each service
// migrates as the migration user and runs as the service user of its own
// database; no container uses the test superuser onceflow.
func TestComposeLeastPrivilege(t *testing.T) {
	t.Parallel()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ db, service, prefix, schema string }{
		{"order-db", "order", "ORDER_", "orders"},
		{"payment-db", "payment", "PAYMENT_", "payments"},
	}
	for _, tt := range tests {
		mounted := false
		for _, v := range p.Services[tt.db].Volumes {
			mounted = mounted || strings.HasSuffix(v.Source, "deploy/dbusers/"+tt.db+".sql") &&
				strings.HasPrefix(v.Target, "/docker-entrypoint-initdb.d/")
		}
		if !mounted {
			t.Errorf("%s does not run deploy/dbusers/%s.sql at its initialisation: %+v", tt.db, tt.db, p.Services[tt.db].Volumes)
		}
		env := p.Services[tt.service].Environment
		for variable, user := range map[string]string{"DB_DSN": tt.schema + "_app", "DB_MIGRATE_DSN": tt.schema + "_migrate"} {
			var v string
			if p := env[tt.prefix+variable]; p != nil {
				v = *p
			}
			if !strings.HasPrefix(v, user+":") || !strings.HasSuffix(v, "/"+tt.schema) {
				t.Errorf("%s: %s%s = %q, want user %s on database %s", tt.service, tt.prefix, variable, v, user, tt.schema)
			}
		}
	}
	for name, s := range p.Services {
		for k, v := range s.Environment {
			if v != nil && strings.Contains(*v, "onceflow:") || k == "MARIADB_USER" {
				t.Errorf("%s: %s uses the test superuser (or creates a user of its own)", name, k)
			}
		}
	}
}
