package harness

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/onceflow/onceflow/internal/testenv"
)

// DBClusterInfra is the database-cluster lane's own servers (ADR 0060): each
// service's database a three-node Galera cluster behind HAProxy on 16307 and
// 16308 (nodes on 16407-16638), one Kafka node on 22092 (controller 22093),
// data under build/e2e/dbcluster; apart from every other set, so that the lane
// runs beside the fault suite and the strategy comparison.
func DBClusterInfra() *Infra {
	return &Infra{
		Dir: filepath.Join(RepoRoot(), "build", "e2e", "dbcluster"), DBNodes: 3,
		OrderDBPort: 16307, PaymentDBPort: 16308, KafkaPort: 22092, KafkaControllerPort: 22093,
	}
}

// DBNode is infra.sh's name of node n (1..3) of the Galera cluster of db
// (OrderDB or PaymentDB).
func DBNode(db string, n int) string { return db + "-" + strconv.Itoa(n) }

// DBPrimary is infra.sh's name of the primary of db's asynchronous pair
// (DBNodes 2).
func DBPrimary(db string) string { return db + "-primary" }

// DBReplica is infra.sh's name of the replica of db's asynchronous pair.
func DBReplica(db string) string { return db + "-replica" }

// DBNodeAddr is the client address of a database node (a Galera node, a
// primary or a replica): the port of db + 100 × its slot (infra.sh).
func (i *Infra) DBNodeAddr(node string) string {
	port := i.OrderDBPort
	if strings.HasPrefix(node, PaymentDB) {
		port = i.PaymentDBPort
	}
	var slot int
	switch {
	case strings.HasSuffix(node, "-primary"):
		slot = 1
	case strings.HasSuffix(node, "-replica"):
		slot = 2
	default:
		slot, _ = strconv.Atoi(node[strings.LastIndexByte(node, '-')+1:])
	}
	return "127.0.0.1:" + strconv.Itoa(port+100*slot)
}

// NodesOf returns the names of db's nodes in this set (none with one server).
func (i *Infra) NodesOf(db string) []string {
	switch i.DBNodes {
	case 2:
		return []string{DBPrimary(db), DBReplica(db)}
	case 3:
		return []string{DBNode(db, 1), DBNode(db, 2), DBNode(db, 3)}
	}
	return nil
}

// Writer returns the node db's proxy sends connections to.
func (i *Infra) Writer(db string) (string, error) {
	out, err := i.Output("writer", db)
	if err != nil {
		return "", err
	}
	w := strings.TrimSpace(out)
	if w == "" {
		return "", fmt.Errorf("the %s proxy routes to no node", db)
	}
	return w, nil
}

// Isolate cuts a Galera node off from the other two (nftables).
func (i *Infra) Isolate(node string) error { return i.Run("isolate", node) }

// Heal undoes Isolate.
func (i *Infra) Heal(node string) error { return i.Run("heal", node) }

// NodeDB opens a pool on one database node (not through the proxy) as the
// test superuser, on database name ("" for none).
func (i *Infra) NodeDB(node, name string) (*sql.DB, error) {
	db, err := sql.Open("mysql", testenv.DSN(i.DBNodeAddr(node), name))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	return db, nil
}

// GaleraState returns a Galera node's state as the health check sees it: its
// wsrep_local_state_comment (Synced, Donor/Desynced, Joined, ...) while in the
// primary component, "non-Primary" outside it, or an error if it does not answer.
func (i *Infra) GaleraState(ctx context.Context, node string) (string, error) {
	db, err := i.NodeDB(node, "")
	if err != nil {
		return "", err
	}
	defer db.Close()
	var status, state string
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_status', 'wsrep_local_state_comment')")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return "", err
		}
		if name == "wsrep_cluster_status" {
			status = value
		} else {
			state = value
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	if status != "Primary" {
		return "non-Primary", nil
	}
	return state, nil
}

// WaitSynced waits until every Galera node of both databases is Synced in a
// primary component of three, or ctx ends (the error then names the first node
// that was not).
func (i *Infra) WaitSynced(ctx context.Context) error {
	var last error
	for {
		last = nil
		for _, db := range []string{OrderDB, PaymentDB} {
			for _, node := range i.NodesOf(db) {
				if state, err := i.GaleraState(ctx, node); err != nil {
					last = fmt.Errorf("%s: %w", node, err)
				} else if state != "Synced" {
					last = fmt.Errorf("%s is %s", node, state)
				}
				if last != nil {
					break
				}
			}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not synced: %w", last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// LogSize returns the size of a server's log (infra.sh's <dir>/<server>/<server>.log),
// so that LogSince can read what it wrote afterwards.
func (i *Infra) LogSize(server string) int64 {
	st, err := os.Stat(i.logPath(server))
	if err != nil {
		return 0
	}
	return st.Size()
}

// LogSince returns what a server wrote to its log after offset (LogSize).
func (i *Infra) LogSince(server string, offset int64) (string, error) {
	data, err := os.ReadFile(i.logPath(server))
	if err != nil {
		return "", err
	}
	if offset > int64(len(data)) {
		offset = 0
	}
	return string(data[offset:]), nil
}

func (i *Infra) logPath(server string) string { return filepath.Join(i.Dir, server, server+".log") }
