package pubsub_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait for something that should happen: a
// deadlock guard, generous enough for a loaded machine, not a measurement.
const waitTimeout = 20 * time.Second

// recv returns the next value from ch; it fails the test, naming what it
// waited for, when none comes within waitTimeout.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
	var zero T
	return zero
}

// ctxWait returns a context that ends after waitTimeout.
func ctxWait() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), waitTimeout)
}

func newHub(t testing.TB) *memory.Hub {
	t.Helper()
	hub, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatalf("memory.New() = %v", err)
	}
	t.Cleanup(func() { hub.Close() })
	return hub
}

func join(t testing.TB, tr pubsub.Transport, id string, opts *pubsub.JoinOptions) *pubsub.Room {
	t.Helper()
	if opts == nil {
		opts = &pubsub.JoinOptions{}
	}
	opts.ClientID = id
	ctx, cancel := ctxWait()
	defer cancel()
	r, err := pubsub.Join(ctx, tr, "lobby", opts)
	if err != nil {
		t.Fatalf("Join(%q) = %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := ctxWait()
		defer cancel()
		if err := r.Leave(ctx); err != nil {
			t.Errorf("Leave() as %q = %v", id, err)
		}
	})
	return r
}

func TestJoinErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := pubsub.Join(ctx, nil, "lobby", nil); !errors.Is(err, pubsub.ErrInvalidRequest) {
		t.Errorf("Join(nil transport) = %v, want INVALID_REQUEST", err)
	}
	hub := newHub(t)
	if _, err := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "bad\nid"}); !errors.Is(err, pubsub.ErrInvalidRequest) {
		t.Errorf("Join(control character in id) = %v, want INVALID_REQUEST", err)
	}
	r, err := pubsub.Join(ctx, hub, "lobby", nil)
	if err != nil {
		t.Fatalf("Join(no client id) = %v", err)
	}
	defer r.Leave(ctx)
	if r.ClientID() == "" {
		t.Error("a Room joined without a client id has none; the hub should have chosen one")
	}
}

func TestTypedSubscribe(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	errs := make(chan error, 1)
	alice := join(t, hub, "alice", nil)
	bob := join(t, hub, "bob", &pubsub.JoinOptions{OnError: func(err error) { errs <- err }})
	type point struct{ X, Y int }
	got := make(chan point, 2)
	ctx := context.Background()
	if _, err := pubsub.Subscribe(ctx, bob, "cursor", func(_ pubsub.Message, p point) { got <- p }); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Publish(ctx, "cursor", "not a point"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Publish(ctx, "cursor", point{3, 4}); err != nil {
		t.Fatal(err)
	}
	if p := recv(t, got, "the typed handler's point"); p != (point{3, 4}) {
		t.Errorf("typed handler got %+v, want {3 4}", p)
	}
	if err := recv(t, errs, "OnError's decoding error"); !errors.Is(err, pubsub.ErrInvalidPayload) {
		t.Errorf("OnError got %v, want INVALID_PAYLOAD for the undecodable payload", err)
	}
}

// TestPatternSubscribe is the pattern example of the README and of the seed's
// HTTP API on a Room: "user:*" receives what is published to
// "user:123:events", as Redis PSUBSCRIBE would.
func TestPatternSubscribe(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	alice, bob := join(t, hub, "alice", nil), join(t, hub, "bob", nil)
	ctx := context.Background()
	got := make(chan string, 8)
	if _, err := bob.Subscribe(ctx, "user:*", func(m pubsub.Message) { got <- m.Topic }); err != nil {
		t.Fatalf("Subscribe(user:*) = %v", err)
	}
	exact := make(chan string, 8)
	if _, err := bob.Subscribe(ctx, "user:1", func(m pubsub.Message) { exact <- m.Topic }); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"user:123:events", "user:1", "users:2", "user", "user:2"} {
		if _, err := alice.Publish(ctx, topic, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alice.Publish(ctx, "user:*", 1); !errors.Is(err, pubsub.ErrInvalidTopicName) {
		t.Errorf("Publish(user:*) = %v, want INVALID_TOPIC_NAME", err)
	}
	var topics []string
	for range 3 {
		select {
		case name := <-got:
			topics = append(topics, name)
		case <-time.After(waitTimeout):
			t.Fatalf("pattern handler got %q, then nothing for %v; want user:123:events, user:1, user:2", topics, waitTimeout)
		}
	}
	if want := []string{"user:123:events", "user:1", "user:2"}; !cmp.Equal(topics, want) {
		t.Errorf("pattern handler got %q, want %q", topics, want)
	}
	if e := recv(t, exact, "the exact handler's message"); e != "user:1" {
		t.Errorf("exact handler got %q", e)
	}
}

func TestLeaveFromHandler(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	alice, bob := join(t, hub, "alice", nil), join(t, hub, "bob", nil)
	ctx := context.Background()
	left := make(chan error, 1)
	if _, err := bob.Subscribe(ctx, "chat", func(pubsub.Message) { left <- bob.Leave(ctx) }); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Publish(ctx, "chat", 1); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, left, "Leave called from the handler to return"); err != nil {
		t.Errorf("Leave() from a handler = %v", err)
	}
	if _, err := bob.Publish(ctx, "chat", 2); !errors.Is(err, pubsub.ErrNotConnected) {
		t.Errorf("Publish after Leave = %v, want NOT_CONNECTED", err)
	}
}

func TestSlowConsumerIsDroppedAndRecovers(t *testing.T) {
	t.Parallel()
	// Past the channel, room for a few of the messages below.
	hub, err := memory.New(memory.Options{QueueBytes: 300})
	const total = memory.ChannelSlots + 20
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	alice := join(t, hub, "alice", nil)
	bob := join(t, hub, "bob", &pubsub.JoinOptions{GapFill: true, ReconnectMin: time.Millisecond})
	ctx := context.Background()
	gate := make(chan struct{})
	openGate := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(openGate) // before Leave: a failed test must not leave the handler stuck
	var once sync.Once
	var got []int
	done := make(chan struct{})
	if _, err := pubsub.Subscribe(ctx, bob, "chat", func(_ pubsub.Message, n int) {
		once.Do(func() { <-gate })
		got = append(got, n)
		if len(got) == total {
			close(done)
		}
	}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= total; i++ {
		if _, err := alice.Publish(ctx, "chat", i); err != nil {
			t.Fatalf("Publish(%d) = %v; a stuck subscriber must not block publishers", i, err)
		}
	}
	if n := hub.Stats().SlowConsumers; n != 1 {
		t.Errorf("hub.Stats().SlowConsumers = %d, want 1", n)
	}
	openGate()
	recv(t, done, "the handler to receive every message")
	want := make([]int, total)
	for i := range want {
		want[i] = i + 1
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after recovering (-want +got):\n%s", diff)
	}
	// The reconnect is counted once its gap fill, which delivered the last
	// messages, is done.
	deadline := time.Now().Add(10 * time.Second)
	for bob.Stats().Reconnects == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := bob.Stats().Reconnects; n != 1 {
		t.Errorf("Stats().Reconnects = %d, want 1", n)
	}
}

// flaky wraps a Transport: after the first Connect, it refuses the next
// fails Connects with err, and records when each Connect happened.
type flaky struct {
	pubsub.Transport
	mu       sync.Mutex
	fails    int
	err      error
	attempts []time.Time
}

func (f *flaky) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	f.mu.Lock()
	f.attempts = append(f.attempts, time.Now())
	n := len(f.attempts)
	f.mu.Unlock()
	if n > 1 && n <= 1+f.fails {
		return nil, f.err
	}
	return f.Transport.Connect(ctx, req)
}

func TestReconnectBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, err := memory.New(memory.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer hub.Close()
		tr := &flaky{Transport: hub, fails: 5, err: pubsub.Errorf(pubsub.CodeNetworkError, "refused")}
		r, err := pubsub.Join(context.Background(), tr, "lobby", &pubsub.JoinOptions{
			ClientID: "bob", ReconnectMin: 100 * time.Millisecond, ReconnectMax: 400 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Leave(context.Background())

		lost := time.Now()
		hub.Disconnect("lobby", "bob")
		for deadline := lost.Add(time.Minute); r.Stats().Reconnects == 0; { // the bubble's time
			if time.Now().After(deadline) {
				t.Fatal("no reconnect within a minute")
			}
			time.Sleep(10 * time.Millisecond)
		}
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if len(tr.attempts) != 7 {
			t.Fatalf("%d Connect calls, want 1 + 5 refused + 1", len(tr.attempts))
		}
		prev := lost
		for i, d := range []time.Duration{100, 200, 400, 400, 400, 400} {
			d *= time.Millisecond
			gap := tr.attempts[i+1].Sub(prev)
			if gap < d/2 || gap >= d {
				t.Errorf("reconnect attempt %d came %v after the previous one, want within [%v, %v)", i+1, gap, d/2, d)
			}
			prev = tr.attempts[i+1]
		}
	})
}

func TestRefusedOnReconnectStopsTheRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, err := memory.New(memory.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer hub.Close()
		errs := make(chan error, 1)
		tr := &flaky{Transport: hub, fails: 1, err: pubsub.Errorf(pubsub.CodeUnauthenticated, "token expired")}
		r, err := pubsub.Join(context.Background(), tr, "lobby", &pubsub.JoinOptions{ClientID: "bob", OnError: func(err error) { errs <- err }})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Leave(context.Background())
		hub.Disconnect("lobby", "bob")
		if err := recv(t, errs, "OnError's refusal"); !errors.Is(err, pubsub.ErrUnauthenticated) {
			t.Fatalf("OnError got %v, want UNAUTHENTICATED", err)
		}
		synctest.Wait()
		if !errors.Is(r.Err(), pubsub.ErrUnauthenticated) {
			t.Errorf("Err() = %v, want UNAUTHENTICATED", r.Err())
		}
		_, err = r.Publish(context.Background(), "chat", 1)
		if !errors.Is(err, pubsub.ErrNotConnected) || !errors.Is(err, pubsub.ErrUnauthenticated) {
			t.Errorf("Publish on a refused Room = %v, want NOT_CONNECTED caused by UNAUTHENTICATED", err)
		}
	})
}

// lossy reports NETWORK_ERROR for every publish reply, after the hub has
// handled the publish.
type lossy struct{ pubsub.Transport }

type lossyConn struct {
	pubsub.Conn
	mu       sync.Mutex
	attempts []time.Time
}

var lastLossy *lossyConn

func (l lossy) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	c, err := l.Transport.Connect(ctx, req)
	if err != nil {
		return nil, err
	}
	lastLossy = &lossyConn{Conn: c}
	return lastLossy, nil
}

func (c *lossyConn) Publish(ctx context.Context, req pubsub.PublishRequest) (pubsub.Message, error) {
	c.mu.Lock()
	c.attempts = append(c.attempts, time.Now())
	c.mu.Unlock()
	c.Conn.Publish(ctx, req)
	return pubsub.Message{}, pubsub.Errorf(pubsub.CodeNetworkError, "reply lost")
}

func TestRetryBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, err := memory.New(memory.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer hub.Close()
		r, err := pubsub.Join(context.Background(), lossy{hub}, "lobby", &pubsub.JoinOptions{ClientID: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Leave(context.Background())
		c := lastLossy
		if _, err := r.Publish(context.Background(), "chat", 1); !errors.Is(err, pubsub.ErrNetwork) {
			t.Fatalf("Publish = %v, want NETWORK_ERROR", err)
		}
		if len(c.attempts) != 4 {
			t.Fatalf("%d attempts, want 4", len(c.attempts))
		}
		for i, d := range []time.Duration{250, 500, 1000} {
			d *= time.Millisecond
			if gap := c.attempts[i+1].Sub(c.attempts[i]); gap < d/2 || gap >= d {
				t.Errorf("retry %d came %v after the previous attempt, want within [%v, %v)", i+1, gap, d/2, d)
			}
		}
		page, err := r.GetHistory(context.Background(), "chat")
		if err != nil || len(page.Messages) != 1 {
			t.Errorf("history after 4 attempts: %d messages, %v; want exactly 1", len(page.Messages), err)
		}
	})
}
