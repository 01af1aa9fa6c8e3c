package kafka_test

import (
	"context"
	"testing"

	orderkafka "github.com/onceflow/onceflow/services/order/internal/adapters/kafka"
	"github.com/onceflow/onceflow/services/order/internal/app"
)

// TestTimelineProjectionNames: the projections' names are what deployed
// consumer groups hold offsets under ("<group>.timeline-1" ... "timeline-4"):
// each name must keep its topic and its poison flag, however the list is
// ordered. A renamed or swapped projection would re-read a topic from the start
// under a new group, or mark ordinary events as poisoned.
func TestTimelineProjectionNames(t *testing.T) {
	t.Parallel()
	topics := orderkafka.TimelineTopics{Orders: "t-orders", Payments: "t-payments", OrderPoison: "t-order.poison",
		PaymentPoison: "t-payment.poison"}
	type spec struct {
		topic  string
		poison bool
	}
	want := map[string]spec{
		"timeline-1": {"t-orders", false},
		"timeline-2": {"t-payments", false},
		"timeline-3": {"t-order.poison", true},
		"timeline-4": {"t-payment.poison", true},
	}
	got := map[string]spec{}
	for _, p := range orderkafka.TimelineProjections(topics, &timelineRecorder{}) {
		if _, dup := got[p.Name]; dup {
			t.Fatalf("two projections named %q", p.Name)
		}
		got[p.Name] = spec{p.Topic, p.Poison}
	}
	if len(got) != len(want) {
		t.Fatalf("projections %v, want %v", got, want)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("projection %q reads %+v, want %+v", name, got[name], w)
		}
	}
}

type timelineRecorder struct{ got []app.TimelineEntry }

func (r *timelineRecorder) RecordTimeline(_ context.Context, e app.TimelineEntry) error {
	r.got = append(r.got, e)
	return nil
}
