package transporttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
)

// epoch is where every subtest's clock starts.
var epoch = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

const room = "lobby"

type env struct {
	t     *testing.T
	h     Harness
	rec   *recorder
	clock *fakeclock.Clock
}

func newEnv(t *testing.T, newHarness NewHarness, cfg Config) *env {
	clock := fakeclock.New(epoch)
	cfg.Clock = clock
	h := newHarness(t, cfg)
	return &env{t: t, h: h, rec: &recorder{Transport: h.Transport}, clock: clock}
}

// join joins the room as id through the recording transport. The Room
// leaves when the test ends.
func (e *env) join(id string, edit ...func(*pubsub.JoinOptions)) *pubsub.Room {
	e.t.Helper()
	opts := &pubsub.JoinOptions{
		ClientID:     id,
		Clock:        e.clock,
		RetryDelay:   time.Millisecond,
		ReconnectMin: 2 * time.Millisecond,
		ReconnectMax: 20 * time.Millisecond,
		OnError:      func(err error) { e.t.Logf("%s: OnError: %v", id, err) },
	}
	for _, f := range edit {
		f(opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := pubsub.Join(ctx, e.rec, room, opts)
	if err != nil {
		e.t.Fatalf("Join(%q) as %q = %v", room, id, err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := r.Leave(ctx); err != nil {
			e.t.Errorf("Leave() as %q = %v", id, err)
		}
	})
	return r
}

func gapFill(o *pubsub.JoinOptions) { o.GapFill = true }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// delivered waits until m has reached every subscriber's hub (see
// Harness.Delivered).
func (e *env) delivered(m pubsub.Message) {
	e.t.Helper()
	if e.h.Delivered == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.h.Delivered(ctx, room, m.Topic, m.ID); err != nil {
		e.t.Fatalf("waiting for message %v of %q to reach its subscribers: %v", m.ID, m.Topic, err)
	}
}

// body is the payload the suite publishes.
type body struct {
	N      int    `json:"n"`
	Marker string `json:"marker,omitempty"`
}

func num(t testing.TB, m pubsub.Message) int {
	t.Helper()
	b, err := pubsub.Decode[body](m)
	if err != nil {
		t.Fatalf("message %v: %v", m.ID, err)
	}
	return b.N
}

func publish(t testing.TB, r *pubsub.Room, topic string, n int, opts ...pubsub.PublishOption) pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	m, err := r.Publish(ctx, topic, body{N: n}, opts...)
	if err != nil {
		t.Fatalf("Publish(%q, %d) as %q = %v", topic, n, r.ClientID(), err)
	}
	return m
}

// inbox collects what a handler receives.
type inbox struct {
	ch chan pubsub.Message
}

func newInbox() *inbox { return &inbox{ch: make(chan pubsub.Message, 4096)} }

func (b *inbox) handle(m pubsub.Message) { b.ch <- m }

func (b *inbox) next(t testing.TB) pubsub.Message {
	t.Helper()
	select {
	case m := <-b.ch:
		return m
	case <-time.After(waitTimeout):
		t.Fatalf("no message within %v", waitTimeout)
		return pubsub.Message{}
	}
}

// nums takes n messages and returns their numbers.
func (b *inbox) nums(t testing.TB, n int) []int {
	t.Helper()
	out := make([]int, 0, n)
	for range n {
		out = append(out, num(t, b.next(t)))
	}
	return out
}

// quiet proves b has nothing more from topic: from publishes a marker, which
// must be the next thing b receives, since a topic's messages arrive in order.
func (b *inbox) quiet(t testing.TB, from *pubsub.Room, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	marker := fmt.Sprintf("end-%d", time.Now().UnixNano())
	if _, err := from.Publish(ctx, topic, body{Marker: marker}); err != nil {
		t.Fatalf("Publish(marker) = %v", err)
	}
	m := b.next(t)
	got, _ := pubsub.Decode[body](m)
	if got.Marker != marker {
		t.Fatalf("received %s before the end marker; want nothing more on %q", m.Payload, topic)
	}
}

func subscribe(t testing.TB, r *pubsub.Room, topic string, h func(pubsub.Message), opts ...pubsub.SubscribeOption) *pubsub.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := r.Subscribe(ctx, topic, h, opts...)
	if err != nil {
		t.Fatalf("Subscribe(%q) as %q = %v", topic, r.ClientID(), err)
	}
	return s
}

func history(t testing.TB, r *pubsub.Room, topic string, opts ...pubsub.HistoryOption) pubsub.HistoryPage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	p, err := r.GetHistory(ctx, topic, opts...)
	if err != nil {
		t.Fatalf("GetHistory(%q) as %q = %v", topic, r.ClientID(), err)
	}
	return p
}

func pageNums(t testing.TB, p pubsub.HistoryPage) []int {
	t.Helper()
	out := make([]int, 0, len(p.Messages))
	for _, m := range p.Messages {
		out = append(out, num(t, m))
	}
	return out
}

func wantCode(t testing.TB, what string, err error, want *pubsub.Error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v, want %s", what, err, want.Code)
	}
}

// eventually waits for cond, polling; it fails the test after waitTimeout.
// It synchronizes with background work; it measures nothing.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func rawPayload(s string) json.RawMessage { return json.RawMessage(s) }

func modsOnly(_ context.Context, a pubsub.Access) error {
	if a.Topic == "mods-only" && a.ClientID != "mod" {
		return errors.New("mods only")
	}
	return nil
}
