// Package exampleenv gives the examples what they need to run and nothing of
// the patterns: a database and Kafka topics of their own on the servers of
// `make infra-up` (or those the environment names, like internal/testenv:
// ORDER_DB_ADDR, KAFKA_BROKERS, DB_USER, DB_PASSWORD), removed when the
// example ends.
package exampleenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/go-sql-driver/mysql"

	"github.com/IBM/sarama"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// Env is one run of an example: its name (unique per run), its database, its
// Kafka configuration, and what Close removes.
type Env struct {
	Name    string
	DB      *sql.DB
	Kafka   kafka.Config
	admin   *sql.DB
	undo    []func() error
	readers int
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// New creates a fresh database named after the example and opens it with
// sqldb.Open (READ COMMITTED sessions), as a service would.
func New(ctx context.Context, example string) (*Env, error) {
	e := &Env{Name: example + "_" + strings.ToLower(watermill.NewShortUUID()[:6])}
	e.Kafka = kafka.Config{Brokers: strings.Split(getenv("KAFKA_BROKERS", "127.0.0.1:9092"), ","), ClientID: "onceflow-example"}.Defaults()
	c := mysql.NewConfig()
	c.User, c.Passwd = getenv("DB_USER", "onceflow"), getenv("DB_PASSWORD", "onceflow")
	c.Net, c.Addr = "tcp", getenv("ORDER_DB_ADDR", "127.0.0.1:3307")
	dial, cancel := context.WithTimeout(ctx, 15*time.Second) // Open waits for a server that is starting
	defer cancel()
	admin, err := sqldb.Open(dial, c.FormatDSN(), 2)
	if err != nil {
		return nil, fmt.Errorf("the database server at %s (make infra-up): %w", c.Addr, err)
	}
	e.admin = admin
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+e.Name+"`"); err != nil {
		_ = admin.Close()
		return nil, err
	}
	e.undo = append(e.undo, func() error {
		_, err := admin.ExecContext(context.Background(), "DROP DATABASE `"+e.Name+"`")
		return err
	})
	c.DBName = e.Name
	if e.DB, err = sqldb.Open(ctx, c.FormatDSN(), 8); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	return e, nil
}

// Topic creates a topic with the given partitions for this run and returns its
// name; Close deletes it.
func (e *Env) Topic(ctx context.Context, base string, partitions int32) (string, error) {
	return e.TopicWithConfig(ctx, base, partitions, nil)
}

// TopicWithConfig is Topic with topic-level settings (e.g. max.message.bytes).
func (e *Env) TopicWithConfig(ctx context.Context, base string, partitions int32, config map[string]string) (string, error) {
	name := strings.ReplaceAll(e.Name, "_", "-") + "-" + base
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.Kafka.EnsureTopics(ctx, []kafka.TopicSpec{{Name: name, Partitions: partitions, Config: config}}); err != nil {
		return "", fmt.Errorf("kafka at %v (make infra-up): %w", e.Kafka.Brokers, err)
	}
	e.undo = append(e.undo, func() error { return e.withAdmin(func(a sarama.ClusterAdmin) error { return a.DeleteTopic(name) }) })
	return name, nil
}

// ReadUntil reads topic from its start, as a new consumer group of this run,
// until a message with the payload last arrives, and returns the payloads read.
func (e *Env) ReadUntil(ctx context.Context, topic, last string) ([]string, error) {
	e.readers++
	sub, err := e.Kafka.NewSubscriber(e.Group(fmt.Sprintf("reader-%d", e.readers)), watermill.NopLogger{})
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	var got []string
	for {
		select {
		case m := <-msgs:
			m.Ack()
			got = append(got, string(m.Payload))
			if string(m.Payload) == last {
				return got, nil
			}
		case <-ctx.Done():
			return got, fmt.Errorf("waiting for %q in Kafka: %w (got %q)", last, ctx.Err(), got)
		}
	}
}

// Group returns a consumer group name for this run; Close deletes the group
// and the groups named after it (a consumer's delayed path is name.<handler>).
func (e *Env) Group(base string) string {
	name := e.Name + "-" + base
	e.undo = append(e.undo, func() error {
		return e.withAdmin(func(a sarama.ClusterAdmin) error {
			groups, err := a.ListConsumerGroups()
			if err != nil {
				return err
			}
			var errs []error
			for g := range groups {
				if g == name || strings.HasPrefix(g, name+".") {
					errs = append(errs, a.DeleteConsumerGroup(g))
				}
			}
			return errors.Join(errs...)
		})
	})
	return name
}

func (e *Env) withAdmin(fn func(sarama.ClusterAdmin) error) error {
	a, err := sarama.NewClusterAdmin(e.Kafka.Brokers, e.Kafka.ConsumerConfig())
	if err != nil {
		return err
	}
	defer a.Close()
	return fn(a)
}

// Close removes what the run made, newest first, and closes the pools.
func (e *Env) Close() error {
	var errs []error
	if e.DB != nil {
		errs = append(errs, e.DB.Close())
	}
	for i := len(e.undo) - 1; i >= 0; i-- {
		errs = append(errs, e.undo[i]())
	}
	return errors.Join(append(errs, e.admin.Close())...)
}

// WaitFor polls done every 100 ms until it reports true, fails, or ctx ends.
func WaitFor(ctx context.Context, done func() (bool, error)) error {
	for {
		ok, err := done()
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Column returns the first column of query's rows joined by ", " (an error's
// text if it fails): what an example prints of a table.
func Column(ctx context.Context, db *sql.DB, query string) string {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var values []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return err.Error()
		}
		values = append(values, v)
	}
	if err := rows.Err(); err != nil {
		return err.Error()
	}
	return strings.Join(values, ", ")
}
