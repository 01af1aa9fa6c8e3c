package testenv

import (
	"context"
	"database/sql"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/onceflow/onceflow/pkg/kafka"
	"github.com/onceflow/onceflow/pkg/servicedb"
	"github.com/onceflow/onceflow/pkg/servicemain"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// TestIntegrationTestLeavesNothing (integration, real servers) runs
// a representative integration test as a subtest: a database with its users on
// each MariaDB server, a topic and a poison topic, consumers in their own group
// with a projection (a second group), a reader group (ReadTopic) and a topic
// the code under test creates itself. Once the subtest and its cleanups are
// done, no database, user, topic or consumer group on the servers may carry
// the subtest's part of the names.
func TestIntegrationTestLeavesNothing(t *testing.T) {
	NeedsServers(t, "MariaDB and Kafka")
	var part string
	kc := Kafka(t)
	// The subtest's name, and so every name it makes, is unique to this run:
	// what an interrupted earlier run left cannot count.
	t.Run("representative_"+strings.ToLower(watermill.NewShortUUID()[:8]), func(t *testing.T) {
		part = testPart(t)
		runRepresentativeTest(t, kc)
	})
	if part == "" {
		t.Fatal("the representative test did not run")
	}
	var left []string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		left = litter(t, kc, part)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("after the test, the servers still hold %d things of it:\n  %s", len(left), strings.Join(left, "\n  "))
	}
}

// runRepresentativeTest makes what integration tests make, through testenv,
// and uses it as they do.
func runRepresentativeTest(t *testing.T, kc kafka.Config) {
	logger := slog.New(slog.DiscardHandler)
	orders := NewDatabase(t, OrderDBAddr)
	NewDatabase(t, PaymentDBAddr)
	topics := Topics(t, kc, 2, "events", "poison")
	own := TopicName(t, kc, "own")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kc.EnsureTopics(ctx, []kafka.TopicSpec{kafka.PoisonTopicSpec(own)}); err != nil {
		t.Fatal(err)
	}

	cfg := servicemain.Messaging{Kafka: kc, ConsumerGroup: Group(t, kc, "group"), PoisonTopic: topics[1]}
	db, err := sqldb.OpenAndMigrate(ctx, orders.DBConfig(), logger, servicedb.Migrations(nil)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	poison := kc.NewPoisonPublisher(watermill.NopLogger{})
	t.Cleanup(func() { poison.Close() })
	cs, err := servicemain.NewConsumers(cfg, db, poison, nil, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	handled, projected := make(chan struct{}, 1), make(chan struct{}, 1)
	signal := func(c chan struct{}) message.NoPublishHandlerFunc {
		return func(*message.Message) error {
			select {
			case c <- struct{}{}:
			default:
			}
			return nil
		}
	}
	cs.Handle("test", topics[0], signal(handled))
	cs.Project("view", topics[0], signal(projected))
	stop := Background(t, "consumers", func(ctx context.Context) error {
		go func() { <-ctx.Done(); cs.Close() }()
		return cs.Run(context.Background())
	})

	pub := kc.NewPublisher(watermill.NopLogger{})
	defer pub.Close()
	m := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
	m.Metadata.Set(kafka.MetadataKey, "key-1")
	if err := pub.Publish(topics[0], m); err != nil {
		t.Fatal(err)
	}
	for _, c := range []chan struct{}{handled, projected} {
		select {
		case <-c:
		case <-ctx.Done():
			t.Fatal("the message was not consumed within a minute")
		}
	}
	stop()
	if got := ReadTopic(t, kc, topics[0], 1, 30*time.Second); len(got) != 1 {
		t.Fatalf("ReadTopic got %d messages, want 1", len(got))
	}
}

// litter lists the databases, database users, topics and consumer groups on
// the servers whose names contain part (as UniqueName writes it, or with "-"
// for "_" as topics have it).
func litter(t *testing.T, kc kafka.Config, part string) []string {
	t.Helper()
	dashed := strings.ReplaceAll(part, "_", "-")
	var names []string
	add := func(kind, name string) {
		if strings.Contains(name, part) || strings.Contains(name, dashed) {
			names = append(names, kind+" "+name)
		}
	}
	for _, addr := range []string{OrderDBAddr, PaymentDBAddr} {
		admin, err := sql.Open("mysql", DSN(addr, ""))
		if err != nil {
			t.Fatal(err)
		}
		for kind, query := range map[string]string{
			"database": "SELECT schema_name FROM information_schema.schemata",
			"user":     "SELECT user FROM mysql.user",
		} {
			rows, err := admin.Query(query)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var name string
				if err := rows.Scan(&name); err != nil {
					t.Fatal(err)
				}
				add(kind+" on "+addr, name)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
		}
		admin.Close()
	}
	err := withAdmin(kc, func(admin sarama.ClusterAdmin) error {
		topics, err := admin.ListTopics()
		if err != nil {
			return err
		}
		groups, err := admin.ListConsumerGroups()
		if err != nil {
			return err
		}
		for name := range topics {
			add("topic", name)
		}
		for name := range groups {
			add("consumer group", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}
