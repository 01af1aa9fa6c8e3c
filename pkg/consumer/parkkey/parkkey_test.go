package parkkey_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-sql-driver/mysql"

	"github.com/onceflow/onceflow/internal/consumertest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/consumer"
	"github.com/onceflow/onceflow/pkg/consumer/parkkey"
	"github.com/onceflow/onceflow/pkg/consumer/strategies"
	"github.com/onceflow/onceflow/pkg/failure"
	"github.com/onceflow/onceflow/pkg/sqldb"
)

// parkRig is a consumer in park-key mode whose handler writes an effect and
// fails for the message ids in failing.
type parkRig struct {
	*consumertest.Rig
	strategy *parkkey.ParkKey
	keys     parkkey.Admin

	mu      sync.Mutex
	failing map[string]error
	// outage: the first n attempts of a message id fail as if the database
	// were unreachable.
	outage map[string]int
}

// newParkRig runs the rig; adjust, if not nil, changes the strategy before
// the consumers start.
func newParkRig(t *testing.T, adjust func(*parkkey.ParkKey)) *parkRig {
	t.Helper()
	pk, err := parkkey.New(parkkey.Config{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if adjust != nil {
		adjust(pk)
	}
	p := &parkRig{strategy: pk, failing: map[string]error{}, outage: map[string]int{}}
	p.Rig = consumertest.New(t, func(c *consumer.Config) { c.Strategy = pk }, func(r *consumertest.Rig) message.NoPublishHandlerFunc {
		return func(msg *message.Message) error {
			n := r.Attempt(msg)
			p.mu.Lock()
			down := n <= p.outage[msg.UUID]
			p.mu.Unlock()
			if down {
				return fmt.Errorf("attempt %d: %w", n, driver.ErrBadConn)
			}
			if err := r.Effect(msg); err != nil {
				return err
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.failing[msg.UUID]
		}
	})
	p.keys = parkkey.Admin{DB: p.DB}
	return p
}

// fail makes the handler fail on id with err (nil: heal it).
func (p *parkRig) fail(id string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failing[id] = err
}

// queueOf returns the parked queue of key (nil if the key is not parked).
func (p *parkRig) queueOf(t *testing.T, key string) *parkkey.ParkedKey {
	t.Helper()
	k, err := p.keys.Get(context.Background(), key, "")
	if errors.Is(err, parkkey.ErrKeyNotParked) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return &k
}

// waitQueue waits until key's queue holds exactly ids, in that order.
func (p *parkRig) waitQueue(t *testing.T, key string, ids ...string) *parkkey.ParkedKey {
	t.Helper()
	var k *parkkey.ParkedKey
	testenv.WaitFor(t, "key "+key+" parked with "+strings.Join(ids, ", "), 60*time.Second, func() bool {
		k = p.queueOf(t, key)
		return k != nil && slices.Equal(queueIDs(k), ids)
	})
	return k
}

func queueIDs(k *parkkey.ParkedKey) []string {
	var ids []string
	for _, m := range k.Queue {
		ids = append(ids, m.MessageID)
	}
	return ids
}

// effectOrder returns the ids among ids that have an effect, in effect order.
// consumer is the rig's consumer as the strategy sees it.
func (p *parkRig) consumer() consumer.Consumer {
	return consumer.Consumer{Name: consumertest.Handler, Topic: p.Topic, Group: p.Group, DB: p.DB, Logger: slog.New(slog.DiscardHandler)}
}

func (p *parkRig) replay(t *testing.T, key string) {
	t.Helper()
	if _, err := p.keys.Replay(context.Background(), key, ""); err != nil {
		t.Fatal(err)
	}
}

// replayAll replays key, waits until it is released, and checks that the
// effects of ids happened in that order.
func (p *parkRig) replayAll(t *testing.T, key string, ids ...string) {
	t.Helper()
	p.replay(t, key)
	testenv.WaitFor(t, "key "+key+" released", 60*time.Second, func() bool { return p.queueOf(t, key) == nil })
	if got := p.EffectOrder(t, ids...); !slices.Equal(got, ids) {
		t.Fatalf("effects after the release of %s = %v, want %v (head, then the messages behind it)", key, got, ids)
	}
}

// TestParkKeyParksTheKeyAndReleasesItInOrder: a message that keeps failing is
// parked as its key's head with its reason; the later messages of its key are
// parked behind it (no effect) while another key flows; replaying the key runs
// the head, then the followers, in order. Without the park-behind check the
// followers run before the head.
func TestParkKeyParksTheKeyAndReleasesItInOrder(t *testing.T) {
	t.Parallel()
	p := newParkRig(t, nil)
	h, f1, other, f2 := consumertest.Keyed(watermill.NewUUID(), "order-a"), consumertest.Keyed(watermill.NewUUID(), "order-a"), consumertest.Keyed(watermill.NewUUID(), "order-b"), consumertest.Keyed(watermill.NewUUID(), "order-a")
	p.fail(h.UUID, errors.New("boom: the handler cannot take "+h.UUID))
	p.Publish(t, h, f1, other, f2)

	p.WaitEffect(t, other.UUID)
	// Wait until the last message of the key was either parked or applied, so
	// that a follower running ahead of its parked head shows as an effect.
	testenv.WaitFor(t, "the last message of key order-a parked or applied", 60*time.Second, func() bool {
		k := p.queueOf(t, "order-a")
		return (k != nil && slices.Contains(queueIDs(k), f2.UUID)) || p.Effects(t, f2.UUID) > 0
	})
	if got := p.EffectOrder(t, h.UUID, f1.UUID, f2.UUID); len(got) != 0 {
		t.Fatalf("effects of the parked key before its release: %v, want none", got)
	}
	k := p.waitQueue(t, "order-a", h.UUID, f1.UUID, f2.UUID)
	if head := k.Queue[0]; head.ReasonCode != failure.ReasonHandlerFailed || !strings.Contains(head.Error, "boom") || head.Failures != 1 {
		t.Fatalf("head = %+v, want reason handler_failed with the full error, 1 failure", head)
	}
	for _, m := range k.Queue[1:] {
		if m.ReasonCode != parkkey.ReasonBehind {
			t.Fatalf("follower %s parked with reason %q, want %q", m.MessageID, m.ReasonCode, parkkey.ReasonBehind)
		}
	}

	p.fail(h.UUID, nil)
	p.replayAll(t, "order-a", h.UUID, f1.UUID, f2.UUID)
	for _, id := range []string{h.UUID, f1.UUID, f2.UUID} {
		if ok, err := p.Consumers.Inbox().Processed(context.Background(), id); err != nil || !ok {
			t.Fatalf("inbox has not recorded released message %s (%v)", id, err)
		}
	}
	later := consumertest.Keyed(watermill.NewUUID(), "order-a")
	p.Publish(t, later)
	p.WaitEffect(t, later.UUID) // the key flows again
}

// TestParkKeyFollowerThatFailsAgainBecomesTheHead: during a release, a
// follower that fails stops it and becomes the key's head with its new reason;
// the message behind it stays parked until the next replay.
func TestParkKeyFollowerThatFailsAgainBecomesTheHead(t *testing.T) {
	t.Parallel()
	p := newParkRig(t, nil)
	h, f1, f2 := consumertest.Keyed(watermill.NewUUID(), "order-c"), consumertest.Keyed(watermill.NewUUID(), "order-c"), consumertest.Keyed(watermill.NewUUID(), "order-c")
	p.fail(h.UUID, failure.Permanent(errors.New("head broken")))
	p.fail(f1.UUID, failure.PermanentCode("follower_broken", errors.New("follower broken")))
	p.Publish(t, h, f1, f2)
	p.waitQueue(t, "order-c", h.UUID, f1.UUID, f2.UUID)

	p.fail(h.UUID, nil)
	p.replay(t, "order-c")
	var k *parkkey.ParkedKey
	testenv.WaitFor(t, "the release ended at the follower", 60*time.Second, func() bool {
		k = p.queueOf(t, "order-c")
		return k != nil && !k.ReplayRequested
	})
	if got := queueIDs(k); !slices.Equal(got, []string{f1.UUID, f2.UUID}) {
		t.Fatalf("queue after the stopped release = %v, want the follower as head, then the one behind it", got)
	}
	if head := k.Queue[0]; head.ReasonCode != "follower_broken" || head.Error != "follower broken" || head.Failures != 1 {
		t.Fatalf("new head = %+v, want reason follower_broken, its error, 1 failure", head)
	}
	if got := p.EffectOrder(t, h.UUID, f1.UUID, f2.UUID); !slices.Equal(got, []string{h.UUID}) {
		t.Fatalf("effects = %v, want only the old head's", got)
	}

	p.fail(f1.UUID, nil)
	p.replayAll(t, "order-c", h.UUID, f1.UUID, f2.UUID)
}

// TestParkKeyDiscardLetsTheRestFlow: discarding the head gives its message up
// (no effect) and releases the messages behind it; discarding a lone head
// unparks the key.
func TestParkKeyDiscardLetsTheRestFlow(t *testing.T) {
	t.Parallel()
	p := newParkRig(t, nil)
	h, f1, lone := consumertest.Keyed(watermill.NewUUID(), "order-d"), consumertest.Keyed(watermill.NewUUID(), "order-d"), consumertest.Keyed(watermill.NewUUID(), "order-e")
	p.fail(h.UUID, failure.Permanent(errors.New("garbage")))
	p.fail(lone.UUID, failure.Permanent(errors.New("garbage too")))
	p.Publish(t, h, f1, lone)
	p.waitQueue(t, "order-d", h.UUID, f1.UUID)
	p.waitQueue(t, "order-e", lone.UUID)

	got, err := p.keys.Discard(context.Background(), "order-d", "")
	if err != nil || got.MessageID != h.UUID {
		t.Fatalf("discard = %+v, %v; want the head %s", got, err, h.UUID)
	}
	if k := p.queueOf(t, "order-d"); k != nil && !k.ReplayRequested {
		t.Fatalf("after discarding the head, key order-d = %+v: its follower is neither released nor to be released", k)
	}
	p.WaitEffect(t, f1.UUID)
	testenv.WaitFor(t, "key order-d released", 60*time.Second, func() bool { return p.queueOf(t, "order-d") == nil })
	if n := p.Effects(t, h.UUID); n != 0 {
		t.Fatalf("the discarded head has %d effects, want 0", n)
	}

	if _, err := p.keys.Discard(context.Background(), "order-e", ""); err != nil {
		t.Fatal(err)
	}
	if k := p.queueOf(t, "order-e"); k != nil {
		t.Fatalf("a key whose only message was discarded is still parked: %+v", k)
	}
	if _, err := p.keys.Discard(context.Background(), "order-e", ""); !errors.Is(err, parkkey.ErrKeyNotParked) {
		t.Fatalf("discarding an unparked key: %v, want ErrKeyNotParked", err)
	}
}

// TestParkKeyMessageDuringReleaseComesAfterIt holds the release's last step
// (it has deleted the key's row, not yet committed): the park check of a new
// message of the key must wait for that lock (a probe with a 1 s lock wait
// times out), and the new message, delivered meanwhile, is applied after the
// released ones. Without the lock, the check would see the key still parked
// and park the message behind a queue nobody releases any more.
func TestParkKeyMessageDuringReleaseComesAfterIt(t *testing.T) {
	t.Parallel()
	inside, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p := newParkRig(t, func(pk *parkkey.ParkKey) {
		parkkey.SetReleaseHookForTest(pk, func(key string, emptied bool) {
			if key == "order-f" && emptied {
				once.Do(func() { close(inside); <-release })
			}
		})
	})
	h, f1 := consumertest.Keyed(watermill.NewUUID(), "order-f"), consumertest.Keyed(watermill.NewUUID(), "order-f")
	p.fail(h.UUID, failure.Permanent(errors.New("not yet")))
	p.Publish(t, h, f1)
	p.waitQueue(t, "order-f", h.UUID, f1.UUID)
	p.fail(h.UUID, nil)
	p.replay(t, "order-f")
	<-inside

	probe := consumertest.Keyed(watermill.NewUUID(), "order-f")
	err := withLockWaitTimeout(t, p.DB, func(ctx context.Context) error {
		parked, err := parkkey.ParkBehindIfParkedForTest(ctx, p.consumer(), probe)
		if err == nil && parked {
			return errors.New("the check parked the message behind a key whose release is committing")
		}
		return err
	})
	var myErr *mysql.MySQLError
	if !errors.As(err, &myErr) || myErr.Number != 1205 {
		close(release)
		t.Fatalf("park check while a release holds the key = %v; want it to wait for the key's lock (1205)", err)
	}
	n := consumertest.Keyed(watermill.NewUUID(), "order-f")
	p.Publish(t, n)
	close(release)

	p.WaitEffect(t, n.UUID)
	if got, want := p.EffectOrder(t, h.UUID, f1.UUID, n.UUID), []string{h.UUID, f1.UUID, n.UUID}; !slices.Equal(got, want) {
		t.Fatalf("effects = %v, want the released ones, then the new message: %v", got, want)
	}
	if k := p.queueOf(t, "order-f"); k != nil {
		t.Fatalf("key order-f still parked: %+v", k)
	}
}

// withLockWaitTimeout runs fn in a transaction (carried by its context) on a
// connection whose lock waits time out after 1 s, then rolls it back.
func withLockWaitTimeout(t *testing.T, db *sql.DB, fn func(ctx context.Context) error) error {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = 1"); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(ctx, sqldb.TxOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(sqldb.ContextWithTx(ctx, tx))
}

// TestParkKeyOutageIsNotParked: a handler that fails because the database is
// unreachable (for more attempts than one delivery's retries) is nacked and
// delivered again, never parked; it then succeeds.
func TestParkKeyOutageIsNotParked(t *testing.T) {
	t.Parallel()
	p := newParkRig(t, nil)
	m := consumertest.Keyed(watermill.NewUUID(), "order-g")
	p.mu.Lock()
	p.outage[m.UUID] = 7 // one delivery makes 3 attempts: this spans three deliveries
	p.mu.Unlock()
	p.Publish(t, m)
	testenv.WaitFor(t, "the message applied or parked", 60*time.Second, func() bool {
		return p.Effects(t, m.UUID) > 0 || p.queueOf(t, "order-g") != nil
	})
	if k := p.queueOf(t, "order-g"); k != nil {
		t.Fatalf("an outage parked the key: %+v", k.Head)
	}
}

// TestParkKeyConcurrentCreatorsMakeOneHead (issue 24, item 7): two paths
// park messages of one key at once (the delayed path and the Kafka path, or
// two consumers of a partition during a rebalance). While the first creator's
// transaction holds the key's new row, the second creator and the park check
// of a third message wait for it (a 1 s lock wait times out); once it
// committed, the second creator finds the key parked and parks its message
// behind the head, and the third message is parked behind them: the key has
// one head, the first creator's message, and nothing of the key runs.
func TestParkKeyConcurrentCreatorsMakeOneHead(t *testing.T) {
	testenv.NeedsServers(t, "park-key on MariaDB")
	t.Parallel()
	d := testenv.NewDatabase(t, testenv.OrderDBAddr)
	d.Migrate(t, nil)
	db := d.Open(t, 4) // as the service user
	c := consumer.Consumer{Name: "test", Topic: "events", Group: "g", DB: db, Logger: slog.New(slog.DiscardHandler)}
	const key = "order-h"
	first, second, third := consumertest.Keyed("m-1", key), consumertest.Keyed("m-2", key), consumertest.Keyed("m-3", key)
	ctx := context.Background()

	held, err := db.BeginTx(ctx, sqldb.TxOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = held.Rollback() }()
	if head, err := parkkey.ParkHeadForTest(sqldb.ContextWithTx(ctx, held), c, first, errors.New("first path fails")); err != nil || !head {
		t.Fatalf("first creator: head %v, %v; want the head", head, err)
	}
	for name, try := range map[string]func(ctx context.Context) error{
		"second creator": func(ctx context.Context) error {
			_, err := parkkey.ParkHeadForTest(ctx, c, second, errors.New("second path fails"))
			return err
		},
		"park check": func(ctx context.Context) error {
			_, err := parkkey.ParkBehindIfParkedForTest(ctx, c, third)
			return err
		},
	} {
		var myErr *mysql.MySQLError
		if err := withLockWaitTimeout(t, d.Admin, try); !errors.As(err, &myErr) || myErr.Number != 1205 {
			t.Fatalf("%s while the first creator holds the key = %v; want it to wait for the key's lock (1205)", name, err)
		}
	}
	if err := held.Commit(); err != nil {
		t.Fatal(err)
	}

	if head, err := parkkey.ParkHeadForTest(ctx, c, second, errors.New("second path fails")); err != nil || head {
		t.Fatalf("second creator after the first committed: head %v, %v; want parked behind the head", head, err)
	}
	if parked, err := parkkey.ParkBehindIfParkedForTest(ctx, c, third); err != nil || !parked {
		t.Fatalf("park check after both: parked %v, %v; want parked behind", parked, err)
	}
	k, err := parkkey.Admin{DB: db}.Get(ctx, key, "")
	if err != nil {
		t.Fatal(err)
	}
	var heads []string
	for _, m := range k.Queue {
		if m.ReasonCode != parkkey.ReasonBehind {
			heads = append(heads, m.MessageID)
		}
	}
	if got := queueIDs(&k); !slices.Equal(got, []string{"m-1", "m-2", "m-3"}) || !slices.Equal(heads, []string{"m-1"}) {
		t.Fatalf("queue %v with heads %v; want m-1, m-2, m-3 with one head, m-1", got, heads)
	}
	if !strings.Contains(k.Queue[1].Error, "second path fails") {
		t.Errorf("the second creator's message keeps no trace of its own failure: %q", k.Queue[1].Error)
	}
}

// TestParkKeyConfig: the poll interval defaults to 1 s and must be positive.
func TestParkKeyConfig(t *testing.T) {
	if got := (parkkey.Config{}).Defaults().PollInterval; got != time.Second {
		t.Fatalf("default poll interval = %v, want 1s", got)
	}
	if err := (parkkey.Config{PollInterval: -time.Second}).Validate(); err == nil {
		t.Fatal("a negative poll interval passed validation")
	}
	if err := strategies.ParkKey.Validate(); err != nil {
		t.Fatal(err)
	}
}
