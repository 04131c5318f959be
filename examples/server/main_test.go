package main

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start runs the server on a free loopback port until the test ends and
// returns its address.
func start(t *testing.T, cfg config) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, io.Discard, func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run() = %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run() after shutdown = %v", err)
		}
	})
	return addr
}

func TestServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := config{addr: "127.0.0.1:0", publishKey: "pk-test", subscribeKey: "sk-test", data: t.TempDir()}

	var first pubsub.ID
	t.Run("keys", func(t *testing.T) {
		addr := start(t, cfg)
		client, err := network.NewClient("ws://"+addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		join := func(token string) (*pubsub.Room, error) {
			r, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{Token: token})
			if err == nil {
				t.Cleanup(func() { r.Leave(context.Background()) })
			}
			return r, err
		}
		alice, err := join("pk-test:alice")
		if err != nil {
			t.Fatalf("Join(publish key) = %v", err)
		}
		bob, err := join("sk-test:bob")
		if err != nil {
			t.Fatalf("Join(subscribe key) = %v", err)
		}
		if _, err := join("nope:mallory"); !errors.Is(err, pubsub.ErrUnauthenticated) {
			t.Errorf("Join(unknown key) = %v, want UNAUTHENTICATED", err)
		}
		got := make(chan pubsub.Message, 1)
		if _, err := bob.Subscribe(ctx, "chat", func(m pubsub.Message) { got <- m }); err != nil {
			t.Fatal(err)
		}
		m, err := alice.Publish(ctx, "chat", "hello")
		if err != nil {
			t.Fatalf("Publish(publish key) = %v", err)
		}
		first = m.ID
		select {
		case r := <-got:
			if r.From != "alice" || string(r.Payload) != `"hello"` {
				t.Errorf("bob received %s from %q", r.Payload, r.From)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("bob received nothing")
		}
		if _, err := bob.Publish(ctx, "chat", "hi"); !errors.Is(err, pubsub.ErrPermissionDenied) {
			t.Errorf("Publish(subscribe key) = %v, want PERMISSION_DENIED", err)
		}
	})
	t.Run("history survives a restart", func(t *testing.T) {
		addr := start(t, cfg)
		client, _ := network.NewClient("ws://"+addr, nil)
		r, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{Token: "sk-test:carol"})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Leave(context.Background())
		p, err := r.GetHistory(ctx, "chat")
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Messages) != 1 || p.Messages[0].ID != first {
			t.Errorf("history after restart = %+v, want the message %v", p.Messages, first)
		}
	})
}

func TestRunRefusesBadKeys(t *testing.T) {
	for _, cfg := range []config{
		{addr: "127.0.0.1:0", subscribeKey: "sk"},
		{addr: "127.0.0.1:0", publishKey: "same", subscribeKey: "same"},
	} {
		if err := run(context.Background(), cfg, io.Discard, nil); err == nil {
			t.Errorf("run(%+v) = nil, want an error", cfg)
		}
	}
}
