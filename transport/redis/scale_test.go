package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// connect opens a raw connection of clientID to room on h, closed when
// the test ends.
func connect(tb testing.TB, h *memory.Hub, room, clientID string) pubsub.Conn {
	tb.Helper()
	c, err := h.Connect(ctxT(tb), pubsub.ConnectRequest{Room: room, ClientID: clientID})
	if err != nil {
		tb.Fatalf("Connect(%q) as %q = %v", room, clientID, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func rawPublish(tb testing.TB, c pubsub.Conn, topic, text string, to ...string) pubsub.Message {
	tb.Helper()
	m, err := c.Publish(ctxT(tb), pubsub.PublishRequest{Topic: topic, Payload: json.RawMessage(fmt.Sprintf("%q", text)), To: to})
	if err != nil {
		tb.Errorf("Publish(%q, %s) as %q = %v", topic, text, c.ClientID(), err)
	}
	return m
}

// TestThreeNodes300Rooms spreads 300 rooms over three hubs on one Redis,
// with one subscriber in each and ten publishers on different hubs: every
// subscriber gets every message meant for it exactly once and in id order,
// never its own, and never one addressed to someone else; history is the
// same whichever hub answers.
func TestThreeNodes300Rooms(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	hubs := newNodes(t, srv, 3, nodeOpts{})
	const rooms, publishers = 300, 10
	name := func(i int) string { return fmt.Sprintf("room-%03d", i) }

	subs := make([]pubsub.Conn, rooms)
	for i := range subs {
		subs[i] = connect(t, hubs[i%3], name(i), "sub")
		if err := subs[i].Subscribe(ctxT(t), pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
			t.Fatalf("Subscribe(chat) in %s = %v", name(i), err)
		}
	}

	// Publisher p sits on hub p%3, the subscriber of room i on hub i%3:
	// every room has publishers on its own hub and on both others. Each
	// publishes one message to everyone, one to the subscriber alone and
	// one to somebody else; the subscriber publishes one of its own.
	var wg sync.WaitGroup
	want := make([][]string, rooms)
	var mu sync.Mutex
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rooms {
				c := connect(t, hubs[p%3], name(i), fmt.Sprintf("pub%d", p))
				all := fmt.Sprintf("all %d", p)
				rawPublish(t, c, "chat", all)
				mine := fmt.Sprintf("to sub %d", p)
				rawPublish(t, c, "chat", mine, "sub")
				rawPublish(t, c, "chat", fmt.Sprintf("to carol %d", p), "carol")
				mu.Lock()
				want[i] = append(want[i], all, mine)
				mu.Unlock()
			}
		}()
	}
	for i := range rooms {
		rawPublish(t, subs[i], "chat", "own")
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	deadline := time.After(waitTimeout)
	for i, c := range subs {
		var got []string
		var last pubsub.ID
		for len(got) < len(want[i]) {
			select {
			case m := <-c.Messages():
				var text string
				json.Unmarshal(m.Payload, &text)
				if m.ID <= last {
					t.Errorf("%s: message %q has id %v, not above the previous %v", name(i), text, m.ID, last)
				}
				last = m.ID
				got = append(got, text)
			case <-deadline:
				t.Fatalf("%s: timed out after %v with %d of %d messages: %q", name(i), waitTimeout, len(got), len(want[i]), got)
			}
		}
		if diff := cmp.Diff(sorted(want[i]), sorted(got)); diff != "" {
			t.Errorf("%s: messages (-want +got):\n%s", name(i), diff)
		}
	}
	// Nothing more came: the subscriber's own message, carol's, or a
	// second copy would be behind the last one expected.
	for i, c := range subs {
		marker := rawPublish(t, connect(t, hubs[(i+1)%3], name(i), "marker"), "chat", "marker")
		select {
		case m := <-c.Messages():
			if m.ID != marker.ID {
				var text string
				json.Unmarshal(m.Payload, &text)
				t.Errorf("%s: unexpected message %q (id %v) before the marker", name(i), text, m.ID)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("%s: timed out after %v waiting for the marker", name(i), waitTimeout)
		}
	}

	// History is one: every hub answers the same pages, as each viewer
	// may see them.
	for i := 0; i < rooms; i += 37 {
		var pages []pubsub.HistoryPage
		for _, h := range hubs {
			c := connect(t, h, name(i), "sub")
			page, err := c.History(ctxT(t), pubsub.HistoryRequest{Topic: "chat", Limit: 50})
			if err != nil {
				t.Fatalf("History(chat) in %s = %v", name(i), err)
			}
			pages = append(pages, page)
		}
		// own + 10 to all + 10 to sub + marker; carol's are hidden.
		if n := len(pages[0].Messages); n != 2*publishers+2 {
			t.Errorf("%s: history holds %d messages for sub, want %d", name(i), n, 2*publishers+2)
		}
		for j := 1; j < len(pages); j++ {
			if diff := cmp.Diff(pages[0], pages[j]); diff != "" {
				t.Errorf("%s: history from hub %d differs from hub 0's (-0 +%d):\n%s", name(i), j, j, diff)
			}
		}
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestRetryOnAnotherHub retries a keyed publish on a second hub after the
// first hub that confirmed it closed: the retry gets the same message, and
// history holds one copy.
func TestRetryOnAnotherHub(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := uniquePrefix()
	a, ba := newNode(t, srv, nodeOpts{prefix: prefix})
	b, _ := newNode(t, srv, nodeOpts{prefix: prefix})
	req := pubsub.PublishRequest{Topic: "orders", Payload: json.RawMessage(`{"n":1}`), IdempotencyKey: "k1"}
	first, err := connect(t, a, "shop", "alice").Publish(ctxT(t), req)
	if err != nil {
		t.Fatalf("Publish on hub A = %v", err)
	}
	a.Close()
	ba.Close()
	retry, err := connect(t, b, "shop", "alice").Publish(ctxT(t), req)
	if err != nil {
		t.Fatalf("retried Publish on hub B = %v", err)
	}
	if diff := cmp.Diff(first, retry); diff != "" {
		t.Errorf("retry on hub B (-first +retry):\n%s", diff)
	}
	page, err := connect(t, b, "shop", "bob").History(ctxT(t), pubsub.HistoryRequest{Topic: "orders"})
	if err != nil {
		t.Fatalf("History(orders) = %v", err)
	}
	if len(page.Messages) != 1 || page.Messages[0].ID != first.ID {
		t.Errorf("history = %+v, want the one message %v", page.Messages, first.ID)
	}
	if got := b.Stats().Deduplicated; got != 1 {
		t.Errorf("hub B Stats().Deduplicated = %d, want 1", got)
	}
}

// TestPublishPerMinuteAcrossHubs caps a topic at 5 publishes a minute on
// three hubs: publishes on all of them count against one window.
func TestPublishPerMinuteAcrossHubs(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	clock := fakeclock.New(time.Now()) // Redis expires the window on its own clock
	hubs := newNodes(t, srv, 3, nodeOpts{hub: memory.Options{Clock: clock, PublishPerMinute: 5}})
	var conns []pubsub.Conn
	for i, h := range hubs {
		conns = append(conns, connect(t, h, "lobby", fmt.Sprintf("client%d", i)))
	}
	for i := range 5 {
		rawPublish(t, conns[i%3], "chat", fmt.Sprint(i))
	}
	for i, c := range conns {
		_, err := c.Publish(ctxT(t), pubsub.PublishRequest{Topic: "chat", Payload: json.RawMessage(`"over"`)})
		var perr *pubsub.Error
		if !errors.As(err, &perr) || perr.Code != pubsub.CodeRateLimitExceeded || perr.RetryAfter <= 0 {
			t.Errorf("sixth publish of the minute on hub %d = %v, want RATE_LIMIT_EXCEEDED with a RetryAfter", i, err)
		}
	}
	// Another topic has a window of its own.
	rawPublish(t, conns[0], "news", "other topic")
	clock.Advance(time.Minute)
	rawPublish(t, conns[2], "chat", "a minute later")
}

// TestLeaseLostRefusesPublishes takes the hub's node id from under it, as
// a hub that started while Redis was away and the lease lapsed would: the
// hub refuses publishes and reports it, rather than make ids another hub
// makes too.
func TestLeaseLostRefusesPublishes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := uniquePrefix()
	h, b := newNode(t, srv, nodeOpts{prefix: prefix, broker: BrokerOptions{Lease: LeaseOptions{TTL: time.Second}}})
	c := connect(t, h, "lobby", "alice")
	rawPublish(t, c, "chat", "before")
	other := openOn(t, srv, Options{Prefix: prefix})
	key := fmt.Sprintf("%s:node:%d", prefix, b.NodeID())
	if err := other.rc.Do(ctxT(t), other.rc.B().Set().Key(key).Value("elsewhere pid 1 (00)").Build()).Error(); err != nil {
		t.Fatalf("SET %s = %v", key, err)
	}
	select {
	case <-b.Lost():
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for the lease to be lost", waitTimeout)
	}
	_, err := c.Publish(ctxT(t), pubsub.PublishRequest{Topic: "chat", Payload: json.RawMessage(`"after"`)})
	if !errors.Is(err, memory.ErrLeaseLost) {
		t.Errorf("Publish after the lease was lost = %v, want an error caused by memory.ErrLeaseLost", err)
	}
	if err := h.Ready(ctxT(t)); !errors.Is(err, memory.ErrLeaseLost) {
		t.Errorf("Ready() after the lease was lost = %v, want an error caused by memory.ErrLeaseLost", err)
	}
}

// TestRedisRestartUnderLoad kills Redis (with appendfsync always) while a
// Room on one hub publishes and a Room on another receives with gap fill:
// while Redis is down, publishes fail with a retriable NETWORK_ERROR and
// readiness reports the outage; the hubs come back by themselves; the
// receiver ends up with every confirmed message exactly once, and history
// holds them all.
func TestRedisRestartUnderLoad(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AOF: true})
	prefix := uniquePrefix()
	pubHub, _ := newNode(t, srv, nodeOpts{prefix: prefix})
	subHub, _ := newNode(t, srv, nodeOpts{prefix: prefix})
	join := func(h *memory.Hub, id string, gap bool) *pubsub.Room {
		r, err := pubsub.Join(ctxT(t), h, "lobby", &pubsub.JoinOptions{
			ClientID: id, GapFill: gap, RetryDelay: 5 * time.Millisecond,
			ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatalf("Join as %s = %v", id, err)
		}
		t.Cleanup(func() { r.Leave(context.Background()) })
		return r
	}
	alice, bob := join(pubHub, "alice", false), join(subHub, "bob", true)
	var mu sync.Mutex
	seen := map[pubsub.ID]int{}
	if _, err := bob.Subscribe(ctxT(t), "chat", func(m pubsub.Message) {
		mu.Lock()
		seen[m.ID]++
		mu.Unlock()
	}); err != nil {
		t.Fatalf("Subscribe(chat) = %v", err)
	}

	var (
		cmu       sync.Mutex
		confirmed []pubsub.ID
		failed    int
	)
	count := func() (int, int) {
		cmu.Lock()
		defer cmu.Unlock()
		return len(confirmed), failed
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			m, err := alice.Publish(ctx, "chat", i)
			cancel()
			cmu.Lock()
			if err == nil {
				confirmed = append(confirmed, m.ID)
			} else {
				var perr *pubsub.Error
				if !errors.As(err, &perr) || perr.Code != pubsub.CodeNetworkError || !perr.Retriable() {
					t.Errorf("Publish(%d) = %v, want success or a retriable NETWORK_ERROR", i, err)
				}
				failed++
			}
			cmu.Unlock()
			if err != nil {
				time.Sleep(5 * time.Millisecond) // a client's pause before trying again
			}
		}
	}()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(waitTimeout)
		for !ok() {
			if time.Now().After(deadline) {
				close(stop)
				waitClosed(t, done, "the publish loop to stop")
				t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("20 confirmed publishes", func() bool { n, _ := count(); return n >= 20 })
	srv.Kill()
	waitFor("a publish to fail while Redis is down", func() bool { _, f := count(); return f > 0 })
	if err := pubHub.Ready(ctxT(t)); !errors.Is(err, pubsub.ErrNetwork) {
		t.Errorf("Ready() while Redis is down = %v, want NETWORK_ERROR", err)
	}
	atOutage, _ := count()
	srv.Restart()
	waitFor("20 more confirmed publishes after the restart", func() bool { n, _ := count(); return n >= atOutage+20 })
	close(stop)
	waitClosed(t, done, "the publish loop to stop")
	if err := pubHub.Ready(ctxT(t)); err != nil {
		t.Errorf("Ready() after the restart = %v, want nil", err)
	}

	cmu.Lock()
	want := append([]pubsub.ID(nil), confirmed...)
	cmu.Unlock()
	deadline := time.Now().Add(waitTimeout)
	for {
		mu.Lock()
		missing := 0
		for _, id := range want {
			if seen[id] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: bob is missing %d of %d confirmed messages (stats %+v)", waitTimeout, missing, len(want), bob.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("bob received message %v %d times", id, n)
		}
	}
	mu.Unlock()

	// History holds every confirmed message, in order.
	var got []pubsub.ID
	var before pubsub.ID
	for {
		opts := []pubsub.HistoryOption{pubsub.Limit(50)}
		if before != 0 {
			opts = append(opts, pubsub.Before(before))
		}
		page, err := bob.GetHistory(ctxT(t), "chat", opts...)
		if err != nil {
			t.Fatalf("GetHistory = %v", err)
		}
		for i := len(page.Messages) - 1; i >= 0; i-- {
			got = append(got, page.Messages[i].ID)
		}
		if !page.HasMore || len(page.Messages) == 0 {
			break
		}
		before = page.Messages[0].ID
	}
	slices.Reverse(got)
	// A publish whose reply the crash cut off may be in history although
	// it failed (its retries with the same key found Redis down too): at
	// most one such message per failed publish, and bob has it as well.
	if !slices.IsSorted(got) {
		t.Errorf("history ids out of order: %v", got)
	}
	inHistory := map[pubsub.ID]bool{}
	for _, id := range got {
		inHistory[id] = true
	}
	for _, id := range want {
		if !inHistory[id] {
			t.Errorf("confirmed message %v is not in history", id)
		}
	}
	if extra := len(got) - len(want); extra < 0 || extra > failed {
		t.Errorf("history holds %d messages, %d confirmed and %d failed publishes", len(got), len(want), failed)
	}
	mu.Lock()
	for _, id := range got {
		if seen[id] != 1 {
			t.Errorf("bob received message %v of history %d times, want once", id, seen[id])
		}
	}
	mu.Unlock()
	t.Logf("%d confirmed, %d failed while Redis was down; bob: %+v", len(want), failed, bob.Stats())
}

// failover is a Transport that connects to the first of its hubs that
// takes the connection, starting from the one after the last it used, as
// a client with several node URLs (or a load balancer) does.
type failover struct {
	hubs []*memory.Hub
	mu   sync.Mutex
	next int
}

func (f *failover) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	f.mu.Lock()
	start := f.next
	f.mu.Unlock()
	var err error
	for i := range f.hubs {
		n := (start + i) % len(f.hubs)
		var c pubsub.Conn
		if c, err = f.hubs[n].Connect(ctx, req); err == nil {
			f.mu.Lock()
			f.next = n + 1
			f.mu.Unlock()
			return c, nil
		}
	}
	return nil, err
}

// TestNodeLostUnderLoad closes the hub a receiver is connected to while
// another hub's Room publishes: the receiver reconnects to another hub,
// resubscribes, fills the gap from the shared history and ends up with
// every message once, in order.
func TestNodeLostUnderLoad(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	hubs := newNodes(t, srv, 3, nodeOpts{})
	opts := func(id string) *pubsub.JoinOptions {
		return &pubsub.JoinOptions{ClientID: id, GapFill: true, RetryDelay: 5 * time.Millisecond,
			ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}
	}
	bob, err := pubsub.Join(ctxT(t), &failover{hubs: hubs}, "lobby", opts("bob"))
	if err != nil {
		t.Fatalf("Join as bob = %v", err)
	}
	t.Cleanup(func() { bob.Leave(context.Background()) })
	alice, err := pubsub.Join(ctxT(t), hubs[1], "lobby", opts("alice"))
	if err != nil {
		t.Fatalf("Join as alice = %v", err)
	}
	t.Cleanup(func() { alice.Leave(context.Background()) })
	var mu sync.Mutex
	var got []pubsub.ID
	if _, err := bob.Subscribe(ctxT(t), "chat", func(m pubsub.Message) {
		mu.Lock()
		got = append(got, m.ID)
		mu.Unlock()
	}); err != nil {
		t.Fatalf("Subscribe(chat) = %v", err)
	}
	var want []pubsub.ID
	for i := range 200 {
		if i == 50 {
			hubs[0].Close() // bob's node goes away
		}
		m, err := alice.Publish(ctxT(t), "chat", i)
		if err != nil {
			t.Fatalf("Publish(%d) = %v", i, err)
		}
		want = append(want, m.ID)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: bob has %d of %d messages (stats %+v)", waitTimeout, n, len(want), bob.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bob's messages (-published +received):\n%s", diff)
	}
	if bob.Stats().Reconnects == 0 {
		t.Errorf("bob never reconnected: stats %+v", bob.Stats())
	}
}
