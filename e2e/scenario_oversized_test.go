package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/IBM/sarama"

	"github.com/onceflow/onceflow/e2e/harness"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// oversizedInputScenario is the fault scenario oversized-input (issue 11 §1,
// ADR 22): requests crafted to make events Kafka can never take, mixed into the
// normal load.
//
// The edge bounds what a client can put into an event (in every build), so the
// order service runs with the fault-build switch
// ORDER_FAULT_OVERSIZE_CORRELATION_PREFIX=crafted-: its forwarder adds 10 KiB
// of metadata to an event whose correlation id starts with "crafted-" before
// Kafka sees it, and both event topics get max.message.bytes = 8 KiB, so a
// crafted request (X-Correlation-ID: crafted-N) makes an OrderPlaced the broker
// itself refuses with MESSAGE_TOO_LARGE.
//
// Expected: every other order completes (the checker's usual invariants, with
// nothing parked but the crafted orders' events, I9); each crafted order is
// parked, visible at /admin/poison/parked, and ends CANCELLED by the 60 s
// payment timeout, unpaid, with its OrderCancelled parked behind its OrderPlaced.
func oversizedInputScenario() scenario {
	return scenario{name: "oversized-input", rate: 40, duration: 40 * time.Second,
		stack:  harness.StackConfig{OrderEnv: []string{"ORDER_FAULT_OVERSIZE_CORRELATION_PREFIX=" + craftedPrefix, "ORDER_ADMIN_TOKEN=oversized"}},
		faults: oversizedTimeline}
}

// craftedPrefix starts the correlation id of every crafted request.
const craftedPrefix = "crafted-"

func oversizedTimeline(f *faultRun) error {
	from := time.Now()
	if err := limitTopics(f.s.Kafka, "8192", f.s.Topics.Orders, f.s.Topics.Payments); err != nil {
		return err
	}
	f.record("max.message.bytes=8192 on the event topics", from, 0)
	var crafted []string
	for i, at := range []time.Duration{4 * time.Second, 9 * time.Second, 14 * time.Second, 19 * time.Second, 24 * time.Second} {
		f.sleepUntil(at)
		id, err := placeCrafted(f.s, i)
		if err != nil {
			return err
		}
		f.s.Craft(id)
		crafted = append(crafted, id)
		f.record("crafted order "+id+" (its events padded to over 8 KiB)", time.Now(), 0)
	}
	// The crafted orders settle only when the payment timeout (60 s) cancels
	// them; wait for that (and for both of their events to be parked) before the
	// checker looks, or at most 150 s (the checker then reports what is missing).
	deadline := time.Now().Add(150 * time.Second)
	for time.Now().Before(deadline) {
		var parked []struct {
			Key    string `json:"key"`
			Reason string `json:"reason"`
		}
		var body struct {
			Parked *[]struct {
				Key    string `json:"key"`
				Reason string `json:"reason"`
			} `json:"parked"`
		}
		body.Parked = &parked
		status, err := f.s.Call(context.Background(), f.s.Orders[0], http.MethodGet, "/admin/poison/parked", "oversized", &body)
		if err == nil && status == http.StatusOK && len(parked) >= 2*len(crafted) {
			f.t.Logf("oversized-input: %d parked row(s) visible at /admin/poison/parked", len(parked))
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return nil
}

// placeCrafted posts an order whose correlation id starts with craftedPrefix
// and returns its id.
func placeCrafted(s *harness.Stack, i int) (string, error) {
	body, _ := json.Marshal(map[string]any{"customer_id": richCustomers[i%len(richCustomers)], "amount_cents": 500, "currency": "EUR"})
	req, err := http.NewRequest(http.MethodPost, "http://"+s.Orders[0].HTTPAddr+"/orders", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Correlation-ID", fmt.Sprintf("%s%d", craftedPrefix, i))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("crafted order: %w", err)
	}
	defer resp.Body.Close()
	var o struct {
		ID string `json:"id"`
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("crafted order: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
		return "", err
	}
	return o.ID, nil
}

// limitTopics sets max.message.bytes on topics.
func limitTopics(kc kafka.Config, maxBytes string, topics ...string) error {
	admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.ProducerConfig())
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, t := range topics {
		if err := admin.AlterConfig(sarama.TopicResource, t, map[string]*string{"max.message.bytes": &maxBytes}, false); err != nil {
			return fmt.Errorf("limiting %s: %w", t, err)
		}
	}
	return nil
}
