package memory

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
)

func TestFanout(t *testing.T) {
	t.Parallel()
	type spec struct {
		id   string
		room string   // "" means lobby
		subs []string // topics and patterns, in order
	}
	tests := []struct {
		name  string
		conns []spec // conns[0] publishes
		req   pubsub.PublishRequest
		want  map[int]string // conn index → the subscription it got the message through
	}{
		{
			name:  "no self-echo",
			conns: []spec{{id: "alice", subs: []string{"chat"}}, {id: "bob", subs: []string{"chat"}}},
			req:   pubsub.PublishRequest{Topic: "chat"},
			want:  map[int]string{1: "chat"},
		},
		{
			name:  "same client on another conn receives",
			conns: []spec{{id: "alice", subs: []string{"chat"}}, {id: "alice", subs: []string{"chat"}}},
			req:   pubsub.PublishRequest{Topic: "chat"},
			want:  map[int]string{1: "chat"},
		},
		{
			name:  "unsubscribed and other topics",
			conns: []spec{{id: "alice"}, {id: "bob"}, {id: "carol", subs: []string{"news", "Chat"}}},
			req:   pubsub.PublishRequest{Topic: "chat"},
			want:  map[int]string{},
		},
		{
			name:  "other room",
			conns: []spec{{id: "alice"}, {id: "bob", room: "attic", subs: []string{"chat", "*"}}},
			req:   pubsub.PublishRequest{Topic: "chat"},
			want:  map[int]string{},
		},
		{
			name: "To",
			conns: []spec{
				{id: "alice"},
				{id: "bob", subs: []string{"chat"}},
				{id: "carol", subs: []string{"chat"}},
				{id: "dave", subs: []string{"*"}},
			},
			req:  pubsub.PublishRequest{Topic: "chat", To: []string{"bob", "dave"}},
			want: map[int]string{1: "chat", 3: "*"},
		},
		{
			name: "long To",
			conns: []spec{
				{id: "alice"},
				{id: "bob", subs: []string{"chat"}},
				{id: "carol", subs: []string{"chat"}},
			},
			req:  pubsub.PublishRequest{Topic: "chat", To: []string{"u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "carol"}},
			want: map[int]string{2: "chat"},
		},
		{
			name: "patterns",
			conns: []spec{
				{id: "alice"},
				{id: "bob", subs: []string{"user:*"}},
				{id: "carol", subs: []string{"*:4?"}},
				{id: "dave", subs: []string{"user:*:events"}},
				{id: "erin", subs: []string{"user:?"}},
				{id: "fred", subs: []string{"*"}},
			},
			req:  pubsub.PublishRequest{Topic: "user:42"},
			want: map[int]string{1: "user:*", 2: "*:4?", 5: "*"},
		},
		{
			name: "once per conn: exact before patterns, then the oldest pattern",
			conns: []spec{
				{id: "alice"},
				{id: "bob", subs: []string{"*:42", "user:42", "user:*"}},
				{id: "carol", subs: []string{"*:42", "user:*"}},
				{id: "dave", subs: []string{"user:*", "*:42"}},
			},
			req:  pubsub.PublishRequest{Topic: "user:42"},
			want: map[int]string{1: "user:42", 2: "*:42", 3: "user:*"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, _ := newHub(t, Options{})
			cs := make([]pubsub.Conn, len(tt.conns))
			for i, c := range tt.conns {
				room := c.room
				if room == "" {
					room = "lobby"
				}
				cs[i] = connect(t, h, room, c.id)
				for j, s := range c.subs {
					// Subscription j caps at j+1 messages per second, so
					// how many of a burst arrive tells which one delivered.
					subscribe(t, cs[i], s, float64(j+1))
				}
			}
			tt.req.Payload = payload(1)
			const burst = 4
			for range burst {
				publish(t, cs[0], tt.req)
			}
			got := map[int]string{}
			for i, c := range cs {
				ms := received(c)
				seen := map[pubsub.ID]bool{}
				for _, m := range ms {
					if seen[m.ID] {
						t.Errorf("conn %d (%s) received message %d twice", i, tt.conns[i].id, m.ID)
					}
					seen[m.ID] = true
				}
				if n := len(ms); n > 0 && n <= len(tt.conns[i].subs) {
					got[i] = tt.conns[i].subs[n-1]
				} else if n > 0 {
					got[i] = fmt.Sprintf("%d messages", n)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Publish(%q) reached (-want +got):\n%s", tt.req.Topic, diff)
			}
		})
	}
}

func TestSameMessageForEveryReceiver(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{})
	a := connect(t, h, "lobby", "alice")
	var subs []pubsub.Conn
	for i := range 3 {
		c := connect(t, h, "lobby", fmt.Sprint("sub", i))
		subscribe(t, c, []string{"chat", "*", "c?at"}[i], 0)
		subs = append(subs, c)
	}
	m := publish(t, a, pubsub.PublishRequest{Topic: "chat"})
	var first *pubsub.Message
	for i, c := range subs {
		ms := received(c)
		if len(ms) != 1 {
			t.Fatalf("subscriber %d received %d messages, want 1", i, len(ms))
		}
		if first == nil {
			first = ms[0]
		} else if ms[0] != first {
			t.Errorf("subscriber %d received a different *Message than subscriber 0", i)
		}
	}
	if diff := cmp.Diff(m, *first); diff != "" {
		t.Errorf("delivered message differs from the confirmed one (-confirmed +delivered):\n%s", diff)
	}
}

func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	// Beyond the channel's slots, room for two of the messages below, not
	// three.
	size := queuedSize(&pubsub.Message{Topic: "chat", From: "alice", Payload: payload(100)})
	h, _ := newHub(t, Options{QueueBytes: 2*size + size/2})
	a := connect(t, h, "lobby", "alice")
	slow := connect(t, h, "lobby", "slow")
	fast := connect(t, h, "lobby", "fast")
	subscribe(t, slow, "chat", 0)
	subscribe(t, slow, "user:*", 0)
	subscribe(t, fast, "chat", 0)

	const n = ChannelSlots + 3
	var got []int
	for i := 1; i <= n; i++ {
		if _, err := a.Publish(context.Background(), pubsub.PublishRequest{Topic: "chat", Payload: payload(i)}); err != nil {
			t.Fatalf("Publish #%d = %v; a slow subscriber must not fail the publisher", i, err)
		}
		got = append(got, numbers(t, received(fast))...)
	}
	if want := seq(1, n+1); !cmp.Equal(got, want) {
		t.Errorf("fast subscriber received %v, want %v", got, want)
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow conn's Done() not closed after its queue overflowed")
	}
	wantCode(t, "slow conn Err()", slow.Err(), pubsub.CodeSlowConsumer)
	err := slow.Subscribe(context.Background(), pubsub.SubscribeRequest{Topic: "x"})
	wantCode(t, "Subscribe on a slow conn", err, pubsub.CodeNetworkError)
	// Its backlog is let go; its channel keeps what it held.
	if got, want := numbers(t, received(slow)), seq(1, ChannelSlots+1); !cmp.Equal(got, want) {
		t.Errorf("slow conn's queue holds %v, want %v", got, want)
	}
	c := slow.(*conn)
	c.subMu.Lock()
	subs := len(c.subs)
	c.subMu.Unlock()
	pats := c.r.patterns.Load()
	if subs != 0 || pats != nil {
		t.Errorf("slow conn keeps %d subscriptions and patterns %v, want none", subs, pats)
	}
	if s := h.Stats(); s.SlowConsumers != 1 || s.Connections != 2 {
		t.Errorf("Stats() = %+v, want SlowConsumers 1, Connections 2", s)
	}
}

// TestTopicOrder publishes to one topic from many goroutines and checks that
// every subscriber sees the messages in id order.
func TestTopicOrder(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{Clock: pubsub.SystemClock{}})
	const publishers, each = 4, 200
	subs := make([]pubsub.Conn, 3)
	for i := range subs {
		subs[i] = connect(t, h, "lobby", fmt.Sprint("sub", i))
	}
	subscribe(t, subs[0], "chat", 0)
	subscribe(t, subs[1], "*", 0)
	subscribe(t, subs[2], "c*", 0)
	var wg sync.WaitGroup
	for p := range publishers {
		c := connect(t, h, "lobby", fmt.Sprint("pub", p))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				topic := "chat"
				if i%2 == 1 {
					topic = "noise" // interleave another topic
				}
				if _, err := c.Publish(context.Background(), pubsub.PublishRequest{Topic: topic, Payload: payload(i)}); err != nil {
					t.Errorf("Publish(%q) = %v", topic, err)
					return
				}
			}
		}()
	}
	waitGroup(t, &wg, "the publishers")
	for i, c := range subs {
		var last pubsub.ID
		n := 0
		for _, m := range received(c) {
			if m.Topic != "chat" {
				continue
			}
			if m.ID <= last {
				t.Fatalf("subscriber %d: message %d after %d", i, m.ID, last)
			}
			last = m.ID
			n++
		}
		if n != publishers*each/2 {
			t.Errorf("subscriber %d received %d chat messages, want %d", i, n, publishers*each/2)
		}
	}
}

func TestIDsIncrease(t *testing.T) {
	t.Parallel()
	store := history.NewMemory(history.Options{MaxAge: -1})
	defer store.Close()
	ctx := context.Background()
	// A message from the future, as after a clock that stepped back across a
	// restart.
	ahead := pubsub.Message{ID: idAt(t0.Add(time.Hour), 1023), Topic: "chat", From: "x", Payload: payload(0), Timestamp: t0.Add(time.Hour), Persisted: true}
	if err := store.Append(ctx, "lobby", ahead); err != nil {
		t.Fatal(err)
	}
	h, clock := newHub(t, Options{Store: store, NodeID: 1})
	a := connect(t, h, "lobby", "alice")
	last := ahead.ID
	for i, step := range []time.Duration{0, time.Millisecond, -time.Minute, 2 * time.Hour, -90 * time.Minute, 0} {
		clock.Advance(step)
		topic := []string{"chat", "news"}[i%2]
		m := publish(t, a, pubsub.PublishRequest{Topic: topic, Payload: payload(i)})
		if m.ID <= last {
			t.Fatalf("Publish #%d (clock at %v) = id %d, want > %d", i, clock.Now(), m.ID, last)
		}
		if m.ID.Node() != 1 {
			t.Errorf("Publish #%d: id node %d, want 1", i, m.ID.Node())
		}
		if !m.Timestamp.Equal(clock.Now()) {
			t.Errorf("Publish #%d: Timestamp %v, want the clock's %v", i, m.Timestamp, clock.Now())
		}
		last = m.ID
	}
}

func idAt(at time.Time, node int64) pubsub.ID {
	return pubsub.ID((at.UnixMilli()-1288834974657)<<22 | node<<12)
}
