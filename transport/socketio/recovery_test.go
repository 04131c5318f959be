package socketio

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// reorder wraps a Transport so that a test can hold the listener's messages
// of one topic while those of other topics pass, as concurrent publishes to
// two channels may reach the listener out of id order.
type reorder struct {
	pubsub.Transport
	topic string

	mu      sync.Mutex
	holding bool
	held    []*pubsub.Message
	out     chan *pubsub.Message
}

func (r *reorder) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	c, err := r.Transport.Connect(ctx, req)
	if err != nil || req.ClientID != DefaultListenerID {
		return c, err
	}
	rc := &reorderConn{Conn: c, msgs: make(chan *pubsub.Message, 1024)}
	r.mu.Lock()
	r.out = rc.msgs
	r.mu.Unlock()
	go func() {
		for {
			select {
			case m := <-c.Messages():
				r.mu.Lock()
				if r.holding && m.Topic == r.topic {
					r.held = append(r.held, m)
					r.mu.Unlock()
					continue
				}
				r.mu.Unlock()
				rc.msgs <- m
			case <-c.Done():
				return
			}
		}
	}()
	return rc, nil
}

func (r *reorder) hold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holding = true
}

// release lets the held messages go on to the listener.
func (r *reorder) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holding = false
	for _, m := range r.held {
		r.out <- m
	}
	r.held = nil
}

type reorderConn struct {
	pubsub.Conn
	msgs chan *pubsub.Message
}

func (c *reorderConn) Messages() <-chan *pubsub.Message { return c.msgs }

// TestRecoveryAfterMessagesOutOfIDOrder has the listener fan out a message
// of orders.43 before an older one of orders.42, and a client that
// subscribed to both lose its connection in between: recovering, it must
// still get the orders.42 message it never received.
func TestRecoveryAfterMessagesOutOfIDOrder(t *testing.T) {
	var r *reorder
	f := newFixtureWith(t, Options{PublishPerMinute: -1}, memory.Options{}, func(t pubsub.Transport) pubsub.Transport {
		r = &reorder{Transport: t, topic: "orders.42"}
		return r
	})
	app := f.app(t)
	n := startNode(t, f.ts.URL)
	n.connect("a", []string{"websocket"}, app.AppID, app.SubscribeKey, map[string]any{"reconnection": false})
	n.connected("a")
	n.subscribe("a", "orders.42")
	n.subscribe("a", "orders.43")
	n.connect("b", []string{"websocket"}, app.AppID, app.SubscribeKey)
	n.connected("b")
	n.subscribe("b", "orders.42") // keeps the hub subscriptions while a is away
	n.subscribe("b", "orders.43")

	r.hold()
	f.mustPublish(t, app, seqBody(0)) // orders.42, still on its way to the listener
	f.mustPublish(t, app, `{"channel":"orders.43","event":"order.updated","data":{"seq":-1}}`)
	for _, id := range []string{"a", "b"} {
		if got := firstArg(n.event(id, "order.updated"))["seq"]; got != float64(-1) {
			t.Fatalf("%s received seq %v, want the orders.43 message -1 first", id, got)
		}
	}
	n.send(map[string]any{"op": "drop", "id": "a"})
	waitFor(t, "the server to see a go", func() bool { return f.srv.Stats().Connected == 1 })
	r.release()
	n.seqs("b", 0, 1)

	n.send(map[string]any{"op": "reconnect", "id": "a"})
	if rep := n.connected("a"); rep["recovered"] != true {
		t.Fatalf("recovered = %v", rep["recovered"])
	}
	n.seqs("a", 0, 1) // the orders.42 message a missed, from history
	f.mustPublish(t, app, seqBody(1))
	n.seqs("a", 1, 2)
}

// FuzzParseOffset checks that parseOffset never panics, and that what it
// accepts reads back the same once written again. The seeds run as a
// normal test.
func FuzzParseOffset(f *testing.F) {
	for _, s := range []string{"0.0", "2033151221560246273.17", "", ".", "1.", ".1", "1.2.3", "-1.2", "1.-2", "1.+2",
		"9223372036854775808.1", "1.18446744073709551616", "007.1", "1", "1 .2", "１.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, ok := parseOffset(s)
		if !ok {
			return
		}
		back, ok := parseOffset(o.String())
		if !ok || back != o {
			t.Fatalf("parseOffset(%q) = %+v, which writes as %q and reads back as %+v, %v", s, o, o.String(), back, ok)
		}
	})
}

// TestLateMessagesAreForgotten checks the bounds of the listener's record
// of messages fanned out after newer ones: the recovery window, and a count.
func TestLateMessagesAreForgotten(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{RecoveryWindow: time.Minute})
	b := &bridge{s: f.srv}
	add := func(id pubsub.ID) {
		b.pos++
		b.addLate(pubsub.Message{ID: id, Payload: []byte(`1`)})
	}
	add(1)
	add(2)
	f.clock.Advance(time.Minute)
	add(3)
	if len(b.late) != 1 || b.late[0].m.ID != 3 || b.lateFloor != 2 {
		t.Fatalf("after the window: %d entries, first %v, floor %d; want only id 3, floor 2", len(b.late), b.late[0].m.ID, b.lateFloor)
	}
	for i := range maxLate {
		add(pubsub.ID(4 + i))
	}
	if len(b.late) != maxLate || b.late[0].m.ID != 4 || b.lateFloor != 3 || b.lateBytes != maxLate {
		t.Fatalf("over the count: %d entries from id %v, floor %d, %d bytes; want %d from id 4, floor 3", len(b.late), b.late[0].m.ID, b.lateFloor, b.lateBytes, maxLate)
	}
}
