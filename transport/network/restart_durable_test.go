package network

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// TestHubRestartRetryNotDuplicated stops the server and its hub after the
// hub has stored a publish and before the reply reaches the Room, and
// starts a new hub on the same history file behind a new server on the
// same address. The Room's retry, with the same idempotency key, is
// confirmed with the first message, and history holds it once.
func TestHubRestartRetryNotDuplicated(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "history.db")
	openHub := func() (*memory.Hub, *history.Bolt) {
		t.Helper()
		store, err := history.OpenBolt(path, history.BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hub, err := memory.New(memory.Options{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			hub.Close()
			store.Close()
		})
		return hub, store
	}
	hub, store := openHub()
	gate := &replyGate{Transport: hub, payload: `{"n":5}`, held: make(chan pubsub.Message, 1), release: make(chan struct{})}
	opts := Options{Authenticate: testAuthenticate}
	var rs restartable
	srv := NewServer(gate, opts)
	rs.start(t, srv)
	client, err := NewClient("ws://"+rs.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	alice, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{
		Token:        testTokenPrefix + "alice",
		ReconnectMin: 5 * time.Millisecond,
		ReconnectMax: 50 * time.Millisecond,
		RetryDelay:   500 * time.Millisecond,
		OnError:      func(err error) { t.Logf("alice: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Leave(context.Background()) })

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

	// The server and the hub go down with the reply still unsent.
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
	close(gate.release)
	select {
	case err := <-shut:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown(done context) = %v, want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("Shutdown(done context) still running after %v", waitTimeout)
	}
	if err := hub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	hub, store = openHub()
	srv2 := NewServer(hub, opts)
	rs.start(t, srv2)
	t.Cleanup(func() {
		srv2.Shutdown(context.Background())
		rs.ts.Close()
	})

	var r result
	select {
	case r = <-res:
	case <-time.After(waitTimeout):
		t.Fatal("the retried Publish(5) did not return")
	}
	if r.err != nil {
		t.Fatalf("Publish(5) across the hub restart = %v, want success after a retry", r.err)
	}
	if r.m.ID != confirmed.ID {
		t.Errorf("retried Publish(5) confirmed %v, want the first confirmation %v", r.m.ID, confirmed.ID)
	}
	if n := alice.Stats().Retries; n == 0 {
		t.Error("alice made no retry; the test did not lose the reply")
	}
	page, err := alice.GetHistory(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].ID != confirmed.ID {
		var ids []pubsub.ID
		for _, m := range page.Messages {
			ids = append(ids, m.ID)
		}
		t.Errorf("history holds %v, want only %v", ids, confirmed.ID)
	}
	if s := hub.Stats(); s.Published != 0 || s.Deduplicated != 1 {
		t.Errorf("new hub Stats() = Published %d, Deduplicated %d; want 0, 1", s.Published, s.Deduplicated)
	}
}
