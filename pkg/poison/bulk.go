package poison

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"

	"github.com/onceflow/onceflow/pkg/dryrun"
)

// ErrConfirmationRequired is returned by ReplayAll without a confirmation
// token: a bulk replay needs the token of its dry run (DryRunAll).
var ErrConfirmationRequired = errors.New("a bulk replay needs the confirmation token of its dry run: run the dry run first (POST /admin/poison/replay/dry-run with the same cursor, limit and reason_code) and send its confirmation")

// ErrSetChanged is returned by ReplayAll when the messages it would replay are
// not the set the confirmation token was made from (a message was poisoned or
// replayed since the dry run); nothing was replayed.
var ErrSetChanged = errors.New("the messages to replay are not the set of the dry run (a message was poisoned or replayed since): nothing was replayed; run the dry run again")

// BulkDryRun is what a replay of a page (ReplayAll) would change, message by
// message, and the token that confirms that very set.
type BulkDryRun struct {
	Topic      string `json:"topic"`
	ReasonCode string `json:"reason_code,omitempty"`
	// Messages are the messages the replay would take, oldest first.
	Messages []MessageDryRun `json:"messages"`
	Totals   DryRunTotals    `json:"totals"`
	// Confirmation is the token ReplayAll needs to replay exactly Messages
	// (Confirmation).
	Confirmation string `json:"confirmation"`
	// Next is where the next page starts, as in ReplayAll.
	Next *int64 `json:"next_cursor,omitempty"`
}

// MessageDryRun is the dry run of one message of a page.
type MessageDryRun struct {
	Offset     int64  `json:"offset"`
	ID         string `json:"id"`
	ReasonCode string `json:"reason_code,omitempty"`
	EventType  string `json:"event_type,omitempty"`
	OrderID    string `json:"order_id,omitempty"`
	Handler    string `json:"handler"`
	// StateChange is the change of the state's status ("PENDING ->
	// CONFIRMED"; "none" for no row), or empty if the state would not change.
	StateChange string        `json:"state_change,omitempty"`
	Result      dryrun.Result `json:"result"`
}

// DryRunTotals sums up the dry runs of a page.
type DryRunTotals struct {
	Messages     int `json:"messages"`
	WouldSucceed int `json:"would_succeed"`
	// WouldFail counts the messages that would fail again, by reason code.
	WouldFail map[string]int `json:"would_fail"`
	// StatesChanged counts the messages whose state (the order's, the
	// payment's) would change; States counts them by StateChange.
	StatesChanged int            `json:"states_changed"`
	States        map[string]int `json:"states"`
	// Events counts the events the replay would emit, by type.
	Events map[string]int `json:"events"`
}

// DryRunAll dry-runs, one by one, the messages ReplayAll would replay for q
// (each in its own transaction that is rolled back, as DryRun does, against
// the current state: a message does not see what the one before it would
// change), and returns what they would change and the confirmation token of
// that set. Nothing is published, recorded or committed. Errors: List's, the
// dry runs', and ErrNoConsumer for a message whose consumer this service does
// not run.
func (t *Tool) DryRunAll(ctx context.Context, q Query, c DryRunConfig) (BulkDryRun, error) {
	page, err := t.replayPage(ctx, q)
	if err != nil {
		return BulkDryRun{}, err
	}
	out := BulkDryRun{Topic: t.topic, ReasonCode: q.ReasonCode, Messages: []MessageDryRun{}, Next: page.Next,
		Confirmation: Confirmation(t.topic, q.ReasonCode, page.Entries),
		Totals:       DryRunTotals{WouldFail: map[string]int{}, States: map[string]int{}, Events: map[string]int{}}}
	for _, e := range page.Entries {
		r, err := t.dryRun(ctx, e, c)
		if err != nil {
			return BulkDryRun{}, err
		}
		m := MessageDryRun{Offset: e.Offset, ID: e.ID, ReasonCode: e.ReasonCode, EventType: e.EventType, OrderID: e.OrderID,
			Handler: e.Handler, Result: r}
		sum := &out.Totals
		sum.Messages++
		if r.WouldSucceed {
			sum.WouldSucceed++
		} else {
			sum.WouldFail[r.ReasonCode]++
		}
		if m.StateChange = stateChange(r.Before, r.After); m.StateChange != "" {
			sum.StatesChanged++
			sum.States[m.StateChange]++
		}
		for _, ev := range r.Events {
			sum.Events[ev.Type]++
		}
		out.Messages = append(out.Messages, m)
	}
	return out, nil
}

// Confirmation is the confirmation token of a bulk replay of entries from
// topic with reasonCode: the hex SHA-256 of the topic, the reason code and
// each message's offset and id. The server keeps nothing: ReplayAll computes
// it again from the set it is about to replay. It is no secret (anyone with
// the admin token can compute it); it makes sure the replay takes the set the
// operator saw, no more and no less.
func Confirmation(topic, reasonCode string, entries []Entry) string {
	type message struct {
		Offset int64  `json:"offset"`
		ID     string `json:"id"`
	}
	set := struct {
		Topic      string    `json:"topic"`
		ReasonCode string    `json:"reason_code"`
		Messages   []message `json:"messages"`
	}{Topic: topic, ReasonCode: reasonCode, Messages: []message{}}
	for _, e := range entries {
		set.Messages = append(set.Messages, message{e.Offset, e.ID})
	}
	b, _ := json.Marshal(set) // strings and integers: it cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// stateChange describes how the state would change: "" if it would not,
// else its status before and after ("none" where there is no state).
func stateChange(before, after any) string {
	b, _ := json.Marshal(before) // the state's own JSON answer
	a, _ := json.Marshal(after)
	if bytes.Equal(a, b) {
		return ""
	}
	return statusOf(b) + " -> " + statusOf(a)
}

// statusOf returns the "status" field of a state's JSON, "none" for null, or
// "changed" for a state without one.
func statusOf(state []byte) string {
	if string(state) == "null" {
		return "none"
	}
	var s struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(state, &s) != nil || s.Status == "" {
		return "changed"
	}
	return s.Status
}
