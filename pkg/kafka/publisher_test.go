package kafka

import (
	"errors"
	"testing"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eapache/go-resiliency/breaker"
)

// fakeProducer answers SendMessages with err for every message.
type fakeProducer struct {
	sarama.SyncProducer
	err    error
	closed bool
}

func (f *fakeProducer) SendMessages(msgs []*sarama.ProducerMessage) error {
	if f.err == nil {
		return nil
	}
	var errs sarama.ProducerErrors
	for _, m := range msgs {
		errs = append(errs, &sarama.ProducerError{Msg: m, Err: f.err})
	}
	return errs
}

func (f *fakeProducer) Close() error { f.closed = true; return nil }

// TestPublishBatchReplacesAProducerWhoseBreakersAreOpen: sarama's breakers
// stay open 10 s whatever Kafka does; a refusal by one makes the next batch
// go through a new producer. Any other refusal keeps the producer.
func TestPublishBatchReplacesAProducerWhoseBreakersAreOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		err         error
		wantNewOnes int
	}{
		{"breaker open", breaker.ErrBreakerOpen, 1},
		{"broker down", sarama.ErrOutOfBrokers, 0},
		{"record too large", sarama.ErrMessageSizeTooLarge, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first := &fakeProducer{err: tt.err}
			made := []*fakeProducer{}
			p := &lazyPublisher{marshaler: Marshaler(true), newProducer: func() (sarama.SyncProducer, error) {
				if len(made) == 0 {
					made = append(made, first)
					return first, nil
				}
				next := &fakeProducer{}
				made = append(made, next)
				return next, nil
			}}
			msg := message.NewMessage("1", []byte("{}"))
			msg.Metadata.Set(MetadataKey, "order-1")
			errs := p.PublishBatch([]string{"orders"}, []*message.Message{msg})
			if len(errs) != 1 || !errors.Is(errs[0], tt.err) {
				t.Fatalf("first batch: %v, want %v", errs, tt.err)
			}
			errs = p.PublishBatch([]string{"orders"}, []*message.Message{msg})
			if got := len(made) - 1; got != tt.wantNewOnes {
				t.Fatalf("%d new producers after the refusal, want %d", got, tt.wantNewOnes)
			}
			if first.closed != (tt.wantNewOnes == 1) {
				t.Fatalf("first producer closed: %v, want %v", first.closed, tt.wantNewOnes == 1)
			}
			if tt.wantNewOnes == 1 && errs != nil {
				t.Fatalf("second batch, on the new producer: %v", errs)
			}
		})
	}
}
