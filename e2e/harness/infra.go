// Package harness runs the whole system as real processes for the end-to-end and
// fault tests: the three servers through deploy/local/infra.sh, and the two
// services built from this repository. Every process can be killed with SIGKILL,
// paused with SIGSTOP, resumed and started again.
package harness

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Server names, as infra.sh knows them.
const (
	OrderDB   = "order-db"
	PaymentDB = "payment-db"
	Kafka     = "kafka"
	// Connect is Kafka Connect running Debezium's connector (Infra.OrderOutboxRelay).
	Connect = "connect"
)

// Infra is one set of servers (two MariaDB or two database clusters, one Kafka
// node or a three-node Kafka cluster) with its own data directory and ports,
// driven through deploy/local/infra.sh.
type Infra struct {
	// Dir holds the servers' data, logs and pid files.
	Dir string
	// DBNodes is 1 (also when 0: the servers OrderDB and PaymentDB), 3 (a
	// Galera cluster per database, DBNode(OrderDB, 1..3), behind a proxy on
	// OrderDBPort and PaymentDBPort; ADR 0060) or 2 (a primary and an
	// asynchronous replica, DBPrimary and DBReplica, behind a proxy: the
	// negative control's set-up).
	DBNodes int
	// KafkaNodes is 1 (also when 0: the server Kafka) or 3 (the servers
	// KafkaNode(1..3), clients on KafkaPort+0..2, controllers on
	// KafkaControllerPort+0..2).
	KafkaNodes int
	// Ports of the servers.
	OrderDBPort, PaymentDBPort, KafkaPort, KafkaControllerPort int
	// KafkaProxiedPort is the broker's second listener, which advertises
	// KafkaProxiedAdvertisedPort: where Proxies listens (0: no second listener).
	KafkaProxiedPort, KafkaProxiedAdvertisedPort int
	// OrderOutboxRelay "debezium" adds the server Connect (Kafka Connect with
	// Debezium's MariaDB connector relaying the order outbox, REST on
	// ConnectPort) and turns on the order database's binary log (ADR 0068).
	OrderOutboxRelay string
	ConnectPort      int
	// ConnectDatabases is the regular expression of the databases whose
	// outbox the connector relays; "" is every database (each scenario's
	// order service has its own).
	ConnectDatabases string
}

// RepoRoot is the repository's top directory (found from this source file).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// LocalInfra is the set of servers of `make infra-up` / `make run`.
func LocalInfra() *Infra {
	return &Infra{
		Dir:         filepath.Join(RepoRoot(), ".local", "infra"),
		OrderDBPort: 3307, PaymentDBPort: 3308, KafkaPort: 9092, KafkaControllerPort: 9093,
	}
}

// E2EInfra is the fault suite's own set of servers: separate ports and data from
// `make infra-up`, so that killing them never disturbs anything else.
func E2EInfra() *Infra {
	return &Infra{
		Dir:         filepath.Join(RepoRoot(), "build", "e2e", "infra"),
		OrderDBPort: 13307, PaymentDBPort: 13308, KafkaPort: 19092, KafkaControllerPort: 19093,
		KafkaProxiedPort: 19094, KafkaProxiedAdvertisedPort: 19194,
	}
}

// StrategiesInfra is the strategy comparison's own set of servers:
// separate ports and data from E2EInfra, so that the comparison can run beside
// the fault suite, each killing only its own servers.
func StrategiesInfra() *Infra {
	return &Infra{
		Dir:         filepath.Join(RepoRoot(), "build", "e2e", "infra-strategies"),
		OrderDBPort: 14307, PaymentDBPort: 14308, KafkaPort: 20092, KafkaControllerPort: 20093,
	}
}

// ControlsInfra is the negative controls' own set of servers, so that
// they run beside the fault suite (ADR 0050).
func ControlsInfra() *Infra {
	return &Infra{
		Dir:         filepath.Join(RepoRoot(), "build", "e2e", "infra-controls"),
		OrderDBPort: 17307, PaymentDBPort: 17308, KafkaPort: 24092, KafkaControllerPort: 24093,
	}
}

// DebeziumInfra is the Debezium relay lane's servers (ADR 0068): one MariaDB
// per service, the order one writing a binary log, one Kafka node and Kafka
// Connect; ports and data apart from every other set.
func DebeziumInfra() *Infra {
	return &Infra{
		Dir:         filepath.Join(RepoRoot(), "build", "e2e", "infra-debezium"),
		OrderDBPort: 18307, PaymentDBPort: 18308, KafkaPort: 25092, KafkaControllerPort: 25093,
		OrderOutboxRelay: "debezium", ConnectPort: 25083,
	}
}

// ClusterInfra is the fault suite's three-node Kafka cluster with its own two
// MariaDB servers, for the cluster scenarios: ports and data apart
// from E2EInfra's, so both can run at once.
func ClusterInfra() *Infra {
	return &Infra{
		Dir: filepath.Join(RepoRoot(), "build", "e2e", "cluster"), KafkaNodes: 3,
		OrderDBPort: 15307, PaymentDBPort: 15308, KafkaPort: 21092, KafkaControllerPort: 21192,
	}
}

// OrderDBAddr is the order MariaDB's host:port.
func (i *Infra) OrderDBAddr() string { return "127.0.0.1:" + strconv.Itoa(i.OrderDBPort) }

// PaymentDBAddr is the payment MariaDB's host:port.
func (i *Infra) PaymentDBAddr() string { return "127.0.0.1:" + strconv.Itoa(i.PaymentDBPort) }

// KafkaAddr is the first Kafka node's host:port.
func (i *Infra) KafkaAddr() string { return "127.0.0.1:" + strconv.Itoa(i.KafkaPort) }

// KafkaBrokers returns the client address of every Kafka node, in node order.
func (i *Infra) KafkaBrokers() []string {
	if i.KafkaNodes <= 1 {
		return []string{i.KafkaAddr()}
	}
	addrs := make([]string, i.KafkaNodes)
	for n := range addrs {
		addrs[n] = "127.0.0.1:" + strconv.Itoa(i.KafkaPort+n)
	}
	return addrs
}

// KafkaNode is infra.sh's name of the cluster node with Kafka's node.id id
// (kafka-1..3); on a single node it is Kafka.
func (i *Infra) KafkaNode(id int32) string {
	if i.KafkaNodes <= 1 {
		return Kafka
	}
	return "kafka-" + strconv.Itoa(int(id))
}

// Run calls infra.sh with args (e.g. "kill", "kafka") and returns its combined
// output in the error if it fails.
func (i *Infra) Run(args ...string) error {
	_, err := i.Output(args...)
	return err
}

// Output calls infra.sh with args on i's directory, ports and Kafka mode and
// returns its combined output; if it fails, the error holds the output too.
func (i *Infra) Output(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(RepoRoot(), "deploy", "local", "infra.sh"), args...)
	cmd.Env = append(os.Environ(),
		"ONCEFLOW_INFRA_DIR="+i.Dir,
		"ORDER_DB_PORT="+strconv.Itoa(i.OrderDBPort),
		"PAYMENT_DB_PORT="+strconv.Itoa(i.PaymentDBPort),
		"KAFKA_PORT="+strconv.Itoa(i.KafkaPort),
		"KAFKA_CONTROLLER_PORT="+strconv.Itoa(i.KafkaControllerPort),
		"KAFKA_NODES="+strconv.Itoa(max(i.KafkaNodes, 1)),
		"DB_NODES="+strconv.Itoa(max(i.DBNodes, 1)),
		"ORDER_OUTBOX_RELAY="+i.OrderOutboxRelay,
	)
	if i.ConnectPort != 0 {
		cmd.Env = append(cmd.Env, "CONNECT_PORT="+strconv.Itoa(i.ConnectPort), "CONNECT_DATABASES="+cmp.Or(i.ConnectDatabases, "[a-z0-9_]+"))
	}
	if i.KafkaProxiedPort != 0 {
		cmd.Env = append(cmd.Env, "KAFKA_PROXIED_PORT="+strconv.Itoa(i.KafkaProxiedPort),
			"KAFKA_PROXIED_ADVERTISED_PORT="+strconv.Itoa(i.KafkaProxiedAdvertisedPort))
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("infra.sh %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// PID returns the process id of server (OrderDB, PaymentDB, Kafka) from
// infra.sh's pid file, the file Kill uses. It fails if there is no pid file
// (the server was never started or was stopped) or it holds no number; it does
// not check that the process is alive.
func (i *Infra) PID(server string) (int, error) {
	data, err := os.ReadFile(filepath.Join(i.Dir, server, server+".pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// Up installs what is missing and starts every server that is not running.
func (i *Infra) Up() error { return i.Run("up") }

// Down stops every server gracefully.
func (i *Infra) Down() error { return i.Run("down") }

// Kill sends SIGKILL to servers and waits until they are gone.
func (i *Infra) Kill(servers ...string) error { return i.Run(append([]string{"kill"}, servers...)...) }

// Start starts stopped servers (Kafka nodes in parallel: a cluster that lost
// its quorum needs two back at once) and waits until each accepts connections.
func (i *Infra) Start(servers ...string) error {
	return i.Run(append([]string{"start"}, servers...)...)
}

// Stop stops a server gracefully (SIGTERM, a controlled shutdown for a Kafka
// node) and waits until it is gone.
func (i *Infra) Stop(server string) error { return i.Run("stop", server) }

// Pause sends SIGSTOP to a server.
func (i *Infra) Pause(server string) error { return i.Run("pause", server) }

// Resume sends SIGCONT to a server that Pause stopped.
func (i *Infra) Resume(server string) error { return i.Run("resume", server) }
