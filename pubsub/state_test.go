package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// bubbleClock is the clock of a synctest bubble moved 30 years on, past
// 2010, where snowflake ids start: the bubble's own clock starts in 2000.
type bubbleClock struct{}

func (bubbleClock) Now() time.Time { return time.Now().AddDate(30, 0, 0) }

func (bubbleClock) AfterFunc(d time.Duration, f func()) pubsub.Timer { return time.AfterFunc(d, f) }

// bubbleHub returns a hub on bubbleClock, closed when the test ends.
func bubbleHub(t *testing.T, opts memory.Options) *memory.Hub {
	t.Helper()
	opts.Clock = bubbleClock{}
	hub, err := memory.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	return hub
}

// timeline records, in the order the Room's goroutine made them, its
// handler calls and state changes.
type timeline struct {
	mu     sync.Mutex
	events []string
	states []pubsub.StateChange
	seen   chan struct{} // signalled after every event
}

func newTimeline() *timeline { return &timeline{seen: make(chan struct{}, 1)} }

func (tl *timeline) add(e string) {
	tl.mu.Lock()
	tl.events = append(tl.events, e)
	tl.mu.Unlock()
	select {
	case tl.seen <- struct{}{}:
	default:
	}
}

func (tl *timeline) onState(c pubsub.StateChange) {
	tl.mu.Lock()
	tl.states = append(tl.states, c)
	tl.mu.Unlock()
	e := c.State.String()
	switch {
	case c.Err != nil:
		e += " " + string(pubsub.CodeOf(c.Err))
	case c.State == pubsub.StateReconnected:
		e += fmt.Sprintf(" recovered=%t", c.Recovered)
	}
	tl.add(e)
}

func (tl *timeline) handle(m pubsub.Message) { tl.add(string(m.Payload)) }

// waitFor waits until the timeline holds an event starting with prefix, and
// returns every event so far.
func (tl *timeline) waitFor(t *testing.T, prefix string) []string {
	t.Helper()
	for {
		tl.mu.Lock()
		events := append([]string(nil), tl.events...)
		tl.mu.Unlock()
		for _, e := range events {
			if strings.HasPrefix(e, prefix) {
				return events
			}
		}
		recv(t, tl.seen, fmt.Sprintf("an event %q (have %q)", prefix, events))
	}
}

// TestOnStateSlowConsumer drops a Room whose handler is stuck as a slow
// consumer: OnState reports why, after the messages that arrived before
// the loss, and then that the gap fill recovered everything, after the
// filled messages.
func TestOnStateSlowConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := bubbleHub(t, memory.Options{QueueBytes: 300}) // past the channel, a few of the messages below
		ctx := context.Background()
		alice := join(t, hub, "alice", nil)
		defer alice.Leave(ctx)
		tl := newTimeline()
		bob := join(t, hub, "bob", &pubsub.JoinOptions{GapFill: true, OnState: tl.onState, Clock: bubbleClock{}})
		defer bob.Leave(ctx)
		gate := make(chan struct{})
		var once sync.Once
		if _, err := bob.Subscribe(ctx, "chat", func(m pubsub.Message) {
			once.Do(func() { <-gate })
			tl.handle(m)
		}); err != nil {
			t.Fatal(err)
		}
		const n = memory.ChannelSlots + 20
		for i := 1; i <= n; i++ {
			if _, err := alice.Publish(ctx, "chat", i); err != nil {
				t.Fatalf("Publish(%d) = %v", i, err)
			}
		}
		if s := hub.Stats().SlowConsumers; s != 1 {
			t.Fatalf("hub.Stats().SlowConsumers = %d, want 1", s)
		}
		close(gate)
		events := tl.waitFor(t, "reconnected")
		synctest.Wait()
		tl.mu.Lock()
		events = tl.events
		tl.mu.Unlock()
		// Before the loss the hub queued some messages; the rest came from
		// history, all before the Reconnected report.
		i := 0
		want := []string{"connected"}
		for ; i < len(events) && events[i] != "disconnected SLOW_CONSUMER"; i++ {
		}
		for k := 1; k < i; k++ {
			want = append(want, fmt.Sprint(k))
		}
		want = append(want, "disconnected SLOW_CONSUMER")
		for k := i; k <= n; k++ {
			want = append(want, fmt.Sprint(k))
		}
		want = append(want, "reconnected recovered=true")
		if diff := cmp.Diff(want, events); diff != "" {
			t.Errorf("bob's timeline (-want +got):\n%s", diff)
		}
		tl.mu.Lock()
		err := tl.states[1].Err
		tl.mu.Unlock()
		var perr *pubsub.Error
		if !errors.As(err, &perr) || perr.Code != pubsub.CodeSlowConsumer {
			t.Errorf("Disconnected Err = %v, want a *pubsub.Error with SLOW_CONSUMER", err)
		}
	})
}

// refuseHistory refuses every history request.
func refuseHistory(_ context.Context, a pubsub.Access) error {
	if a.Action == pubsub.ActionHistory {
		return pubsub.Errorf(pubsub.CodePermissionDenied, "no history here")
	}
	return nil
}

// TestOnStateRecovered checks when a reconnect counts as recovered: only
// with GapFill, exact topics only, and history read to its end.
func TestOnStateRecovered(t *testing.T) {
	tests := []struct {
		name      string
		gapFill   bool
		pattern   bool // the Room also subscribes to a pattern
		authorize func(context.Context, pubsub.Access) error
		want      bool
	}{
		{name: "gap fill", gapFill: true, want: true},
		{name: "no gap fill", want: false},
		{name: "gap fill and a pattern", gapFill: true, pattern: true, want: false},
		{name: "history refused", gapFill: true, authorize: refuseHistory, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hub := bubbleHub(t, memory.Options{Authorize: tt.authorize})
				ctx := context.Background()
				alice := join(t, hub, "alice", nil)
				defer alice.Leave(ctx)
				tl := newTimeline()
				bob := join(t, hub, "bob", &pubsub.JoinOptions{GapFill: tt.gapFill, OnState: tl.onState, Clock: bubbleClock{}})
				defer bob.Leave(ctx)
				if _, err := bob.Subscribe(ctx, "chat", tl.handle); err != nil {
					t.Fatal(err)
				}
				if tt.pattern {
					if _, err := bob.Subscribe(ctx, "user:*", tl.handle); err != nil {
						t.Fatal(err)
					}
				}
				hub.Disconnect("lobby", "bob")
				// Published while bob is away: the reconnect waits at least
				// ReconnectMin/2 of the bubble's time, which passes only once
				// everything else is blocked.
				if _, err := alice.Publish(ctx, "chat", "missed"); err != nil {
					t.Fatal(err)
				}
				events := tl.waitFor(t, "reconnected")
				wantLast := fmt.Sprintf("reconnected recovered=%t", tt.want)
				if got := events[len(events)-1]; got != wantLast {
					t.Errorf("bob's timeline %q ends with %q, want %q", events, got, wantLast)
				}
				gotMissed := strings.Contains(strings.Join(events, " "), `"missed"`)
				if gotMissed != (tt.gapFill && tt.authorize == nil) {
					t.Errorf("bob's timeline %q: the message published while he was away delivered = %t", events, gotMissed)
				}
				if events[0] != "connected" || !strings.HasPrefix(events[1], "disconnected NETWORK_ERROR") {
					t.Errorf("bob's timeline %q, want connected, then disconnected NETWORK_ERROR", events)
				}
			})
		})
	}
}

func TestOnStateStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := bubbleHub(t, memory.Options{})
		tl := newTimeline()
		tr := &flaky{Transport: hub, fails: 1, err: pubsub.Errorf(pubsub.CodeUnauthenticated, "token expired")}
		r, err := pubsub.Join(context.Background(), tr, "lobby", &pubsub.JoinOptions{ClientID: "bob", OnState: tl.onState, Clock: bubbleClock{}})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Leave(context.Background())
		hub.Disconnect("lobby", "bob")
		events := tl.waitFor(t, "stopped")
		want := []string{"connected", "disconnected NETWORK_ERROR", "stopped UNAUTHENTICATED"}
		if diff := cmp.Diff(want, events); diff != "" {
			t.Errorf("timeline (-want +got):\n%s", diff)
		}
	})
}

func TestOnStateNotAfterLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := bubbleHub(t, memory.Options{})
		tl := newTimeline()
		r := join(t, hub, "bob", &pubsub.JoinOptions{OnState: tl.onState, Clock: bubbleClock{}})
		tl.waitFor(t, "connected")
		if err := r.Leave(context.Background()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		tl.mu.Lock()
		defer tl.mu.Unlock()
		if diff := cmp.Diff([]string{"connected"}, tl.events); diff != "" {
			t.Errorf("timeline (-want +got):\n%s", diff)
		}
	})
}

// dropOnSubscribe loses its connection in the middle of a Subscribe to
// topic: the hub drops it, and the call fails as a lost connection would.
type dropOnSubscribe struct {
	*memory.Hub
	topic string
	once  *sync.Once // the first such Subscribe only
}

type dropConn struct {
	pubsub.Conn
	dropOnSubscribe
}

func (d dropOnSubscribe) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	c, err := d.Hub.Connect(ctx, req)
	if err != nil {
		return nil, err
	}
	return &dropConn{Conn: c, dropOnSubscribe: d}, nil
}

func (c *dropConn) Subscribe(ctx context.Context, req pubsub.SubscribeRequest) error {
	drop := false
	if req.Topic == c.topic {
		c.once.Do(func() { drop = true })
	}
	if drop {
		c.Hub.Disconnect("lobby", c.Conn.ClientID())
		return pubsub.Errorf(pubsub.CodeNetworkError, "connection lost during subscribe")
	}
	return c.Conn.Subscribe(ctx, req)
}

// TestSubscribeLosesConnection checks what Subscribe's doc promises: when
// the connection drops during the call, Subscribe still succeeds, the Room
// subscribes again once it reconnects, and with GapFill a message published
// after Subscribe returned reaches the handler.
func TestSubscribeLosesConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := bubbleHub(t, memory.Options{})
		ctx := context.Background()
		alice := join(t, hub, "alice", nil)
		defer alice.Leave(ctx)
		tl := newTimeline()
		bob := join(t, dropOnSubscribe{Hub: hub, topic: "chat", once: new(sync.Once)}, "bob", &pubsub.JoinOptions{GapFill: true, OnState: tl.onState, Clock: bubbleClock{}})
		defer bob.Leave(ctx)
		if _, err := bob.Subscribe(ctx, "chat", tl.handle); err != nil {
			t.Fatalf("Subscribe while the connection drops = %v, want nil", err)
		}
		if _, err := alice.Publish(ctx, "chat", "after subscribe"); err != nil {
			t.Fatal(err)
		}
		events := tl.waitFor(t, `"after subscribe"`)
		synctest.Wait()
		tl.mu.Lock()
		events = tl.events
		tl.mu.Unlock()
		want := []string{"connected", "disconnected NETWORK_ERROR", `"after subscribe"`, "reconnected recovered=true"}
		if diff := cmp.Diff(want, events); diff != "" {
			t.Errorf("bob's timeline (-want +got):\n%s", diff)
		}
		if _, err := alice.Publish(ctx, "chat", "live"); err != nil {
			t.Fatal(err)
		}
		tl.waitFor(t, `"live"`)
	})
}
