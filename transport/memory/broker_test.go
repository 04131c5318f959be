package memory

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
)

// fakeBroker is a Broker in memory that records what the hub asks of it
// and delivers only when the test says so.
type fakeBroker struct {
	mu       sync.Mutex
	recv     Receiver
	store    history.Store
	next     pubsub.ID
	calls    []string // "sub room/name", "unsub room/name"
	origins  []string // of each Publish
	lost     chan struct{}
	ready    error
	failWith error
}

func newFakeBroker() *fakeBroker {
	return &fakeBroker{store: history.NewMemory(history.Options{}), next: 1000, lost: make(chan struct{})}
}

func (b *fakeBroker) Attach(r Receiver) { b.recv = r }
func (b *fakeBroker) Publish(ctx context.Context, room string, m pubsub.Message, key, origin string) (pubsub.Message, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failWith != nil {
		return pubsub.Message{}, false, b.failWith
	}
	b.next++
	m.ID = b.next
	b.origins = append(b.origins, origin)
	return m, false, nil
}
func (b *fakeBroker) Subscribe(ctx context.Context, room, name string) error {
	b.mu.Lock()
	b.calls = append(b.calls, "sub "+room+"/"+name)
	b.mu.Unlock()
	return nil
}
func (b *fakeBroker) Unsubscribe(room, name string) {
	b.mu.Lock()
	b.calls = append(b.calls, "unsub "+room+"/"+name)
	b.mu.Unlock()
}
func (b *fakeBroker) History() history.Store { return b.store }
func (b *fakeBroker) Allow(ctx context.Context, key string, limit int, now time.Time) (bool, time.Duration, error) {
	return true, 0, nil
}
func (b *fakeBroker) NodeID() int                     { return 5 }
func (b *fakeBroker) Lost() <-chan struct{}           { return b.lost }
func (b *fakeBroker) Ready(ctx context.Context) error { return b.ready }
func (b *fakeBroker) Close() error                    { return b.store.Close() }

func (b *fakeBroker) callsSoFar() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

func brokerHub(t *testing.T) (*Hub, *fakeBroker) {
	t.Helper()
	b := newFakeBroker()
	t.Cleanup(func() { b.Close() })
	h, _ := newHub(t, Options{Broker: b})
	return h, b
}

func dial(t *testing.T, h *Hub, id string) pubsub.Conn {
	t.Helper()
	c, err := h.Connect(context.Background(), pubsub.ConnectRequest{Room: "lobby", ClientID: id})
	if err != nil {
		t.Fatalf("Connect as %s = %v", id, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// With a Broker, Publish goes to the Broker and nothing reaches a local
// subscriber until the Broker delivers it; the delivery skips the
// publishing connection, and reaches a pattern subscriber once, through
// the pattern's delivery.
func TestBrokerPublishAndDeliver(t *testing.T) {
	h, b := brokerHub(t)
	alice, bob, carol := dial(t, h, "alice"), dial(t, h, "bob"), dial(t, h, "carol")
	ctx := context.Background()
	for _, c := range []pubsub.Conn{alice, bob} {
		if err := c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := carol.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "ch*"}); err != nil {
		t.Fatal(err)
	}
	m, err := alice.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: json.RawMessage(`1`)})
	if err != nil {
		t.Fatalf("Publish = %v", err)
	}
	if m.ID != 1001 {
		t.Errorf("Publish returned id %v, want the Broker's 1001", m.ID)
	}
	select {
	case got := <-bob.Messages():
		t.Fatalf("bob received %v before the Broker delivered it", got.ID)
	default:
	}
	origin := b.origins[0]
	b.recv.Deliver(Delivery{Room: "lobby", Message: m, Origin: origin})
	b.recv.Deliver(Delivery{Room: "lobby", Message: m, Origin: origin, Pattern: "ch*"})
	for name, c := range map[string]pubsub.Conn{"bob": bob, "carol": carol} {
		select {
		case got := <-c.Messages():
			if got.ID != m.ID {
				t.Errorf("%s received %v, want %v", name, got.ID, m.ID)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("timed out after %v waiting for %s's delivery", waitTimeout, name)
		}
	}
	for name, c := range map[string]pubsub.Conn{"alice": alice, "bob": bob, "carol": carol} {
		select {
		case got := <-c.Messages():
			t.Errorf("%s received %v once too often (or her own)", name, got.ID)
		default:
		}
	}
	if err := h.WaitDelivered(ctx, "lobby", "chat", m.ID); err != nil {
		t.Errorf("WaitDelivered after both deliveries = %v", err)
	}
}

// The Broker subscribes once per room and topic or pattern, for the first
// local subscriber, and unsubscribes after the last.
func TestBrokerSubscriptionRefcount(t *testing.T) {
	h, b := brokerHub(t)
	alice, bob := dial(t, h, "alice"), dial(t, h, "bob")
	ctx := context.Background()
	alice.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"})
	bob.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"})
	bob.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat", Rate: 5}) // a rate change only
	bob.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "user:*"})
	alice.Unsubscribe(ctx, "chat")
	if got, want := b.callsSoFar(), []string{"sub lobby/chat", "sub lobby/user:*"}; !slices.Equal(got, want) {
		t.Errorf("Broker calls = %q, want %q", got, want)
	}
	bob.Close()
	got := b.callsSoFar()
	slices.Sort(got[2:])
	if want := []string{"sub lobby/chat", "sub lobby/user:*", "unsub lobby/chat", "unsub lobby/user:*"}; !slices.Equal(got, want) {
		t.Errorf("Broker calls after the last subscriber left = %q, want %q", got, want)
	}
}

// An interrupted Broker subscription drops the connections that hold it
// with NETWORK_ERROR, so that their Rooms reconnect and fill the gap;
// others stay.
func TestBrokerMissedDropsSubscribers(t *testing.T) {
	h, b := brokerHub(t)
	alice, bob := dial(t, h, "alice"), dial(t, h, "bob")
	ctx := context.Background()
	alice.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"})
	bob.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "news"})
	b.recv.Missed("lobby", "chat")
	select {
	case <-alice.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for alice's connection to drop", waitTimeout)
	}
	if err := alice.Err(); !errors.Is(err, pubsub.ErrNetwork) {
		t.Errorf("alice's Err() = %v, want NETWORK_ERROR", err)
	}
	if err := bob.Err(); err != nil {
		t.Errorf("bob's Err() = %v, want nil: his subscription was not interrupted", err)
	}
}

// Publishes fail with the Broker's error, and with ErrLeaseLost once the
// lease is lost; Ready follows the Broker.
func TestBrokerErrorsReachThePublisher(t *testing.T) {
	h, b := brokerHub(t)
	alice := dial(t, h, "alice")
	ctx := context.Background()
	req := pubsub.PublishRequest{Topic: "chat", Payload: json.RawMessage(`1`)}
	b.failWith = &pubsub.Error{Code: pubsub.CodeNetworkError, Message: "unreachable"}
	b.ready = b.failWith
	if _, err := alice.Publish(ctx, req); !errors.Is(err, pubsub.ErrNetwork) {
		t.Errorf("Publish while the Broker fails = %v, want NETWORK_ERROR", err)
	}
	if err := h.Ready(ctx); !errors.Is(err, pubsub.ErrNetwork) {
		t.Errorf("Ready() while the Broker fails = %v, want NETWORK_ERROR", err)
	}
	b.failWith, b.ready = nil, nil
	close(b.lost)
	if _, err := alice.Publish(ctx, req); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Publish after the lease was lost = %v, want ErrLeaseLost", err)
	}
	if err := h.Ready(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Ready() after the lease was lost = %v, want ErrLeaseLost", err)
	}
}

// raisingBroker confirms every publish with an id of its own choosing,
// as a Broker does when a topic's last id is above the hub's proposal.
type raisingBroker struct {
	*fakeBroker
	raise     func(proposed pubsub.ID) pubsub.ID
	proposals []pubsub.ID
}

func (b *raisingBroker) Publish(ctx context.Context, room string, m pubsub.Message, key, origin string) (pubsub.Message, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.proposals = append(b.proposals, m.ID)
	m.ID = b.raise(m.ID)
	return m, false, nil
}

// An id a Broker confirms above the hub's proposal is never proposed
// again: the hub's later ids, for any topic, are above it, even on a clock
// that stands still.
func TestBrokerRaisedIDRaisesTheFloor(t *testing.T) {
	const second = pubsub.ID(1000 << 22) // a second later, same node and sequence
	b := &raisingBroker{fakeBroker: newFakeBroker()}
	b.raise = func(p pubsub.ID) pubsub.ID { return p + second }
	t.Cleanup(func() { b.Close() })
	h, _ := newHub(t, Options{Broker: b})
	alice := dial(t, h, "alice")
	ctx := context.Background()
	var confirmed []pubsub.ID
	for _, topic := range []string{"a", "b", "a"} {
		m, err := alice.Publish(ctx, pubsub.PublishRequest{Topic: topic, Payload: json.RawMessage(`1`)})
		if err != nil {
			t.Fatalf("Publish(%s) = %v", topic, err)
		}
		confirmed = append(confirmed, m.ID)
	}
	for i := 1; i < len(b.proposals); i++ {
		if b.proposals[i] <= confirmed[i-1] {
			t.Errorf("publish %d proposed %d, not above %d the Broker confirmed for the publish before", i, b.proposals[i], confirmed[i-1])
		}
	}
}

// Receiver.Propose hands out an id of the hub's node above the one asked,
// and never the same one twice.
func TestBrokerPropose(t *testing.T) {
	_, b := brokerHub(t)
	last := pubsub.ID(1<<62 | 9<<12 | 7) // node 9, far in the future
	id := b.recv.Propose(last)
	if id <= last || id.Node() != int64(b.NodeID()) {
		t.Fatalf("Propose(%d) = %d (node %d), want an id above it of node %d", last, id, id.Node(), b.NodeID())
	}
	again := b.recv.Propose(last)
	if again <= id {
		t.Errorf("second Propose(%d) = %d, want above the first, %d", last, again, id)
	}
}
