package network

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// TestServerRestart restarts the server on the same address while Rooms are
// subscribed. The Rooms see NETWORK_ERROR, reconnect, subscribe again and
// fill the gap from history; a publish whose reply was lost in the restart
// is retried with its idempotency key and delivered once; nothing persisted
// is lost.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	hub, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	gate := &replyGate{Transport: hub, payload: `{"n":5}`, held: make(chan pubsub.Message, 1), release: make(chan struct{})}
	releaseGate := sync.OnceFunc(func() { close(gate.release) })
	t.Cleanup(releaseGate) // a failed test must not hold the server
	opts := Options{Authenticate: testAuthenticate}

	var rs restartable
	srv := NewServer(gate, opts)
	rs.start(t, srv)
	client, err := NewClient("ws://"+rs.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	join := func(id string, gapFill bool) *pubsub.Room {
		r, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{
			Token:        testTokenPrefix + id,
			GapFill:      gapFill,
			ReconnectMin: 5 * time.Millisecond,
			ReconnectMax: 50 * time.Millisecond,
			RetryDelay:   200 * time.Millisecond,
			OnError:      func(err error) { t.Logf("%s: %v", id, err) },
		})
		if err != nil {
			t.Fatalf("Join() as %s = %v", id, err)
		}
		t.Cleanup(func() {
			ctx, cancel := ctxWait()
			defer cancel()
			if err := r.Leave(ctx); err != nil {
				t.Errorf("Leave() as %s = %v", id, err)
			}
		})
		return r
	}
	alice, bob := join("alice", false), join("bob", true)
	in := make(chan pubsub.Message, 64)
	if _, err := bob.Subscribe(ctx, "chat", func(m pubsub.Message) { in <- m }); err != nil {
		t.Fatal(err)
	}
	next := func() int {
		t.Helper()
		select {
		case m := <-in:
			b, err := pubsub.Decode[body](m)
			if err != nil {
				t.Fatal(err)
			}
			return b.N
		case <-time.After(waitTimeout):
			t.Fatal("bob received nothing")
			return 0
		}
	}
	publish := func(n int) pubsub.Message {
		t.Helper()
		m, err := alice.Publish(ctx, "chat", body{n})
		if err != nil {
			t.Fatalf("Publish(%d) = %v", n, err)
		}
		return m
	}
	publish(1)
	if got := next(); got != 1 {
		t.Fatalf("bob received %d, want 1", got)
	}

	// Publish 5: the hub confirms it, and the server goes down before the
	// reply reaches alice.
	type result struct {
		m   pubsub.Message
		err error
	}
	res := make(chan result, 1)
	go func() {
		m, err := alice.Publish(ctx, "chat", body{5})
		res <- result{m, err}
	}()
	var confirmed pubsub.Message
	select {
	case confirmed = <-gate.held:
	case r := <-res:
		t.Fatalf("Publish(5) = %v, %v before the hub held it", r.m, r.err)
	case <-time.After(waitTimeout):
		t.Fatal("Publish(5) never reached the hub")
	}
	cut, cancel := context.WithCancel(context.Background())
	cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(cut) }()
	waitFor(t, "Shutdown to cut every connection", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for c := range srv.conns {
			if !c.closing.Load() {
				return false
			}
		}
		return true
	})
	rs.ts.Close()

	// While the server is down the hub carries on.
	carol, err := hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close()
	for _, req := range []pubsub.PublishRequest{
		{Topic: "chat", Payload: []byte(`{"n":2}`)},
		{Topic: "chat", Payload: []byte(`{"n":3}`)},
		{Topic: "chat", Payload: []byte(`{"n":4}`), NoPersist: true}, // live only: lost while away
	} {
		if _, err := carol.Publish(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	releaseGate()
	if err := recv(t, shut, "Shutdown to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown(done context) = %v, want context.Canceled", err)
	}

	srv2 := NewServer(gate, opts)
	rs.start(t, srv2)
	t.Cleanup(func() {
		shutdown(t, srv2)
		rs.ts.Close()
	})

	r := recv(t, res, "Publish(5) to return across the restart")
	if r.err != nil {
		t.Fatalf("Publish(5) across the restart = %v, want success after a retry", r.err)
	}
	if r.m.ID != confirmed.ID {
		t.Errorf("retried Publish(5) confirmed %v, want the first confirmation %v", r.m.ID, confirmed.ID)
	}
	if n := alice.Stats().Retries; n == 0 {
		t.Error("alice made no retry; the test did not lose the reply")
	}
	publish(6)
	var got []int
	for range 4 {
		got = append(got, next())
	}
	if diff := cmp.Diff([]int{5, 2, 3, 6}, got); diff != "" {
		t.Errorf("bob received after the restart (-want +got):\n%s", diff)
	}
	publish(7)
	if n := next(); n != 7 {
		t.Errorf("bob received %d, want 7 and no duplicate", n)
	}
	page, err := bob.GetHistory(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	var hist []int
	for _, m := range page.Messages {
		b, _ := pubsub.Decode[body](m)
		hist = append(hist, b.N)
	}
	if diff := cmp.Diff([]int{1, 5, 2, 3, 6, 7}, hist); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	if n := bob.Stats().Reconnects; n != 1 {
		t.Errorf("bob reconnected %d times, want 1", n)
	}
}

// body is the payload the test publishes.
type body struct {
	N int `json:"n"`
}

// replyGate is a Transport whose Conns hold the first publish of a given
// payload after the hub has confirmed it, until release is closed.
type replyGate struct {
	pubsub.Transport
	payload string
	once    sync.Once
	held    chan pubsub.Message
	release chan struct{}
}

func (g *replyGate) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	c, err := g.Transport.Connect(ctx, req)
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: c, g: g}, nil
}

type gatedConn struct {
	pubsub.Conn
	g *replyGate
}

func (c *gatedConn) Publish(ctx context.Context, req pubsub.PublishRequest) (pubsub.Message, error) {
	m, err := c.Conn.Publish(ctx, req)
	if err == nil && string(req.Payload) == c.g.payload {
		c.g.once.Do(func() {
			c.g.held <- m
			<-c.g.release // closed by the test, or when it ends
		})
	}
	return m, err
}
