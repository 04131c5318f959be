package network

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// stateLog records a Room's handler calls and state changes, in the order
// the Room's goroutine made them.
type stateLog struct {
	mu     sync.Mutex
	events []string
	errs   []error
	seen   chan struct{}
}

func newStateLog() *stateLog { return &stateLog{seen: make(chan struct{}, 1)} }

func (l *stateLog) add(e string, err error) {
	l.mu.Lock()
	l.events = append(l.events, e)
	if err != nil {
		l.errs = append(l.errs, err)
	}
	l.mu.Unlock()
	select {
	case l.seen <- struct{}{}:
	default:
	}
}

func (l *stateLog) onState(c pubsub.StateChange) {
	e := c.State.String()
	switch {
	case c.Err != nil:
		e += " " + string(pubsub.CodeOf(c.Err))
	case c.State == pubsub.StateReconnected:
		e += fmt.Sprintf(" recovered=%t", c.Recovered)
	}
	l.add(e, c.Err)
}

// waitFor waits until an event starting with prefix is logged and returns
// the events so far.
func (l *stateLog) waitFor(t *testing.T, prefix string) []string {
	t.Helper()
	for {
		l.mu.Lock()
		events := append([]string(nil), l.events...)
		l.mu.Unlock()
		for _, e := range events {
			if strings.HasPrefix(e, prefix) {
				return events
			}
		}
		recv(t, l.seen, fmt.Sprintf("an event %q (have %d events, the last %q)", prefix, len(events), events[max(0, len(events)-3):]))
	}
}

// TestRoomStateOverNetwork checks the Room's OnState over a WebSocket: a
// connection the hub ends is reported lost with NETWORK_ERROR and then
// reconnected with the gap recovered from history, the missed message
// delivered in between.
func TestRoomStateOverNetwork(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{})
	ctx := ctxT(t)
	log := newStateLog()
	bob, err := pubsub.Join(ctx, f.client, "lobby", &pubsub.JoinOptions{
		Token: testTokenPrefix + "bob", GapFill: true, OnState: log.onState, Clock: f.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Leave(context.Background())
	if _, err := bob.Subscribe(ctx, "chat", func(m pubsub.Message) { log.add(string(m.Payload), nil) }); err != nil {
		t.Fatal(err)
	}
	pub, err := f.hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "pub"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if n := f.hub.Disconnect("lobby", "bob"); n != 1 {
		t.Fatalf("Disconnect() = %d, want 1", n)
	}
	// bob's hub connection is gone: this one can reach him only from
	// history.
	if _, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`"missed"`)}); err != nil {
		t.Fatal(err)
	}
	events := log.waitFor(t, "reconnected")
	want := []string{"connected", "disconnected NETWORK_ERROR", `"missed"`, "reconnected recovered=true"}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("bob's timeline (-want +got):\n%s", diff)
	}
}

// TestRoomStateSlowConsumerOverNetwork stalls a Room's handler until its
// connection is dropped as a slow consumer, then lets it go: OnState says
// SLOW_CONSUMER, the gap fill hands over every message once and in order,
// and the reconnect is recovered.
func TestRoomStateSlowConsumerOverNetwork(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{QueueBytes: 64 << 10})
	ctx := ctxT(t)
	log := newStateLog()
	gate := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(gate) })
	bob, err := pubsub.Join(ctx, f.client, "lobby", &pubsub.JoinOptions{
		Token: testTokenPrefix + "bob", GapFill: true, OnState: log.onState, Clock: f.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Leave(context.Background())
	var mu sync.Mutex
	var got []int
	if _, err := pubsub.Subscribe(ctx, bob, "chat", func(_ pubsub.Message, p struct{ N int }) {
		<-gate
		mu.Lock()
		got = append(got, p.N)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	pub, err := f.hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "pub"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pad := strings.Repeat("x", 8<<10)
	sent := 0
	// The Room's goroutine is stuck in the handler, so its state changes
	// wait too; the drop shows on the server: by the hub (the server's
	// bound) or by the client closing its socket (its own queue's bound).
	for f.hub.Stats().SlowConsumers == 0 && f.srv.Stats().Connections > 0 {
		if sent == 5000 {
			t.Fatalf("bob's stalled Room is still connected after %d messages of 8 KiB", sent)
		}
		sent++
		p := fmt.Appendf(nil, `{"n":%d,"pad":%q}`, sent, pad)
		if _, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: p}); err != nil {
			t.Fatalf("Publish #%d = %v", sent, err)
		}
	}
	t.Logf("dropped after %d messages; by the hub: %t", sent, f.hub.Stats().SlowConsumers > 0)
	once.Do(func() { close(gate) })
	log.waitFor(t, "reconnected")
	log.mu.Lock()
	events := log.events
	log.mu.Unlock()
	want := []string{"connected", "disconnected SLOW_CONSUMER", "reconnected recovered=true"}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("bob's states (-want +got):\n%s", diff)
	}
	waitFor(t, "bob's handler to receive every message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= sent
	})
	mu.Lock()
	defer mu.Unlock()
	wantN := make([]int, sent)
	for i := range wantN {
		wantN[i] = i + 1
	}
	if diff := cmp.Diff(wantN, got); diff != "" {
		t.Errorf("bob's handler received (-want +got):\n%s", diff)
	}
}
