package socketio

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// gate wraps a Transport so that a test can hold the messages the hub
// delivers to the Server's listener, as if they were still in flight.
type gate struct {
	pubsub.Transport
	listener string

	mu   sync.Mutex
	open bool
	wake chan struct{} // closed and replaced when open changes
}

func newGate(t pubsub.Transport) *gate {
	return &gate{Transport: t, listener: DefaultListenerID, open: true, wake: make(chan struct{})}
}

func (g *gate) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = open
	close(g.wake)
	g.wake = make(chan struct{})
}

// wait blocks until the gate is open or done is closed.
func (g *gate) wait(done <-chan struct{}) bool {
	for {
		g.mu.Lock()
		open, wake := g.open, g.wake
		g.mu.Unlock()
		if open {
			return true
		}
		select {
		case <-wake:
		case <-done:
			return false
		}
	}
}

func (g *gate) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	c, err := g.Transport.Connect(ctx, req)
	if err != nil || req.ClientID != g.listener {
		return c, err
	}
	gc := &gatedConn{Conn: c, msgs: make(chan *pubsub.Message, 1024), stop: make(chan struct{})}
	go func() { // forwards while the gate is open
		for {
			select {
			case m := <-c.Messages():
				if !g.wait(gc.stop) {
					return
				}
				gc.msgs <- m
			case <-gc.stop:
				return
			}
		}
	}()
	return gc, nil
}

type gatedConn struct {
	pubsub.Conn
	msgs chan *pubsub.Message
	stop chan struct{}
	once sync.Once
}

func (c *gatedConn) Messages() <-chan *pubsub.Message { return c.msgs }

func (c *gatedConn) Close() error {
	c.once.Do(func() { close(c.stop) })
	return c.Conn.Close()
}

// TestRecoveryDeliversInFlightMessagesOnce holds a message on its way to
// the listener while a client recovers: the client gets it from history,
// and not a second time when the listener fans it out.
func TestRecoveryDeliversInFlightMessagesOnce(t *testing.T) {
	var g *gate
	f := newFixtureWith(t, Options{PublishPerMinute: -1}, memory.Options{}, func(t pubsub.Transport) pubsub.Transport {
		g = newGate(t)
		return g
	})
	app := f.app(t)
	n := startNode(t, f.ts.URL)
	n.connect("a", []string{"websocket"}, app.AppID, app.SubscribeKey, map[string]any{"reconnection": false})
	n.connected("a")
	n.subscribe("a", "orders.42")
	n.connect("b", []string{"websocket"}, app.AppID, app.SubscribeKey)
	n.connected("b")
	n.subscribe("b", "orders.42") // keeps the hub subscription while a is away
	f.mustPublish(t, app, seqBody(0))
	n.seqs("a", 0, 1)
	n.seqs("b", 0, 1)

	n.send(map[string]any{"op": "drop", "id": "a"})
	waitFor(t, "the server to see a go", func() bool { return f.srv.Stats().Connected == 1 })
	g.set(false)
	f.mustPublish(t, app, seqBody(1)) // in history, held on its way to the listener
	n.send(map[string]any{"op": "reconnect", "id": "a"})
	if r := n.connected("a"); r["recovered"] != true {
		t.Fatalf("recovered = %v", r["recovered"])
	}
	n.seqs("a", 1, 2) // from history
	g.set(true)
	n.seqs("b", 1, 2) // live
	f.mustPublish(t, app, seqBody(2))
	n.seqs("a", 2, 3) // live; seqs fails on a second seq 1 before it
	n.seqs("b", 2, 3)
}

// failFirst fails the first Connect of the listener, as a hub that is
// briefly unreachable would.
type failFirst struct {
	pubsub.Transport
	failed atomic.Bool
}

func (f *failFirst) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	if req.ClientID == DefaultListenerID && !f.failed.Swap(true) {
		return nil, pubsub.Errorf(pubsub.CodeNetworkError, "the hub is unreachable")
	}
	return f.Transport.Connect(ctx, req)
}

func TestSubscribeAfterTheHubWasUnreachable(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, Options{}, memory.Options{}, func(t pubsub.Transport) pubsub.Transport { return &failFirst{Transport: t} })
	app := f.app(t)
	addr := strings.TrimPrefix(f.ts.URL, "http://")
	_, err := dialSocketIO(ctxT(t), addr, app.AppID, app.SubscribeKey, "orders.42")
	if err == nil || !strings.Contains(err.Error(), "subscribe_error") || !strings.Contains(err.Error(), "NETWORK_ERROR") {
		t.Fatalf("subscribing while the hub is unreachable: %v, want subscribe_error NETWORK_ERROR", err)
	}
	ws, err := dialSocketIO(ctxT(t), addr, app.AppID, app.SubscribeKey, "orders.42")
	if err != nil {
		t.Fatalf("subscribing once the hub is back: %v", err)
	}
	ws.CloseNow()
}
