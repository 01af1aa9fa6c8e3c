package poison_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// poisonTopic creates a unique one-partition topic, as a service's poison
// topic is, and deletes it when the test ends.
func poisonTopic(t testing.TB, kc kafka.Config) string {
	t.Helper()
	topic := testenv.Topics(t, kc, 1, "poison")[0]
	t.Cleanup(func() {
		admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.ProducerConfig())
		if err != nil {
			t.Logf("deleting topic %s: %v", topic, err)
			return
		}
		defer admin.Close()
		if err := admin.DeleteTopic(topic); err != nil {
			t.Logf("deleting topic %s: %v", topic, err)
		}
	})
	return topic
}

// poisoned is the i-th record of a test poison topic, as the poison step
// writes it: an event of order o-<i> that consumer "order-payments" of group
// "order" gave up on with reasonCode.
func poisoned(i int, reasonCode string) *message.Message {
	id := fmt.Sprintf("o-%d", i)
	msg := message.NewMessage(fmt.Sprintf("msg-%d", i), []byte(`{"type":"payment.completed","schema_version":1,"order_id":"`+id+
		`","order_version":2,"occurred_at":"2026-11-23T09:00:00Z","data":{"customer_id":"c-1","amount_cents":1250,"currency":"EUR","note":"`+
		strings.Repeat("x", 200)+`"}}`))
	msg.Metadata.Set(kafka.MetadataKey, id)
	msg.Metadata.Set(kafka.MetadataEventType, "payment.completed")
	msg.Metadata.Set(middleware.ReasonForPoisonedKey, "handler: "+reasonCode+" for "+id)
	msg.Metadata.Set(failure.MetadataReasonCode, reasonCode)
	msg.Metadata.Set(middleware.PoisonedTopicKey, "payments")
	msg.Metadata.Set(middleware.PoisonedHandlerKey, "order-payments")
	msg.Metadata.Set(middleware.PoisonedSubscriberKey, "kafka")
	msg.Metadata.Set(failure.MetadataPoisonedGroup, "order")
	return msg
}

// producePoisoned writes n records to topic (poisoned(i, reasonCode(i))) with
// an asynchronous producer that batches, and returns once Kafka acknowledged
// them all.
func producePoisoned(t testing.TB, kc kafka.Config, topic string, n int, reasonCode func(i int) string) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = kc.ProducerConfig().Version
	cfg.Producer.RequiredAcks = sarama.WaitForLocal
	cfg.Producer.Flush.Frequency = 10 * time.Millisecond
	cfg.Producer.Flush.Messages = 1000
	cfg.Producer.Return.Errors = true
	producer, err := sarama.NewAsyncProducer(kc.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var failed error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for err := range producer.Errors() {
			if failed == nil {
				failed = err
			}
		}
	}()
	marshaler := kafka.Marshaler(false)
	start := time.Now()
	for i := range n {
		pm, err := marshaler.Marshal(topic, poisoned(i, reasonCode(i)))
		if err != nil {
			t.Fatal(err)
		}
		producer.Input() <- pm
	}
	producer.AsyncClose() // flushes what is buffered, then closes Errors
	<-done
	if failed != nil {
		t.Fatalf("producing %d records to %s: %v", n, topic, failed)
	}
	if got := testenv.TopicSize(t, kc, topic); got != int64(n) {
		t.Fatalf("%s holds %d records, want %d", topic, got, n)
	}
	t.Logf("produced %d records to %s in %s", n, topic, time.Since(start).Round(time.Millisecond))
}
