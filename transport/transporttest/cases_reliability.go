package transporttest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/plazahq/plaza/pubsub"
)

func testPublishRateLimit(t *testing.T, e *env) {
	ctx := ctxT(t)
	alice := e.join("alice")
	publish(t, alice, "chat", 1)
	publish(t, alice, "chat", 2)
	_, err := alice.Publish(ctx, "chat", body{N: 3})
	wantCode(t, "third Publish in the same instant", err, pubsub.ErrRateLimitExceeded)
	var perr *pubsub.Error
	if !errors.As(err, &perr) || !perr.Retriable() {
		t.Errorf("RATE_LIMIT_EXCEEDED error %v is not Retriable", err)
	}
	if n := len(e.rec.sent()); n != 3 {
		t.Errorf("the Room sent %d publishes, want 3 (it must not retry a rate limit)", n)
	}
	publish(t, alice, "news", 1) // the cap is per topic
	e.clock.Advance(time.Second)
	publish(t, alice, "chat", 3)
}

func testAuthorize(t *testing.T, e *env) {
	ctx := ctxT(t)
	alice, mod := e.join("alice"), e.join("mod")
	_, err := alice.Publish(ctx, "mods-only", body{N: 1})
	wantCode(t, "Publish(mods-only) as alice", err, pubsub.ErrPermissionDenied)
	_, err = alice.Subscribe(ctx, "mods-only", func(pubsub.Message) {})
	wantCode(t, "Subscribe(mods-only) as alice", err, pubsub.ErrPermissionDenied)
	_, err = alice.GetHistory(ctx, "mods-only")
	wantCode(t, "GetHistory(mods-only) as alice", err, pubsub.ErrPermissionDenied)

	publish(t, mod, "mods-only", 1)
	if p := history(t, mod, "mods-only"); len(p.Messages) != 1 {
		t.Errorf("mod sees %d messages, want 1", len(p.Messages))
	}
	publish(t, alice, "chat", 1) // other topics stay open
}

func testHandlerOrder(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob")
	const n = 200
	var running atomic.Int32
	var mu sync.Mutex
	var got []int
	done := make(chan struct{})
	h := func(m pubsub.Message) {
		if running.Add(1) != 1 {
			t.Error("two handlers of one Room ran at once")
		}
		mu.Lock()
		got = append(got, num(t, m))
		if len(got) == n {
			close(done)
		}
		mu.Unlock()
		running.Add(-1)
	}
	subscribe(t, bob, "a", h)
	subscribe(t, bob, "b", h)
	for i := range n {
		publish(t, alice, []string{"a", "b"}[i%2], i)
	}
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatalf("received %d of %d messages", len(got), n)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(seq(0, n-1), got); diff != "" {
		t.Errorf("handler order differs from publish order (-want +got):\n%s", diff)
	}
}

func testSlowHandler(t *testing.T, e *env) {
	// With a small hub queue either Room may be dropped as a slow consumer;
	// gap fill makes that lossless, so the checks hold either way.
	alice, slow, fast := e.join("alice"), e.join("slow", gapFill), e.join("fast", gapFill)
	gate := make(chan struct{})
	openGate := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(openGate) // before the Rooms leave: a failed test must not leave the handler stuck
	var once sync.Once
	slowIn, fastIn := newInbox(), newInbox()
	subscribe(t, slow, "chat", func(m pubsub.Message) {
		once.Do(func() { <-gate })
		slowIn.handle(m)
	})
	subscribe(t, fast, "chat", fastIn.handle)

	const n = 100
	for i := 1; i <= n; i++ {
		publish(t, alice, "chat", i) // must not block on the stuck handler
	}
	// The fast Room gets everything while the slow one is still stuck.
	if got := fastIn.nums(t, n); !cmp.Equal(got, seq(1, n)) {
		t.Errorf("fast Room received %v, want 1..%d", got, n)
	}
	openGate()
	// Whether the hub kept the slow Room's backlog or dropped its connection
	// as a slow consumer, gap fill must hand it everything once, in order.
	if got := slowIn.nums(t, n); !cmp.Equal(got, seq(1, n)) {
		t.Errorf("slow Room received (-want +got):\n%s", cmp.Diff(seq(1, n), got))
	}
	slowIn.quiet(t, alice, "chat")
	t.Logf("slow Room reconnected %d times", slow.Stats().Reconnects)
}

func testRetryDeduplicates(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob")
	in := newInbox()
	subscribe(t, bob, "chat", in.handle)

	e.rec.mu.Lock()
	e.rec.loseReplies = 2
	e.rec.mu.Unlock()
	m := publish(t, alice, "chat", 1)

	sent := e.rec.sent()
	if len(sent) != 3 {
		t.Fatalf("the Room sent %d attempts, want 3", len(sent))
	}
	for _, s := range sent {
		if s.IdempotencyKey == "" || s.IdempotencyKey != sent[0].IdempotencyKey {
			t.Fatalf("attempts carried keys %q, %q, %q; want one non-empty key", sent[0].IdempotencyKey, sent[1].IdempotencyKey, sent[2].IdempotencyKey)
		}
	}
	if got := in.next(t); got.ID != m.ID {
		t.Errorf("bob received %v, want %v", got.ID, m.ID)
	}
	in.quiet(t, alice, "chat")
	if p := history(t, bob, "chat"); len(p.Messages) != 2 { // the message and the marker
		t.Errorf("history holds %d messages, want 2", len(p.Messages))
	}
	if got := alice.Stats().Retries; got != 2 {
		t.Errorf("Stats().Retries = %d, want 2", got)
	}
}

func testRetryGivesUp(t *testing.T, e *env) {
	ctx := ctxT(t)
	alice, bob := e.join("alice"), e.join("bob")
	in := newInbox()
	subscribe(t, bob, "chat", in.handle)

	e.rec.mu.Lock()
	e.rec.loseReplies = 4
	e.rec.mu.Unlock()
	_, err := alice.Publish(ctx, "chat", body{N: 1})
	wantCode(t, "Publish with every reply lost", err, pubsub.ErrNetwork)
	if n := len(e.rec.sent()); n != 4 {
		t.Errorf("the Room made %d attempts, want 1 + 3 retries", n)
	}
	// The first attempt did reach the hub: exactly one copy was published.
	if got := num(t, in.next(t)); got != 1 {
		t.Errorf("bob received %d, want 1", got)
	}
	in.quiet(t, alice, "chat")
}

// waitReconnects waits until r has re-established its connection n times.
func waitReconnects(t *testing.T, r *pubsub.Room, n uint64) {
	t.Helper()
	eventually(t, "the Room to reconnect", func() bool { return r.Stats().Reconnects >= n })
}

func testReconnect(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob")
	chat, news := newInbox(), newInbox()
	subscribe(t, bob, "chat", chat.handle, pubsub.RateLimit(50))
	subscribe(t, bob, "news", news.handle)
	publish(t, alice, "chat", 1)
	chat.next(t)

	before, _ := e.rec.wire()
	e.h.Disconnect(room, "bob")
	waitReconnects(t, bob, 1)

	after, _ := e.rec.wire()
	resub := after[len(before):]
	want := []pubsub.SubscribeRequest{{Topic: "chat", Rate: 50}, {Topic: "news"}}
	sortReqs := cmp.Transformer("sort", func(in []pubsub.SubscribeRequest) []pubsub.SubscribeRequest {
		out := append([]pubsub.SubscribeRequest(nil), in...)
		for i := range out {
			for j := i + 1; j < len(out); j++ {
				if out[j].Topic < out[i].Topic {
					out[i], out[j] = out[j], out[i]
				}
			}
		}
		return out
	})
	if diff := cmp.Diff(want, resub, sortReqs); diff != "" {
		t.Errorf("re-subscriptions after reconnect (-want +got):\n%s", diff)
	}
	publish(t, alice, "chat", 2)
	publish(t, alice, "news", 3)
	if got := num(t, chat.next(t)); got != 2 {
		t.Errorf("chat after reconnect = %d, want 2", got)
	}
	if got := num(t, news.next(t)); got != 3 {
		t.Errorf("news after reconnect = %d, want 3", got)
	}
	// Publishing works from the reconnected Room too.
	publish(t, bob, "chat", 4)
}

func testReconnectGapFill(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob", gapFill)
	in := newInbox()
	subscribe(t, bob, "chat", in.handle)
	publish(t, alice, "chat", 1)
	if got := num(t, in.next(t)); got != 1 {
		t.Fatalf("first message = %d, want 1", got)
	}
	// bob's own publishes lie in the gap too; they must not come back to him.
	publish(t, bob, "chat", 100)
	publish(t, bob, "chat", 101)
	e.rec.hold()
	e.h.Disconnect(room, "bob")
	publish(t, alice, "chat", 2)
	publish(t, alice, "chat", 3)
	publish(t, alice, "chat", 4, pubsub.Persist(false)) // live only: lost while away
	publish(t, alice, "chat", 5, pubsub.To("carol"))    // not bob's to see
	publish(t, alice, "chat", 6)
	e.rec.release()
	waitReconnects(t, bob, 1)
	publish(t, alice, "chat", 7)
	if got := in.nums(t, 4); !cmp.Equal(got, []int{2, 3, 6, 7}) {
		t.Errorf("after reconnect received %v, want [2 3 6 7]", got)
	}
	in.quiet(t, alice, "chat")
	if got := bob.Stats().GapFilled; got != 3 {
		t.Errorf("Stats().GapFilled = %d, want 3", got)
	}
}
