package harness

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestInfraKafkaModes runs infra.sh's commands that start nothing (config,
// status, and starts refused before anything runs): the three-node cluster's
// settings and ports, the single node's unchanged ones, and the
// mistakes it must refuse with a clear message. Needs bash, no server.
func TestInfraKafkaModes(t *testing.T) {
	// No jars: a start that should be refused but is not cannot start a broker.
	t.Setenv("ONCEFLOW_KAFKA_LIBS", t.TempDir())
	cluster := func(dir string) *Infra {
		return &Infra{Dir: dir, KafkaNodes: 3, OrderDBPort: 33307, PaymentDBPort: 33308, KafkaPort: 39092, KafkaControllerPort: 39192}
	}
	single := func(dir string) *Infra {
		return &Infra{Dir: dir, KafkaNodes: 1, OrderDBPort: 33307, PaymentDBPort: 33308, KafkaPort: 39092, KafkaControllerPort: 39093}
	}
	tests := []infraCase{
		{name: "cluster node config", infra: cluster, args: []string{"config", "kafka-2"}, want: []string{
			"node.id=2",
			"controller.quorum.voters=1@127.0.0.1:39192,2@127.0.0.1:39193,3@127.0.0.1:39194",
			"listeners=PLAINTEXT://127.0.0.1:39093,CONTROLLER://127.0.0.1:39193",
			"advertised.listeners=PLAINTEXT://127.0.0.1:39093",
			"log.dirs=" + "DIR/kafka-2/data",
			"default.replication.factor=3",
			"min.insync.replicas=2",
			"unclean.leader.election.enable=false",
			"offsets.topic.replication.factor=3",
			"transaction.state.log.replication.factor=3",
			"transaction.state.log.min.isr=2",
			"share.coordinator.state.topic.replication.factor=3",
			"share.coordinator.state.topic.min.isr=2",
		}},
		{name: "single node config", infra: single, args: []string{"config", "kafka"}, want: []string{
			"node.id=1",
			"controller.quorum.voters=1@127.0.0.1:39093",
			"listeners=PLAINTEXT://127.0.0.1:39092,CONTROLLER://127.0.0.1:39093",
			"default.replication.factor=1",
			"min.insync.replicas=1",
			"offsets.topic.replication.factor=1",
			"share.coordinator.state.topic.replication.factor=1",
		}},
		{name: "cluster status lists three nodes", infra: cluster, args: []string{"status"}, want: []string{
			"kafka-1            down    pid=-        127.0.0.1:39092",
			"kafka-2            down    pid=-        127.0.0.1:39093",
			"kafka-3            down    pid=-        127.0.0.1:39094",
		}},
		{name: "two nodes refused", infra: func(dir string) *Infra { i := cluster(dir); i.KafkaNodes = 2; return i },
			args: []string{"status"}, want: []string{"KAFKA_NODES=2: 1 or 3"}, wantErr: true},
		{name: "controller ports overlapping client ports refused",
			infra: func(dir string) *Infra { i := cluster(dir); i.KafkaControllerPort = 39093; return i },
			args:  []string{"status"}, want: []string{"overlaps the client ports 39092-39094"}, wantErr: true},
		{name: "single node's name in cluster mode refused", infra: cluster, args: []string{"start", "kafka"},
			want: []string{"unknown server 'kafka' with DB_NODES=1 and KAFKA_NODES=3"}, wantErr: true},
		{name: "single node refused while a cluster node runs", infra: single, args: []string{"start", "kafka"},
			prepare: runningServer("kafka-1"),
			want:    []string{"kafka-1 is running (KAFKA_NODES=3); stop it first"}, wantErr: true},
	}
	runInfraCases(t, tests)
}

// infraCase is a run of infra.sh that starts nothing, and what it must print.
type infraCase struct {
	name  string
	infra func(dir string) *Infra
	// prepare, if set, arranges the data dir before the command.
	prepare func(t *testing.T, dir string)
	args    []string
	// want: lines the output must contain (the data dir written DIR); wantErr:
	// whether infra.sh must fail.
	want    []string
	wantErr bool
}

// runInfraCases runs each case on a data dir of its own.
func runInfraCases(t *testing.T, tests []infraCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.prepare != nil {
				tt.prepare(t, dir)
			}
			out, err := tt.infra(dir).Output(tt.args...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("infra.sh %v: error %v, want error: %v\n%s", tt.args, err, tt.wantErr, out)
			}
			out = strings.ReplaceAll(out, dir, "DIR")
			lines := map[string]bool{}
			for _, l := range strings.Split(out, "\n") {
				lines[strings.TrimSpace(l)] = true
			}
			for _, w := range tt.want {
				if !lines[w] && !strings.Contains(out, w) {
					t.Errorf("infra.sh %v: no line %q in\n%s", tt.args, w, out)
				}
			}
		})
	}
}

// runningServer writes a live pid (this test's) into server's pid file:
// infra.sh sees it running.
func runningServer(server string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, server), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, server, server+".pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
