package pubsub_test

import (
	"context"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// publishOnSubscribe is a hub whose Conns, once the hub confirmed a
// subscription to topic, have a publisher's messages delivered before
// Subscribe returns to the Room: the hub delivers to whoever it
// subscribed, whenever the Room gets to its side of the call.
type publishOnSubscribe struct {
	*memory.Hub
	topic string
	pub   *pubsub.Room
}

type handingConn struct {
	pubsub.Conn
	p      publishOnSubscribe
	msgs   chan *pubsub.Message
	handed chan struct{} // a message went to the Room
}

func (p publishOnSubscribe) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	c, err := p.Hub.Connect(ctx, req)
	if err != nil {
		return nil, err
	}
	h := &handingConn{Conn: c, p: p, msgs: make(chan *pubsub.Message), handed: make(chan struct{}, 16)}
	go func() {
		for {
			select {
			case m := <-c.Messages():
				select {
				case h.msgs <- m:
					h.handed <- struct{}{}
				case <-c.Done():
					return
				}
			case <-c.Done():
				return
			}
		}
	}()
	return h, nil
}

func (h *handingConn) Messages() <-chan *pubsub.Message { return h.msgs }

func (h *handingConn) Subscribe(ctx context.Context, req pubsub.SubscribeRequest) error {
	if err := h.Conn.Subscribe(ctx, req); err != nil || req.Topic != h.p.topic {
		return err
	}
	// Two messages, and the Room took both: it was done with the first
	// before this Subscribe returns.
	for _, p := range []string{"first", "second"} {
		if _, err := h.p.pub.Publish(ctx, h.p.topic, p); err != nil {
			return err
		}
	}
	for range 2 {
		select {
		case <-h.handed:
		case <-time.After(waitTimeout):
			return pubsub.Errorf(pubsub.CodeInternal, "the Room did not take the messages published during Subscribe within %v", waitTimeout)
		}
	}
	return nil
}

// A message the hub delivers once it confirmed a subscription reaches the
// handler, even when it arrives before Subscribe has returned.
func TestSubscribeKeepsMessagesBeforeItReturns(t *testing.T) {
	hub, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	alice := join(t, hub, "alice", nil)
	bob := join(t, publishOnSubscribe{Hub: hub, topic: "chat", pub: alice}, "bob", nil)
	got := make(chan string, 4)
	ctx, cancel := ctxWait()
	defer cancel()
	if _, err := bob.Subscribe(ctx, "chat", func(m pubsub.Message) { got <- string(m.Payload) }); err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
	for _, want := range []string{`"first"`, `"second"`} {
		select {
		case p := <-got:
			if p != want {
				t.Errorf("handler got %s, want %s", p, want)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("handler did not get %s, published after the hub confirmed the subscription", want)
		}
	}
}
