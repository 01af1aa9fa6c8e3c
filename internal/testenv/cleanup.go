package testenv

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/onceflow/onceflow/deploy/dbusers"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// A test removes what it made on the servers: its databases and
// their users (NewDatabase), its topics (Topics, TopicName) and its consumer
// groups (Group, ReadTopic). A removal that fails is an error of the test:
// what it left would show in every Kafka tool and lag view of the servers.

// groupLeaveTimeout bounds the wait for a group's members to leave: a closed
// consumer leaves at once, one that vanished without leaving is dropped by the
// broker after its session timeout (10 s, kafka.Config.ConsumerConfig).
const groupLeaveTimeout = 30 * time.Second

// deleteTopics deletes the topics names on kafka; one that does not exist is
// no error.
func deleteTopics(t testing.TB, kc kafka.Config, names ...string) {
	t.Helper()
	err := withAdmin(kc, func(admin sarama.ClusterAdmin) error {
		var errs []error
		for _, name := range names {
			if err := admin.DeleteTopic(name); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				errs = append(errs, fmt.Errorf("topic %s: %w", name, err))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Errorf("deleting the test's topics: %v", err)
	}
}

// deleteGroups deletes consumer group name and the groups named after it
// (name + "."), waiting up to groupLeaveTimeout for their members to leave.
func deleteGroups(t testing.TB, kc kafka.Config, name string) {
	t.Helper()
	err := withAdmin(kc, func(admin sarama.ClusterAdmin) error {
		groups, err := admin.ListConsumerGroups()
		if err != nil {
			return err
		}
		var errs []error
		for group := range groups {
			if group != name && !strings.HasPrefix(group, name+".") {
				continue
			}
			deadline := time.Now().Add(groupLeaveTimeout)
			err := admin.DeleteConsumerGroup(group)
			for errors.Is(err, sarama.ErrNonEmptyGroup) && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				err = admin.DeleteConsumerGroup(group)
			}
			if errors.Is(err, sarama.ErrNonEmptyGroup) {
				err = fmt.Errorf("%w: its consumers are still running (close them before the group is deleted: take the name from Group before starting them)", err)
			}
			if err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
				errs = append(errs, fmt.Errorf("consumer group %s: %w", group, err))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Errorf("deleting the test's consumer groups: %v", err)
	}
}

// withAdmin runs f with a cluster admin on kafka.
func withAdmin(kc kafka.Config, f func(sarama.ClusterAdmin) error) error {
	admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.ProducerConfig())
	if err != nil {
		return err
	}
	defer admin.Close()
	return f(admin)
}

// DropDatabase drops database users.Schema on the server at addr with its
// users (deploy/dbusers), each if it exists.
func DropDatabase(addr string, users dbusers.Users) error {
	admin, err := sql.Open("mysql", DSN(addr, ""))
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, s := range append([]string{"DROP DATABASE IF EXISTS `" + users.Schema + "`"}, dbusers.DropStatements(users)...) {
		if _, err := admin.Exec(s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}
