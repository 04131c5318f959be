package redis

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bwmarrin/snowflake"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// t0 is the timestamp of the tests' messages: the time the tests started,
// so that retention by age (the default 30 days, on the system clock)
// keeps them.
var t0 = time.Now().UTC().Round(0)

// msg is a message of topic from alice with the proposed id.
func msg(topic string, id pubsub.ID, text string) pubsub.Message {
	return pubsub.Message{
		ID: id, Topic: topic, From: "alice", Persisted: true, Timestamp: t0,
		Payload: json.RawMessage(fmt.Sprintf(`{"text":%q}`, text)),
	}
}

// deliveries returns a Subscriber on c whose messages arrive on the
// channel, and its errors on the test.
func deliveries(t *testing.T, c *Client) (*Subscriber, chan Delivery) {
	t.Helper()
	ch := make(chan Delivery, 1000)
	s := c.Subscriber(SubscriberOptions{
		OnMessage: func(d Delivery) { ch <- d },
	})
	t.Cleanup(func() { s.Close() })
	return s, ch
}

// next returns the next delivery, failing the test after waitTimeout.
func next(t *testing.T, ch <-chan Delivery, what string) Delivery {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
	return Delivery{}
}

func publish(t *testing.T, s *Store, room string, m pubsub.Message, key string) (pubsub.Message, bool) {
	t.Helper()
	got, dup, err := s.Publish(ctxT(t), Publication{Room: room, Message: m, Key: key, Origin: "node1/7"})
	if err != nil {
		t.Fatalf("Publish(%q, id %d, key %q) = %v", room, m.ID, key, err)
	}
	return got, dup
}

// Two hubs on one Redis, the second with a clock behind the first: the ids
// of a topic still increase, history holds them in that order, and
// subscribers get them in that order too. An id raised above the topic's
// last keeps the node bits of the proposed one, so that it cannot be an id
// of the other node's.
func TestPublishIDsIncreaseAcrossNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := openOn(t, srv, Options{}), openOn(t, srv, Options{})
	sa, sb := a.Store(StoreOptions{}), b.Store(StoreOptions{})
	sub, got := deliveries(t, b)
	if err := sub.Subscribe(ctxT(t), "room", "chat"); err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
	ms := uint64(t0.UnixMilli() - snowflake.Epoch)
	steps := []struct {
		store    *Store
		proposed pubsub.ID
		want     pubsub.ID
	}{
		{sa, mkID(ms+1000, 5, 0), mkID(ms+1000, 5, 0)},
		{sb, mkID(ms, 9, 0), mkID(ms+1000, 9, 0)},      // b's clock is behind: a's millisecond, b's node
		{sb, mkID(ms, 9, 1), mkID(ms+1000, 9, 1)},      // the same node: last + 1
		{sa, mkID(ms+1000, 5, 1), mkID(ms+1001, 5, 0)}, // last's node above: the next millisecond
		{sa, mkID(ms+2000, 5, 0), mkID(ms+2000, 5, 0)}, // ahead again: its own id
		{sb, mkID(ms+2000, 3, 0), mkID(ms+2001, 3, 0)}, // the same millisecond, a node below
	}
	var want []pubsub.Message
	for i, st := range steps {
		m, dup := publish(t, st.store, "room", msg("chat", st.proposed, fmt.Sprint(i)), "")
		if dup || m.ID != st.want {
			t.Errorf("step %d: Publish(id %d) = id %d, dup %t; want id %d, not a duplicate", i, st.proposed, m.ID, dup, st.want)
		}
		want = append(want, m)
	}
	for i, w := range want {
		d := next(t, got, fmt.Sprintf("delivery %d of %d", i+1, len(want)))
		if diff := cmp.Diff(Delivery{Room: "room", Message: w, Origin: "node1/7"}, d); diff != "" {
			t.Errorf("delivery %d (-want +got):\n%s", i, diff)
		}
	}
	page, err := sb.Query(ctxT(t), "room", history.Query{Topic: "chat", Limit: 10})
	if err != nil {
		t.Fatalf("Query = %v", err)
	}
	if diff := cmp.Diff(want, page.Messages); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

// A message published with Persist(false) gets an id above the topic's
// last, is delivered, and stays out of history; the next persisted one
// still goes above it.
func TestPublishNotPersisted(t *testing.T) {
	c, _ := open(t, redistest.Options{})
	s := c.Store(StoreOptions{})
	sub, got := deliveries(t, c)
	if err := sub.Subscribe(ctxT(t), "room", "cursor"); err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
	first, _ := publish(t, s, "room", msg("cursor", 1000, "stored"), "")
	live := msg("cursor", 10, "live")
	live.Persisted = false
	m, _ := publish(t, s, "room", live, "")
	if m.ID != first.ID+1 || m.Persisted {
		t.Errorf("Publish(Persist(false), id 10) = id %d, persisted %t; want id %d, not persisted", m.ID, m.Persisted, first.ID+1)
	}
	last, _ := publish(t, s, "room", msg("cursor", 10, "stored again"), "")
	if last.ID != m.ID+1 {
		t.Errorf("Publish after a live message = id %d, want %d", last.ID, m.ID+1)
	}
	for _, w := range []pubsub.Message{first, m, last} {
		if d := next(t, got, fmt.Sprintf("message %d", w.ID)); d.Message.ID != w.ID || d.Message.Persisted != w.Persisted {
			t.Errorf("delivered id %d persisted %t, want id %d persisted %t", d.Message.ID, d.Message.Persisted, w.ID, w.Persisted)
		}
	}
	page, err := s.Query(ctxT(t), "room", history.Query{Topic: "cursor", Limit: 10})
	if err != nil {
		t.Fatalf("Query = %v", err)
	}
	if diff := cmp.Diff([]pubsub.Message{first, last}, page.Messages); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

// A publish retried with its idempotency key, on another node after the
// first one is gone, gets the original message, and history has one copy;
// the same key from another client is another publish.
func TestPublishRetryOnAnotherNode(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a := openOn(t, srv, Options{})
	b := openOn(t, srv, Options{})
	sa, sb := a.Store(StoreOptions{}), b.Store(StoreOptions{})
	orig, _ := publish(t, sa, "room", msg("chat", 500, "once"), "k1")
	a.Close() // the first node dies before its client heard back

	retry := msg("chat", 900, "once") // the retry gets a new proposed id and time on b
	retry.Timestamp = t0.Add(time.Second)
	got, dup := publish(t, sb, "room", retry, "k1")
	if !dup {
		t.Error("retry: dup = false, want true")
	}
	if diff := cmp.Diff(orig, got); diff != "" {
		t.Errorf("retry returned another message (-original +retry):\n%s", diff)
	}
	bob := msg("chat", 900, "bob's")
	bob.From = "bob"
	if m, dup := publish(t, sb, "room", bob, "k1"); dup || m.ID == orig.ID {
		t.Errorf("bob's publish with alice's key = id %d, dup %t; want a new message", m.ID, dup)
	}
	page, err := sb.Query(ctxT(t), "room", history.Query{Topic: "chat", Limit: 10})
	if err != nil {
		t.Fatalf("Query = %v", err)
	}
	if len(page.Messages) != 2 || page.Messages[0].ID != orig.ID {
		t.Errorf("history = %d messages (first id %v), want alice's once then bob's", len(page.Messages), ids(page.Messages))
	}
}

func ids(msgs []pubsub.Message) []pubsub.ID {
	out := make([]pubsub.ID, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// Pattern subscribers get the messages of every matching topic of their
// room, and only from a Store with Patterns.
func TestSubscribePattern(t *testing.T) {
	c, _ := open(t, redistest.Options{})
	s := c.Store(StoreOptions{Patterns: true})
	sub, got := deliveries(t, c)
	if err := sub.SubscribePattern(ctxT(t), "room", "user:*"); err != nil {
		t.Fatalf("SubscribePattern = %v", err)
	}
	// A room whose name a glob would read as a pattern matches only itself.
	if err := sub.SubscribePattern(ctxT(t), "r*[x]", "user:*"); err != nil {
		t.Fatalf("SubscribePattern(r*[x]) = %v", err)
	}
	publish(t, s, "room", msg("chat", 1, "no match"), "")
	publish(t, s, "r2[x]", msg("user:1", 2, "a room r*[x] must not match"), "")
	odd, _ := publish(t, s, "r*[x]", msg("user:2", 2, "its own room"), "")
	if d := next(t, got, "the message of room r*[x]"); d.Room != "r*[x]" || d.Message.ID != odd.ID {
		t.Errorf("delivery = room %q id %d, want room r*[x] id %d", d.Room, d.Message.ID, odd.ID)
	}
	sub.UnsubscribePattern("r*[x]", "user:*")
	publish(t, s, "other", msg("user:1", 2, "another room"), "")
	want, _ := publish(t, s, "room", msg("user:123:events", 3, "match"), "")
	d := next(t, got, "the message of user:123:events")
	if diff := cmp.Diff(Delivery{Room: "room", Message: want, Pattern: "user:*", Origin: "node1/7"}, d); diff != "" {
		t.Errorf("delivery (-want +got):\n%s", diff)
	}
	sub.UnsubscribePattern("room", "user:*")
	if n, err := c.rc.Do(ctxT(t), c.rc.B().PubsubNumpat().Build()).AsInt64(); err != nil || n != 0 {
		t.Errorf("PUBSUB NUMPAT after Unsubscribe = %d, %v; want 0", n, err)
	}
	select {
	case d := <-got:
		t.Errorf("unexpected delivery %+v", d)
	default:
	}
}

// While Redis is down, publishes fail with NETWORK_ERROR, which is
// retriable; once it is back (with AOF), the client reconnects by itself,
// what was confirmed before is there, and subscribers are live again.
func TestRedisRestart(t *testing.T) {
	c, srv := open(t, redistest.Options{AOF: true})
	s := c.Store(StoreOptions{})
	resub := make(chan string, 10)
	ch := make(chan Delivery, 10)
	sub := c.Subscriber(SubscriberOptions{
		OnMessage:     func(d Delivery) { ch <- d },
		OnResubscribe: func(room, name string) { resub <- room + "/" + name },
		OnError:       func(room, name string, err error) { t.Logf("OnError(%s, %s, %v)", room, name, err) },
	})
	t.Cleanup(func() { sub.Close() })
	if err := sub.Subscribe(ctxT(t), "room", "chat"); err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
	before, _ := publish(t, s, "room", msg("chat", 10, "before"), "")
	next(t, ch, "the message published before the crash")

	srv.Kill()
	_, _, err := s.Publish(ctxT(t), Publication{Room: "room", Message: msg("chat", 20, "during")})
	var perr *pubsub.Error
	if !errors.As(err, &perr) || perr.Code != pubsub.CodeNetworkError || !perr.Retriable() {
		t.Fatalf("Publish while Redis is down = %v, want a retriable NETWORK_ERROR", err)
	}
	if err := c.Ping(ctxT(t)); !errors.Is(err, pubsub.ErrNetwork) {
		t.Errorf("Ping while Redis is down = %v, want NETWORK_ERROR", err)
	}

	srv.Restart()
	select {
	case got := <-resub:
		if got != "room/chat" {
			t.Errorf("OnResubscribe(%s), want room/chat", got)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for the subscriber to resubscribe", waitTimeout)
	}
	// The first command on a connection that broke may still fail once
	// with NETWORK_ERROR after Redis is back; a Room retries its publish
	// with the same key, as here, and the message is confirmed once.
	var after pubsub.Message
	for ctx := ctxT(t); ; {
		m, _, err := s.Publish(ctx, Publication{Room: "room", Message: msg("chat", 30, "after"), Key: "after"})
		if err == nil {
			after = m
			break
		}
		if !errors.Is(err, pubsub.ErrNetwork) || ctx.Err() != nil {
			t.Fatalf("Publish after the restart = %v, want success or a NETWORK_ERROR to retry", err)
		}
		time.Sleep(10 * time.Millisecond) // a retry's backoff
	}
	if d := next(t, ch, "the message published after the restart"); d.Message.ID != after.ID {
		t.Errorf("delivered id %d, want %d", d.Message.ID, after.ID)
	}
	page, err := s.Query(ctxT(t), "room", history.Query{Topic: "chat", Limit: 10})
	if err != nil {
		t.Fatalf("Query after the restart = %v", err)
	}
	if diff := cmp.Diff([]pubsub.Message{before, after}, page.Messages, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("history after the restart (-want +got):\n%s", diff)
	}
}

// A key is remembered for the dedup window only; after it, the same key is
// a new publish.
func TestPublishDedupWindow(t *testing.T) {
	c, _ := open(t, redistest.Options{})
	s := c.Store(StoreOptions{DedupWindow: 50 * time.Millisecond})
	first, _ := publish(t, s, "room", msg("chat", 1, "a"), "k")
	if m, dup := publish(t, s, "room", msg("chat", 2, "a"), "k"); !dup || m.ID != first.ID {
		t.Fatalf("retry within the window = id %d, dup %t; want id %d, dup", m.ID, dup, first.ID)
	}
	dkey := s.mustKeys(t, "room", "chat").dedup("alice", "k")
	for ctx := ctxT(t); ; {
		n, err := c.rc.Do(ctx, c.rc.B().Exists().Key(dkey).Build()).AsInt64()
		if err != nil {
			t.Fatalf("EXISTS = %v", err)
		}
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // Redis expires the key on its own clock
	}
	if m, dup := publish(t, s, "room", msg("chat", 3, "a"), "k"); dup || m.ID == first.ID {
		t.Errorf("publish after the window = id %d, dup %t; want a new message", m.ID, dup)
	}
	// Off: every publish is new.
	off := c.Store(StoreOptions{DedupWindow: -1})
	a, _ := publish(t, off, "room", msg("chat", 4, "a"), "k2")
	if b, dup := publish(t, off, "room", msg("chat", 5, "a"), "k2"); dup || b.ID == a.ID {
		t.Errorf("with DedupWindow -1, a repeated key = id %d, dup %t; want a new message", b.ID, dup)
	}
}

// Subscriptions are counted: the last Unsubscribe stops the deliveries.
// Bad topics and patterns are refused with INVALID_TOPIC_NAME.
func TestSubscriberRefcount(t *testing.T) {
	c, _ := open(t, redistest.Options{})
	s := c.Store(StoreOptions{})
	sub, got := deliveries(t, c)
	for range 2 {
		if err := sub.Subscribe(ctxT(t), "room", "chat"); err != nil {
			t.Fatalf("Subscribe = %v", err)
		}
	}
	sub.Unsubscribe("room", "chat")
	m, _ := publish(t, s, "room", msg("chat", 1, "still subscribed"), "")
	if d := next(t, got, "a delivery after one of two Unsubscribes"); d.Message.ID != m.ID {
		t.Errorf("delivered id %d, want %d", d.Message.ID, m.ID)
	}
	sub.Unsubscribe("room", "chat")
	// Unsubscribe does not wait for Redis to confirm: poll until the shard
	// channel has no subscriber left.
	ctx := ctxT(t)
	channel := s.mustKeys(t, "room", "chat").channel()
	for {
		n, err := c.rc.Do(ctx, c.rc.B().PubsubShardnumsub().Channel(channel).Build()).ToArray()
		if err != nil {
			t.Fatalf("waiting for the shard channel to lose its last subscriber: PUBSUB SHARDNUMSUB = %v", err)
		}
		count, _ := n[1].AsInt64()
		if count == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("shard channel subscribers %v after the last Unsubscribe = %d, want 0", waitTimeout, count)
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, bad := range []string{"no spaces", ""} {
		if err := sub.Subscribe(ctxT(t), "room", bad); !errors.Is(err, pubsub.ErrInvalidTopicName) {
			t.Errorf("Subscribe(%q) = %v, want INVALID_TOPIC_NAME", bad, err)
		}
	}
	if err := sub.SubscribePattern(ctxT(t), "room", "a b*"); !errors.Is(err, pubsub.ErrInvalidTopicName) {
		t.Errorf("SubscribePattern(%q) = %v, want INVALID_TOPIC_NAME", "a b*", err)
	}
	sub.Close()
	if err := sub.Subscribe(ctxT(t), "room", "chat"); !errors.Is(err, pubsub.ErrNotConnected) {
		t.Errorf("Subscribe after Close = %v, want NOT_CONNECTED", err)
	}
}

// Closing a Subscriber while Redis is down does not wait for Redis once
// per subscription.
func TestSubscriberCloseWhileRedisDown(t *testing.T) {
	c, srv := open(t, redistest.Options{})
	sub := c.Subscriber(SubscriberOptions{OnMessage: func(Delivery) {}})
	const topics = 30
	for i := range topics {
		if err := sub.Subscribe(ctxT(t), "room", fmt.Sprint("t", i)); err != nil {
			t.Fatalf("Subscribe = %v", err)
		}
	}
	srv.Kill()
	closed := make(chan struct{})
	go func() {
		sub.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		t.Fatalf("Close with %d subscriptions and Redis down did not return within %v", topics, waitTimeout)
	}
}
