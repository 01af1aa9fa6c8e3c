package outbox

import (
	"errors"
	"strconv"
	"testing"

	"github.com/onceflow/onceflow/pkg/kafka"

	"github.com/ThreeDotsLabs/watermill/message"
)

// A producer may split one batch of a partition over several requests, and a
// later request can be written where an earlier one failed. sendInWaves never
// hands it a message whose key has an earlier, unacknowledged message in the
// batch: a refused v1 keeps v2 of its key out of Kafka, while other keys go on.
func TestSendInWavesKeepsALaterEventOfAKeyBehindARefusal(t *testing.T) {
	var items []batchItem
	for v := 1; v <= 3; v++ {
		for _, key := range []string{"a", "b"} {
			m := message.NewMessage(key+strconv.Itoa(v), nil)
			m.Metadata.Set(kafka.MetadataKey, key)
			items = append(items, batchItem{topic: "t", msg: m})
		}
	}
	var written []string
	refuse := errors.New("refused")
	send := func(batch []batchItem) []error { // refuses a1, writes everything else it is given
		var errs []error
		for i, it := range batch {
			if it.msg.UUID == "a1" {
				if errs == nil {
					errs = make([]error, len(batch))
				}
				errs[i] = refuse
				continue
			}
			written = append(written, it.msg.UUID)
		}
		return errs
	}
	errs := sendInWaves(send, items)
	for _, id := range written {
		if id == "a2" || id == "a3" {
			t.Fatalf("written %v: a later event of key a reached Kafka after a1 was refused", written)
		}
	}
	if errs == nil || !errors.Is(errs[0], refuse) {
		t.Fatalf("errors %v, want a1 refused", errs)
	}
	for i, it := range items {
		if it.msg.UUID != "a1" && it.msg.UUID != "b1" && errs[i] == nil {
			t.Errorf("%s reported acknowledged, but its wave was not sent", it.msg.UUID)
		}
	}
}
