package harness

import (
	"path/filepath"
	"testing"
)

// TestInfraDBModes runs infra.sh's commands that start nothing (config, status,
// ports, and starts refused before anything runs) for the database modes of
// ADR 0060: the Galera nodes' and the proxy's settings and ports, the
// asynchronous pair's, and the mistakes it must refuse with a clear message.
// Needs bash, no server.
func TestInfraDBModes(t *testing.T) {
	t.Setenv("ONCEFLOW_KAFKA_LIBS", t.TempDir())
	mode := func(nodes int) func(dir string) *Infra {
		return func(dir string) *Infra {
			return &Infra{Dir: dir, DBNodes: nodes, OrderDBPort: 33307, PaymentDBPort: 33308, KafkaPort: 39092, KafkaControllerPort: 39093}
		}
	}
	galera, async, single := mode(3), mode(2), mode(1)
	tests := []infraCase{
		{name: "galera node config", infra: galera, args: []string{"config", "order-db-2"}, want: []string{
			"port=33507",
			"datadir=DIR/order-db-2/data",
			"binlog-format=ROW",
			"innodb-autoinc-lock-mode=2",
			"wsrep-on=ON",
			"wsrep-cluster-name=onceflow-order-db",
			"wsrep-cluster-address=gcomm://127.0.0.11:33417,127.0.0.12:33517,127.0.0.13:33617",
			"wsrep-node-name=order-db-2",
			"wsrep-node-address=127.0.0.12:33517",
			"wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.12:33517;ist.recv_addr=127.0.0.12:33527;gcache.size=64M",
			"wsrep-sst-method=mariabackup",
			"wsrep-sst-receive-address=127.0.0.12:33537",
			"innodb-flush-log-at-trx-commit=1",
		}},
		{name: "proxy config: one writer, sticky, Synced nodes only", infra: galera, args: []string{"config", "payment-db-proxy"}, want: []string{
			"bind 127.0.0.1:33308",
			"external-check command " + filepath.Join(RepoRoot(), "deploy", "local", "dbcheck.sh"),
			"stick-table type integer size 1",
			"stick on int(1)",
			"server payment-db-1 127.0.0.1:33408 check",
			"server payment-db-2 127.0.0.1:33508 check backup",
			"server payment-db-3 127.0.0.1:33608 check backup",
			"on-marked-down shutdown-sessions",
		}},
		{name: "replica config", infra: async, args: []string{"config", "order-db-replica"}, want: []string{
			"port=33507", "server-id=2", "read-only=ON", "gtid-strict-mode=ON",
		}},
		{name: "galera status lists the nodes and the proxy", infra: galera, args: []string{"status"}, want: []string{
			"order-db-1         down    pid=-        127.0.0.1:33407",
			"order-db-3         down    pid=-        127.0.0.1:33607",
			"order-db-proxy     down    pid=-        127.0.0.1:33307",
			"payment-db-2       down    pid=-        127.0.0.1:33508",
		}},
		{name: "galera ports", infra: galera, args: []string{"ports"}, want: []string{
			"order-db-1 33407 down", "order-db-1 33417 down", "order-db-1 33427 down", "order-db-1 33437 down",
			"payment-db-3 33638 down", "order-db-proxy 33307 down",
		}},
		{name: "four nodes refused", infra: mode(4), args: []string{"status"},
			want: []string{"DB_NODES=4: 1, 3 (or 2: the negative control's primary and asynchronous replica)"}, wantErr: true},
		{name: "ports used twice refused",
			infra: func(dir string) *Infra { i := galera(dir); i.PaymentDBPort = 33317; return i },
			args:  []string{"ports"}, want: []string{"port 33417 would be used twice"}, wantErr: true},
		{name: "cluster refused while the single server runs", infra: galera, prepare: runningServer("order-db"),
			args: []string{"start", "order-db-1"}, want: []string{"order-db is running (DB_NODES=1); stop it first"}, wantErr: true},
		{name: "single server refused while a cluster node runs", infra: single, prepare: runningServer("payment-db-2"),
			args: []string{"start", "payment-db"}, want: []string{"payment-db-2 is running (DB_NODES=3); stop it first"}, wantErr: true},
		{name: "one node of a cluster that is down refused", infra: galera, args: []string{"start", "order-db-2"},
			want: []string{"no node of the order-db cluster runs: start all three"}, wantErr: true},
		{name: "a cluster node's name with one server refused", infra: single, args: []string{"isolate", "order-db-3"},
			want: []string{"unknown server 'order-db-3' with DB_NODES=1"}, wantErr: true},
	}
	runInfraCases(t, tests)
}
