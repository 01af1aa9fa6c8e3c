package compose_test

import (
	"bufio"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/onceflow/onceflow/deploy/compose"
)

// TestComposeRootEntryPoint (ADR 0056): the repository root's compose.yaml
// includes deploy/compose/compose.yaml under the same project name, and with
// each profile both give the same services, so `docker compose up` from the
// root runs what `-f deploy/compose/compose.yaml` runs: the included file's
// relative paths resolve against its own directory (the build context is the
// repository root, where the Dockerfile is found).
func TestComposeRootEntryPoint(t *testing.T) {
	t.Parallel()
	var root, included struct {
		Name    string `yaml:"name"`
		Include []string
	}
	readYAML(t, "compose.yaml", &root)
	readYAML(t, "deploy/compose/compose.yaml", &included)
	if root.Name != "onceflow" || included.Name != root.Name {
		t.Errorf("project names %q (root) and %q (deploy/compose), want onceflow for both", root.Name, included.Name)
	}
	if !slices.Equal(root.Include, []string{"deploy/compose/compose.yaml"}) {
		t.Errorf("the root compose.yaml includes %v, want [deploy/compose/compose.yaml]", root.Include)
	}
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, profiles := range [][]string{nil, {"cluster"}, {"*"}} {
		fromRoot, err := compose.Load(context.Background(), profiles...)
		if err != nil {
			t.Fatalf("profiles %v: the root compose.yaml does not load: %v", profiles, err)
		}
		direct, err := compose.LoadFile(context.Background(), compose.File(), profiles...)
		if err != nil {
			t.Fatalf("profiles %v: deploy/compose/compose.yaml does not load: %v", profiles, err)
		}
		if got, want := fromRoot.ServiceNames(), direct.ServiceNames(); !slices.Equal(got, want) {
			t.Errorf("profiles %v: services %v from the root, %v from deploy/compose", profiles, got, want)
		}
		for name, s := range fromRoot.Services {
			if !reflect.DeepEqual(s, direct.Services[name]) {
				t.Errorf("profiles %v: %s differs between the root and deploy/compose:\n%+v\n%+v", profiles, name, s, direct.Services[name])
			}
			if s.Build == nil {
				continue
			}
			if s.Build.Context != repo {
				t.Errorf("%s: build context %s, want the repository root %s", name, s.Build.Context, repo)
			}
			if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("%s: Dockerfile: %v", name, err)
			}
		}
	}
}

// TestComposeWaitsForHealth: `docker compose up --wait` (make up) returns
// once every long-running service is healthy and counts any other state as a
// failure, an exited one-shot step included unless a long-running service
// waits for it to complete (docker/compose#10596). So, with each profile, every
// service has a healthcheck or is a one-shot step (restart "no") that a
// long-running service depends on with service_completed_successfully.
func TestComposeWaitsForHealth(t *testing.T) {
	t.Parallel()
	for _, profiles := range [][]string{nil, {"cluster"}} {
		p, err := compose.Load(context.Background(), profiles...)
		if err != nil {
			t.Fatal(err)
		}
		healthy := func(s types.ServiceConfig) bool {
			return s.HealthCheck != nil && len(s.HealthCheck.Test) > 0 && !s.HealthCheck.Disable
		}
		for name, s := range p.Services {
			if healthy(s) {
				continue
			}
			if s.Restart != types.RestartPolicyNo {
				t.Errorf("profiles %v: %s has no healthcheck and is not a one-shot step (restart %q)", profiles, name, s.Restart)
				continue
			}
			var waiters []string
			for other, o := range p.Services {
				if healthy(o) && o.DependsOn[name].Condition == types.ServiceConditionCompletedSuccessfully {
					waiters = append(waiters, other)
				}
			}
			if len(waiters) == 0 {
				t.Errorf("profiles %v: no long-running service waits for the one-shot %s to complete: `up --wait` would fail when it exits", profiles, name)
			}
		}
	}
}

// TestComposeTraces (ADR 0056): a trace backend that takes OTLP/HTTP (Jaeger
// v2, not the end-of-life all-in-one image) runs in compose, with a
// healthcheck and its UI published, and both services export their spans to it
// through the standard variable pkg/tracing reads, and start after it: one
// order's trace, across both services, is in one place.
func TestComposeTraces(t *testing.T) {
	t.Parallel()
	p := loadProject(t)
	var backend string
	for name, s := range p.Services {
		if strings.HasPrefix(s.Image, "jaegertracing/") {
			backend = name
			if !strings.HasPrefix(s.Image, "jaegertracing/jaeger:2.") {
				t.Errorf("%s: image %s, want jaegertracing/jaeger:2.<minor>.<patch>", name, s.Image)
			}
		}
	}
	if backend == "" {
		t.Fatal("no jaegertracing/jaeger service")
	}
	j := p.Services[backend]
	if j.HealthCheck == nil || len(j.HealthCheck.Test) == 0 {
		t.Errorf("%s: no healthcheck", backend)
	}
	ui := false
	for _, port := range j.Ports {
		ui = ui || (port.Target == 16686 && port.Published == "16686")
	}
	if !ui {
		t.Errorf("%s does not publish its UI on 16686: %+v", backend, j.Ports)
	}
	for _, svc := range []string{"order", "payment"} {
		s := p.Services[svc]
		endpoint := envValue(s, "OTEL_EXPORTER_OTLP_ENDPOINT")
		u, err := url.Parse(endpoint)
		if err != nil || u.Scheme != "http" || u.Port() != "4318" || u.Path != "" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT=%q, want http://<backend>:4318 (OTLP over HTTP, pkg/tracing)", svc, endpoint)
			continue
		}
		if got := resolve(p, u.Hostname()); !slices.Equal(got, []string{backend}) {
			t.Errorf("%s exports spans to %s, which reaches %v, not %s", svc, u.Hostname(), got, backend)
		}
		if s.DependsOn[backend].Condition != types.ServiceConditionHealthy {
			t.Errorf("%s does not wait for %s to be healthy", svc, backend)
		}
	}
}

// TestDockerIgnore: the build context of the services (the repository root)
// has a .dockerignore that keeps the local servers' data and jars (.local),
// build output and git history out of it, and takes away no top-level entry
// that a package of the services' builds lives in (go list -deps), nor go.mod
// or go.sum. Patterns are matched against top-level names only, as
// filepath.Match (Docker's matcher for a pattern without **) does.
func TestDockerIgnore(t *testing.T) {
	t.Parallel()
	p := loadProject(t)
	context := p.Services["order"].Build.Context
	f, err := os.Open(filepath.Join(context, ".dockerignore"))
	if err != nil {
		t.Fatalf("no .dockerignore in the build context: %v", err)
	}
	defer f.Close()
	var patterns []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, strings.Trim(line, "/"))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	ignored := func(top string) string {
		for _, pat := range patterns {
			if ok, _ := filepath.Match(pat, top); ok {
				return pat
			}
		}
		return ""
	}
	for _, top := range []string{".local", "build", ".git"} {
		if ignored(top) == "" {
			t.Errorf(".dockerignore does not exclude %s", top)
		}
	}

	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./services/...")
	cmd.Dir = context
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needed := map[string]bool{"go.mod": true, "go.sum": true}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(context, dir)
		if err != nil || rel == "." {
			continue
		}
		needed[strings.Split(filepath.ToSlash(rel), "/")[0]] = true
	}
	if !needed["services"] || !needed["pkg"] {
		t.Fatalf("go list found the packages of %v only", needed)
	}
	for top := range needed {
		if pat := ignored(top); pat != "" {
			t.Errorf(".dockerignore pattern %q excludes %s, which the services' build needs", pat, top)
		}
	}
}

// TestMakeUpURLs: every address `make up` prints once compose is healthy is a
// port that a compose service publishes on 127.0.0.1, and the five it promises
// (API, console, Grafana, Prometheus, traces) are among them.
func TestMakeUpURLs(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	recipe := regexp.MustCompile(`(?ms)^up:.*?\n\n`).Find(b)
	if recipe == nil {
		t.Fatal("no up: target in the Makefile")
	}
	p := loadProject(t)
	published := map[string]string{} // host port -> service
	for name, s := range p.Services {
		for _, port := range s.Ports {
			if port.HostIP == "127.0.0.1" {
				published[port.Published] = name
			}
		}
	}
	shown := map[string]bool{} // services whose address make up prints
	for _, m := range regexp.MustCompile(`http://127\.0\.0\.1:(\d+)\S*`).FindAllStringSubmatch(string(recipe), -1) {
		if published[m[1]] == "" {
			t.Errorf("make up prints %s, but no compose service publishes 127.0.0.1:%s", m[0], m[1])
		}
		shown[published[m[1]]] = true
	}
	for _, want := range []string{"order", "grafana", "prometheus", "jaeger"} {
		if !shown[want] {
			t.Errorf("make up prints no address of the %s service", want)
		}
	}
	if !strings.Contains(string(recipe), "--wait") {
		t.Error("make up does not wait for health (docker compose up --wait)")
	}
}
