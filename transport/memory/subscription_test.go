package memory

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
)

// TestSubscriptionCap: a 2/s cap with 5 messages at one instant delivers 2
// at once, holds the newest 2 for release within the second, and drops 1.
func TestSubscriptionCap(t *testing.T) {
	t.Parallel()
	for _, topic := range []string{"cursor", "cur:*"} {
		t.Run(topic, func(t *testing.T) {
			t.Parallel()
			h, clock := newHub(t, Options{})
			a := connect(t, h, "lobby", "alice")
			b := connect(t, h, "lobby", "bob")
			subscribe(t, b, topic, 2)
			name := "cursor"
			if topic != "cursor" {
				name = "cur:x"
			}
			for i := 1; i <= 5; i++ {
				publish(t, a, pubsub.PublishRequest{Topic: name, Payload: payload(i)})
			}
			if got, want := numbers(t, received(b)), []int{1, 2}; !cmp.Equal(got, want) {
				t.Errorf("received at once %v, want %v", got, want)
			}
			clock.Advance(time.Second)
			if got, want := numbers(t, received(b)), []int{4, 5}; !cmp.Equal(got, want) {
				t.Errorf("received within the next second %v, want %v", got, want)
			}
			if n := clock.Pending(); n != 0 {
				t.Errorf("%d timers pending with nothing held, want 0", n)
			}
			if s := h.Stats(); s.CapDropped != 1 || s.Delivered != 4 {
				t.Errorf("Stats() = %+v, want CapDropped 1, Delivered 4", s)
			}
		})
	}
}

func TestSubscriptionCapKeepsOrderWithNewMessages(t *testing.T) {
	t.Parallel()
	h, clock := newHub(t, Options{})
	a := connect(t, h, "lobby", "alice")
	b := connect(t, h, "lobby", "bob")
	subscribe(t, b, "chat", 1)
	publish(t, a, pubsub.PublishRequest{Topic: "chat", Payload: payload(1)})
	publish(t, a, pubsub.PublishRequest{Topic: "chat", Payload: payload(2)}) // held
	clock.Advance(999 * time.Millisecond)
	publish(t, a, pubsub.PublishRequest{Topic: "chat", Payload: payload(3)}) // held; 2 is dropped
	clock.Advance(time.Millisecond)
	publish(t, a, pubsub.PublishRequest{Topic: "chat", Payload: payload(4)}) // waits behind 3
	clock.Advance(2 * time.Second)
	if got, want := numbers(t, received(b)), []int{1, 3, 4}; !cmp.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
}

func TestResubscribeChangesRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		first    float64
		second   float64
		atOnce   []int // of 1..6 published after the second Subscribe
		released []int // after the clock moves on
	}{
		{"add a cap", 0, 2, []int{1, 2}, []int{5, 6}},
		{"raise the cap", 1, 3, []int{1}, []int{4, 5, 6}}, // the bucket keeps its tokens
		{"lower the cap", 3, 1, []int{1}, []int{6}},
		{"remove the cap", 1, 0, []int{1, 2, 3, 4, 5, 6}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, clock := newHub(t, Options{MaxSubscriptions: 1})
			a := connect(t, h, "lobby", "alice")
			b := connect(t, h, "lobby", "bob")
			subscribe(t, b, "chat", tt.first)
			subscribe(t, b, "chat", tt.second) // not a second subscription
			for i := 1; i <= 6; i++ {
				publish(t, a, pubsub.PublishRequest{Topic: "chat", Payload: payload(i)})
			}
			if got := numbers(t, received(b)); !cmp.Equal(got, tt.atOnce) {
				t.Errorf("received at once %v, want %v", got, tt.atOnce)
			}
			clock.Advance(time.Second)
			if got := numbers(t, received(b)); !cmp.Equal(got, tt.released, cmpEmpty) {
				t.Errorf("received later %v, want %v", got, tt.released)
			}
		})
	}
}

var cmpEmpty = cmp.Comparer(func(a, b []int) bool { return len(a) == 0 && len(b) == 0 || cmp.Equal(a, b) })

func TestRemovingCapDeliversHeld(t *testing.T) {
	t.Parallel()
	h, clock := newHub(t, Options{})
	a := connect(t, h, "lobby", "alice")
	b := connect(t, h, "lobby", "bob")
	subscribe(t, b, "chat", 2)
	for i := 1; i <= 4; i++ {
		publish(t, a, pubsub.PublishRequest{Topic: "chat", Payload: payload(i)})
	}
	subscribe(t, b, "chat", 0)
	if got, want := numbers(t, received(b)), []int{1, 2, 3, 4}; !cmp.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
	if n := clock.Pending(); n != 0 {
		t.Errorf("%d timers pending after removing the cap, want 0", n)
	}
}

func TestSubscribeValidates(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{})
	c := connect(t, h, "lobby", "alice")
	tests := []struct {
		name string
		req  pubsub.SubscribeRequest
		want pubsub.Code // "" means success
	}{
		{"topic", pubsub.SubscribeRequest{Topic: "chat"}, ""},
		{"pattern", pubsub.SubscribeRequest{Topic: "user:*:events"}, ""},
		{"glob inside a segment", pubsub.SubscribeRequest{Topic: "user*"}, ""},
		{"one character", pubsub.SubscribeRequest{Topic: "user:?"}, ""},
		{"empty", pubsub.SubscribeRequest{Topic: ""}, pubsub.CodeInvalidTopicName},
		{"space", pubsub.SubscribeRequest{Topic: "chat room"}, pubsub.CodeInvalidTopicName},
		{"'>' is no wildcard", pubsub.SubscribeRequest{Topic: "user:>"}, pubsub.CodeInvalidTopicName},
		{"character class", pubsub.SubscribeRequest{Topic: "user:[0-9]"}, pubsub.CodeInvalidTopicName},
		{"negative rate", pubsub.SubscribeRequest{Topic: "chat", Rate: -1}, pubsub.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := c.Subscribe(context.Background(), tt.req)
			if tt.want == "" {
				if err != nil {
					t.Errorf("Subscribe(%q) = %v, want nil", tt.req.Topic, err)
				}
				return
			}
			wantCode(t, "Subscribe("+tt.req.Topic+")", err, tt.want)
		})
	}
}

// TestPatternSeedExample is the pattern example of the README and of the
// seed's HTTP API: a subscription to "user:*" receives what is published to
// "user:123:events", since "*" matches any run of characters, colons
// included.
func TestPatternSeedExample(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{})
	a := connect(t, h, "lobby", "alice")
	b := connect(t, h, "lobby", "bob")
	subscribe(t, b, "user:*", 0)
	for _, name := range []string{"users:123", "user:123:events", "user"} {
		publish(t, a, pubsub.PublishRequest{Topic: name})
	}
	var got []string
	for _, m := range received(b) {
		got = append(got, m.Topic)
	}
	if want := []string{"user:123:events"}; !cmp.Equal(got, want) {
		t.Errorf("user:* received %q, want %q", got, want)
	}
}

func TestMaxSubscriptions(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{MaxSubscriptions: 2})
	c := connect(t, h, "lobby", "alice")
	subscribe(t, c, "chat", 0)
	subscribe(t, c, "user:*", 0)
	subscribe(t, c, "chat", 5) // an update, not a third
	err := c.Subscribe(context.Background(), pubsub.SubscribeRequest{Topic: "news"})
	wantCode(t, "Subscribe(news) over the limit", err, pubsub.CodeTooManySubscriptions)
	if err := c.Unsubscribe(context.Background(), "user:*"); err != nil {
		t.Fatalf("Unsubscribe(user:*) = %v", err)
	}
	subscribe(t, c, "news", 0)
	// Another connection has its own count.
	subscribe(t, connect(t, h, "lobby", "alice"), "news", 0)
}

func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	h, clock := newHub(t, Options{})
	a := connect(t, h, "lobby", "alice")
	b := connect(t, h, "lobby", "bob")
	subscribe(t, b, "chat", 1)
	subscribe(t, b, "user:*", 0)
	publish(t, a, pubsub.PublishRequest{Topic: "chat", Payload: payload(1)})
	publish(t, a, pubsub.PublishRequest{Topic: "chat", Payload: payload(2)}) // held
	ctx := context.Background()
	for _, name := range []string{"chat", "user:*", "never", "chat"} {
		if err := b.Unsubscribe(ctx, name); err != nil {
			t.Errorf("Unsubscribe(%q) = %v, want nil", name, err)
		}
	}
	wantCode(t, "Unsubscribe(\"bad name\")", b.Unsubscribe(ctx, "bad name"), pubsub.CodeInvalidTopicName)
	if n := clock.Pending(); n != 0 {
		t.Errorf("%d timers pending after Unsubscribe, want 0", n)
	}
	publish(t, a, pubsub.PublishRequest{Topic: "chat", Payload: payload(3)})
	publish(t, a, pubsub.PublishRequest{Topic: "user:1", Payload: payload(4)})
	clock.Advance(time.Second)
	if got, want := numbers(t, received(b)), []int{1}; !cmp.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
}

func TestUnusedTopicStateIsForgotten(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{})
	c := connect(t, h, "lobby", "alice")
	subscribe(t, c, "chat", 0)
	if err := c.Unsubscribe(context.Background(), "chat"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*conn).r.topics.Load("chat"); ok {
		t.Errorf("topic state kept after its last subscription ended")
	}
	subscribe(t, c, "chat", 0)
	publish(t, connect(t, h, "lobby", "bob"), pubsub.PublishRequest{Topic: "chat"})
	if n := len(received(c)); n != 1 {
		t.Errorf("received %d messages after subscribing again, want 1", n)
	}
}

func TestIdleTopicIsForgotten(t *testing.T) {
	t.Parallel()
	h, clock := newHub(t, Options{DedupWindow: time.Minute, PublishRate: 1})
	a := connect(t, h, "lobby", "alice")
	r := a.(*conn).r
	publish(t, a, pubsub.PublishRequest{Topic: "old", IdempotencyKey: "k"})
	clock.Advance(40 * time.Second)
	publish(t, a, pubsub.PublishRequest{Topic: "new", IdempotencyKey: "k"})
	if _, ok := r.topics.Load("old"); !ok {
		t.Fatalf("topic forgotten while its idempotency key is live")
	}
	clock.Advance(40 * time.Second)
	publish(t, a, pubsub.PublishRequest{Topic: "new", IdempotencyKey: "j"})
	if _, ok := r.topics.Load("old"); ok {
		t.Errorf("topic kept a window after its last publish")
	}
	if _, ok := r.topics.Load("new"); !ok {
		t.Errorf("topic with a live idempotency key forgotten")
	}
	// The publish rate state of a forgotten topic was full anyway.
	publish(t, a, pubsub.PublishRequest{Topic: "old", IdempotencyKey: "k"})
	if got := h.Stats().Deduplicated; got != 0 {
		t.Errorf("Deduplicated = %d, want 0", got)
	}
}

// An exact subscription added while a capped pattern subscription of the
// same connection holds messages of that topic does not overtake them: the
// held ones go out first, and the topic stays in id order.
func TestExactSubscriptionAfterHeldPatternKeepsOrder(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	hub, err := New(Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	ctx := context.Background()
	pub, _ := hub.Connect(ctx, pubsub.ConnectRequest{Room: "r", ClientID: "p"})
	sub, _ := hub.Connect(ctx, pubsub.ConnectRequest{Room: "r", ClientID: "s"})
	if err := sub.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "a:*", Rate: 2}); err != nil {
		t.Fatal(err)
	}
	var ids []pubsub.ID
	for range 5 { // 2 pass, the newest 2 are held, 1 is dropped
		m, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "a:1", Payload: []byte("1")})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if err := sub.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "a:1"}); err != nil {
		t.Fatal(err)
	}
	m, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "a:1", Payload: []byte("2")})
	if err != nil {
		t.Fatal(err)
	}
	want := []pubsub.ID{ids[0], ids[1], ids[3], ids[4], m.ID}
	// Without the flush the held two would wait for the pattern's timer,
	// behind the newer message: only three would come now.
	var got []pubsub.ID
	for range want {
		select {
		case m := <-sub.Messages():
			got = append(got, m.ID)
		case <-time.After(waitTimeout):
			t.Fatalf("received %v, then nothing for %v; want %v", got, waitTimeout, want)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	clock.Advance(time.Hour) // the pattern's timer finds nothing left to release
	select {
	case extra := <-sub.Messages():
		t.Errorf("unexpected delivery %v after the flush", extra.ID)
	default:
	}
}
