package transporttest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/plazahq/plaza/pubsub"
)

func testRefcount(t *testing.T, e *env) {
	ctx := ctxT(t)
	alice, bob := e.join("alice"), e.join("bob")
	in := newInbox()
	// One handler registered twice fires twice; a third registration adds one more.
	s1 := subscribe(t, bob, "chat", in.handle)
	s2 := subscribe(t, bob, "chat", in.handle)
	s3 := subscribe(t, bob, "chat", in.handle)
	subs, _ := e.rec.wire()
	if diff := cmp.Diff([]pubsub.SubscribeRequest{{Topic: "chat"}}, subs); diff != "" {
		t.Errorf("wire subscriptions after 3 Subscribe calls (-want +got):\n%s", diff)
	}
	publish(t, alice, "chat", 1)
	if got := in.nums(t, 3); !cmp.Equal(got, []int{1, 1, 1}) {
		t.Errorf("three registrations received %v, want [1 1 1]", got)
	}

	for _, s := range []*pubsub.Subscription{s1, s2} {
		if err := s.Unsubscribe(ctx); err != nil {
			t.Fatalf("Unsubscribe() = %v", err)
		}
	}
	if err := s1.Unsubscribe(ctx); err != nil {
		t.Errorf("second Unsubscribe() = %v, want nil", err)
	}
	if _, unsubs := e.rec.wire(); len(unsubs) != 0 {
		t.Errorf("wire unsubscribed %v while a registration remains", unsubs)
	}
	publish(t, alice, "chat", 2)
	if got := num(t, in.next(t)); got != 2 {
		t.Errorf("remaining registration received %d, want 2", got)
	}
	in.quiet(t, alice, "chat")

	if err := s3.Unsubscribe(ctx); err != nil {
		t.Fatalf("last Unsubscribe() = %v", err)
	}
	if _, unsubs := e.rec.wire(); !cmp.Equal(unsubs, []string{"chat"}) {
		t.Errorf("wire unsubscriptions after the last Unsubscribe = %v, want [chat]", unsubs)
	}
	// Nothing reaches the released topic: a fresh registration sees only
	// what comes after it.
	publish(t, alice, "chat", 3)
	subscribe(t, bob, "chat", in.handle)
	in.quiet(t, alice, "chat")
}

func testWireRate(t *testing.T, e *env) {
	ctx := ctxT(t)
	bob := e.join("bob")
	nop := func(pubsub.Message) {}
	subscribe(t, bob, "cursor", nop, pubsub.RateLimit(2))
	subscribe(t, bob, "cursor", nop, pubsub.RateLimit(5))
	subscribe(t, bob, "cursor", nop, pubsub.RateLimit(3))
	free := subscribe(t, bob, "cursor", nop)
	if err := free.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	subs, _ := e.rec.wire()
	want := []pubsub.SubscribeRequest{
		{Topic: "cursor", Rate: 2}, // first registration
		{Topic: "cursor", Rate: 5}, // max rises
		// 3 changes nothing
		{Topic: "cursor", Rate: 0}, // an uncapped registration lifts the cap
		{Topic: "cursor", Rate: 5}, // and its departure restores the max
	}
	if diff := cmp.Diff(want, subs); diff != "" {
		t.Errorf("wire subscriptions (-want +got):\n%s", diff)
	}
}

func testLocalRateCap(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob")
	capped, firehose := newInbox(), newInbox()
	subscribe(t, bob, "cursor", capped.handle, pubsub.RateLimit(2))
	subscribe(t, bob, "cursor", firehose.handle)

	var m pubsub.Message
	for i := 1; i <= 5; i++ {
		m = publish(t, alice, "cursor", i, pubsub.Persist(false))
	}
	e.delivered(m)
	if got := firehose.nums(t, 5); !cmp.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Fatalf("uncapped registration received %v, want 1..5", got)
	}
	if got := capped.nums(t, 2); !cmp.Equal(got, []int{1, 2}) {
		t.Fatalf("capped registration received %v at once, want [1 2]", got)
	}
	// The Room holds the newest two (4, 5) and has dropped 3; they go out
	// as the cap allows.
	eventually(t, "the Room to arm its rate-cap timer", func() bool { return e.clock.Pending() > 0 })
	e.clock.Advance(time.Second)
	if got := capped.nums(t, 2); !cmp.Equal(got, []int{4, 5}) {
		t.Errorf("capped registration received %v after a second, want [4 5] (the oldest of the burst dropped)", got)
	}
	if got := bob.Stats().CapDropped; got != 1 {
		t.Errorf("Stats().CapDropped = %d, want 1", got)
	}
}

func testHubRateCap(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob")
	in := newInbox()
	subscribe(t, bob, "cursor", in.handle, pubsub.RateLimit(2))
	var m pubsub.Message
	for i := 1; i <= 5; i++ {
		m = publish(t, alice, "cursor", i, pubsub.Persist(false))
	}
	e.delivered(m)
	if got := in.nums(t, 2); !cmp.Equal(got, []int{1, 2}) {
		t.Fatalf("received %v at once, want [1 2]", got)
	}
	e.clock.Advance(time.Second)
	if got := in.nums(t, 2); !cmp.Equal(got, []int{4, 5}) {
		t.Errorf("received %v after a second, want [4 5]", got)
	}
	// Nothing else was sent: the Room's own cap never had to drop anything.
	if got := bob.Stats().CapDropped; got != 0 {
		t.Errorf("Room dropped %d messages; the hub should have held the cap", got)
	}
}
