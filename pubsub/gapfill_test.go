package pubsub_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// recorder collects the payloads a handler receives.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) handle(m pubsub.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, string(m.Payload))
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// waitUntil polls cond until it holds, failing after waitTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGapFillNeverEchoesOwnPublishes(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	ctx := context.Background()
	alice := join(t, hub, "alice", &pubsub.JoinOptions{GapFill: true, ReconnectMin: time.Millisecond})
	var rec recorder
	if _, err := alice.Subscribe(ctx, "chat", rec.handle); err != nil {
		t.Fatal(err)
	}
	// More publishes than any fixed memory of own ids would hold.
	for i := range 300 {
		if _, err := alice.Publish(ctx, "chat", i); err != nil {
			t.Fatal(err)
		}
	}
	hub.Disconnect("lobby", "alice")
	waitUntil(t, "the reconnect and its gap fill", func() bool { return alice.Stats().Reconnects == 1 })
	if got := rec.list(); len(got) != 0 {
		t.Errorf("alice's handler received %d of her own messages through gap fill", len(got))
	}
}

// hookHistory runs hook once, inside the first History call of the second
// connection: after the Room re-subscribed, before its gap fill reads.
type hookHistory struct {
	*memory.Hub
	hook func()
	mu   sync.Mutex
	n    int
}

func (h *hookHistory) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	c, err := h.Hub.Connect(ctx, req)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n++; h.n == 2 {
		return &hookConn{Conn: c, hook: h.hook}, nil
	}
	return c, nil
}

type hookConn struct {
	pubsub.Conn
	hook func()
	once sync.Once
}

func (c *hookConn) History(ctx context.Context, req pubsub.HistoryRequest) (pubsub.HistoryPage, error) {
	c.once.Do(c.hook)
	return c.Conn.History(ctx, req)
}

func TestGapFillKeepsLiveNonPersisted(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	ctx := context.Background()
	alice := join(t, hub, "alice", nil)
	tr := &hookHistory{Hub: hub, hook: func() {
		alice.Publish(ctx, "chat", "ephemeral", pubsub.Persist(false))
		alice.Publish(ctx, "chat", "persisted")
	}}
	bob := join(t, tr, "bob", &pubsub.JoinOptions{GapFill: true, ReconnectMin: time.Millisecond})
	var rec recorder
	if _, err := bob.Subscribe(ctx, "chat", rec.handle); err != nil {
		t.Fatal(err)
	}
	hub.Disconnect("lobby", "bob")
	// Both were published while bob was subscribed again: the persisted one
	// comes once (from gap fill or live), the ephemeral one live.
	waitUntil(t, "both messages", func() bool { return len(rec.list()) >= 2 })
	alice.Publish(ctx, "chat", "end")
	waitUntil(t, "the end marker", func() bool { return len(rec.list()) >= 3 })
	got := rec.list()
	want := map[string]int{`"ephemeral"`: 1, `"persisted"`: 1, `"end"`: 1}
	have := map[string]int{}
	for _, p := range got {
		have[p]++
	}
	if diff := cmp.Diff(want, have); diff != "" || got[2] != `"end"` {
		t.Errorf("bob received %v (-want +got counts):\n%s", got, diff)
	}
}

// gated holds every Connect after the first until open is closed.
type gated struct {
	*memory.Hub
	open chan struct{}
	mu   sync.Mutex
	n    int
}

func (g *gated) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	g.mu.Lock()
	g.n++
	first := g.n == 1
	g.mu.Unlock()
	if !first {
		select {
		case <-g.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Hub.Connect(ctx, req)
}

func TestGapFillMergesTopicsInIDOrder(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	ctx := context.Background()
	alice := join(t, hub, "alice", nil)
	tr := &gated{Hub: hub, open: make(chan struct{})}
	bob := join(t, tr, "bob", &pubsub.JoinOptions{GapFill: true, ReconnectMin: time.Millisecond})
	topics := []string{"a", "b", "c"}
	var rec recorder
	for _, topic := range topics {
		if _, err := bob.Subscribe(ctx, topic, rec.handle); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	publish := func(i int) {
		if _, err := alice.Publish(ctx, topics[i%3], i); err != nil {
			t.Fatal(err)
		}
		want = append(want, strconv.Itoa(i))
	}
	for i := range 3 { // bob sees one message on each topic live
		publish(i)
	}
	waitUntil(t, "the live messages", func() bool { return len(rec.list()) == 3 })

	// While bob is away, 150 messages alternate over the topics: more than
	// one history page of each.
	hub.Disconnect("lobby", "bob")
	for i := 3; i < 153; i++ {
		publish(i)
	}
	close(tr.open)
	waitUntil(t, "the reconnect and its gap fill", func() bool { return bob.Stats().Reconnects == 1 })
	if diff := cmp.Diff(want, rec.list()); diff != "" {
		t.Errorf("not in publish order (-want +got):\n%s", diff)
	}
	if got := bob.Stats().GapFilled; got != 150 {
		t.Errorf("Stats().GapFilled = %d, want 150", got)
	}
}

func TestOnErrorMayCallTheRoom(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	tr := &flaky{Transport: hub, fails: 1, err: pubsub.Errorf(pubsub.CodeUnauthenticated, "token expired")}
	var r *pubsub.Room
	ready := make(chan struct{})
	done := make(chan error, 1)
	ctx, cancel := ctxWait()
	defer cancel()
	r, err := pubsub.Join(ctx, tr, "lobby", &pubsub.JoinOptions{
		ClientID: "bob", ReconnectMin: time.Millisecond,
		OnError: func(error) {
			select {
			case <-ready: // closed right after Join returns
			case <-ctx.Done():
				done <- ctx.Err()
				return
			}
			_ = r.Err()
			done <- r.Leave(ctx) // from the Room's own goroutine
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	hub.Disconnect("lobby", "bob")
	if err := recv(t, done, "OnError calling Err and Leave to return"); err != nil {
		t.Errorf("Leave() from OnError = %v", err)
	}
}
