//go:build faults

package outbox_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/onceflow/onceflow/pkg/outbox"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/onceflow/onceflow/internal/testenv"
)

// TestBatchRelayBarrierFault (fault build only) is the batch relay's negative
// control: Kafka refuses one message in the middle of a batch produce
// (FAULT_REFUSE_MID_BATCH) while the others are acknowledged. With the commit
// barrier the polling transaction rolls back and the whole batch is sent
// again: nothing lost. With the barrier switched off (FAULT_BATCH_NO_BARRIER)
// the rows are deleted regardless and the refused event never reaches Kafka,
// every run.
func TestBatchRelayBarrierFault(t *testing.T) {
	tests := []struct {
		name      string
		noBarrier bool
		wantLost  int
	}{
		{"barrier keeps the batch", false, 0},
		{"no barrier loses the refused event (negative control)", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRelayEnv(t, 100)
			e.ob.opts = append(e.ob.opts, outbox.WithFaults(outbox.Faults{RefuseMidBatch: true, BatchNoBarrier: tt.noBarrier}, slog.New(slog.DiscardHandler)))
			ids := e.writeVersions(t, 10, 1) // one transaction, one batch
			startRelay(t, e.ob, e.db, e.kafka.NewPublisher(watermill.NopLogger{}))
			testenv.WaitFor(t, "the outbox to drain and the batch to be sent", 30*time.Second, func() bool {
				return e.pending(t) == 0 && testenv.TopicSize(t, e.kafka, e.topic) >= int64(len(ids)-1)
			})
			seen := map[string]bool{}
			for _, m := range testenv.ReadTopic(t, e.kafka, e.topic, int(testenv.TopicSize(t, e.kafka, e.topic)), 30*time.Second) {
				seen[m.UUID] = true
			}
			lost := 0
			for _, id := range ids {
				if !seen[id] {
					lost++
				}
			}
			if lost != tt.wantLost {
				t.Fatalf("events deleted from the outbox that never reached Kafka = %d, want %d", lost, tt.wantLost)
			}
		})
	}
}
