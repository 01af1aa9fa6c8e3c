// Package local_test checks deploy/local's scripts that need no server.
package local_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPrereqs runs prereqs.sh with a PATH of fake tools (a Go, a Java, a Maven
// and a curl that only say their version) and the ports of a listener the test
// holds or frees: each missing prerequisite is named, with the Debian command
// that brings it, and the script fails; with everything there it passes.
func TestPrereqs(t *testing.T) {
	t.Parallel()
	gomod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var goWant string
	for _, line := range strings.Split(string(gomod), "\n") {
		if v, ok := strings.CutPrefix(line, "go "); ok {
			goWant = v
		}
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() }) // not defer: the parallel subtests run after this function returns
	takenPort := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)

	good := map[string]string{
		"go":   "echo go" + goWant,
		"java": `echo 'openjdk version "17.0.15" 2025-04-15' >&2`,
		"mvn":  "true",
		"curl": "true",
	}
	tests := []struct {
		name    string
		tools   map[string]string // overrides of good; "" removes the tool
		env     []string
		want    []string // lines the output must contain; none: must pass
		wantErr bool
	}{
		{name: "everything there"},
		{name: "old Go", tools: map[string]string{"go": "echo go1.24.1"}, wantErr: true,
			want: []string{"Go " + goWant + " or newer (go.mod): found 1.24.1"}},
		{name: "no Go", tools: map[string]string{"go": ""}, wantErr: true,
			want: []string{"Go " + goWant + " or newer (go.mod): not found"}},
		{name: "Java 11", tools: map[string]string{"java": `echo 'openjdk version "11.0.2" 2019-01-15' >&2`}, wantErr: true,
			want: []string{"Java 17 or newer", `"11.0.2"`, "apt-get install -y openjdk-17-jre-headless"}},
		{name: "Java 8 calls itself 1.8", tools: map[string]string{"java": `echo 'java version "1.8.0_292"' >&2`}, wantErr: true,
			want: []string{"Java 17 or newer", `"1.8.0_292"`}},
		{name: "Java 21", tools: map[string]string{"java": `echo 'openjdk version "21" 2023-09-19' >&2`}},
		{name: "no Maven, no jars yet", tools: map[string]string{"mvn": ""}, wantErr: true,
			want: []string{"Maven", "apt-get install -y maven"}},
		{name: "no curl", tools: map[string]string{"curl": ""}, wantErr: true,
			want: []string{"curl", "apt-get install -y curl"}},
		{name: "a database port taken", env: []string{"ORDER_DB_PORT=" + takenPort}, wantErr: true,
			want: []string{"port " + takenPort + ", which order-db listens on, is taken"}},
		{name: "a service port taken", env: []string{"PAYMENT_HTTP_ADDR=127.0.0.1:" + takenPort}, wantErr: true,
			want: []string{"port " + takenPort + ", which the payment service listens on, is taken"}},
		{name: "everything missing at once", tools: map[string]string{"go": "", "java": "", "curl": ""}, wantErr: true,
			want: []string{"Go " + goWant, "Java 17", "curl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bin := t.TempDir()
			// The system's own tools the scripts use, and the fakes.
			for _, tool := range []string{"bash", "sed", "sort", "uniq", "awk", "head", "grep", "id", "dirname", "cat", "mkdir"} {
				path, err := exec.LookPath(tool)
				if err != nil {
					t.Fatalf("%s, which prereqs.sh needs, is not on PATH: %v", tool, err)
				}
				if err := os.Symlink(path, filepath.Join(bin, tool)); err != nil {
					t.Fatal(err)
				}
			}
			for tool, script := range good {
				if s, ok := tt.tools[tool]; ok {
					script = s
				}
				if script == "" {
					continue
				}
				if err := os.WriteFile(filepath.Join(bin, tool), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(filepath.Join(bin, "bash"), "prereqs.sh")
			cmd.Env = append([]string{
				"PATH=" + bin,
				"HOME=" + t.TempDir(),
				"ONCEFLOW_INFRA_DIR=" + t.TempDir(),
				"ONCEFLOW_KAFKA_LIBS=" + t.TempDir(), // empty: the jars are still to fetch
				"ORDER_DB_PORT=" + freePort(t), "PAYMENT_DB_PORT=" + freePort(t),
				"KAFKA_PORT=" + freePort(t), "KAFKA_CONTROLLER_PORT=" + freePort(t),
				"ORDER_HTTP_ADDR=127.0.0.1:" + freePort(t), "PAYMENT_HTTP_ADDR=127.0.0.1:" + freePort(t),
			}, tt.env...) // later entries win
			out, err := cmd.CombinedOutput()
			if tt.wantErr != (err != nil) {
				t.Fatalf("prereqs.sh: err %v, want an error: %v\n%s", err, tt.wantErr, out)
			}
			for _, want := range tt.want {
				if !strings.Contains(string(out), want) {
					t.Errorf("the output does not say %q:\n%s", want, out)
				}
			}
		})
	}
}

// freePort returns a port nothing listens on (just now).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
