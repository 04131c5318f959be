package memory

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/internal/snowid"
	"github.com/plazahq/plaza/pubsub"
)

// BenchmarkReopenKeys measures what a hub opened on a store that holds the
// idempotency keys of an earlier hub pays: New, which reads no keys, and
// the first keyed publish to a topic, which reads that topic's keys back
// (a walk back from its newest message over the window) into its
// deduplication window. The topic holds keys keyed messages of 100 bytes,
// all within the window, behind as many older ones. Each iteration opens a
// new hub and makes one publish that is kept out of history, so the store
// does not change.
func BenchmarkReopenKeys(b *testing.B) {
	for _, store := range []string{"memory", "bolt"} {
		for _, keys := range []int{0, 1000, DefaultDedupKeys} {
			b.Run(fmt.Sprintf("store=%s/keys=%d", store, keys), func(b *testing.B) {
				s, clock := reopenFixture(b, store, keys)
				ctx := context.Background()
				req := pubsub.PublishRequest{Topic: "chat", Payload: benchPayload, NoPersist: true, IdempotencyKey: "new"}
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					h, err := New(Options{Store: s, Clock: clock})
					if err != nil {
						b.Fatal(err)
					}
					c, err := h.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "alice"})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := c.Publish(ctx, req); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					h.Close()
					b.StartTimer()
				}
			})
		}
	}
}

// reopenFixture returns a store holding keys keyed messages of "chat" in
// the last minute, after as many from an hour before, and a clock at now.
func reopenFixture(b *testing.B, store string, keys int) (history.KeyStore, *fakeclock.Clock) {
	b.Helper()
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	opts := history.Options{MaxMessages: -1, MaxAge: -1}
	var s history.KeyStore
	var enqueue func(m pubsub.Message, key string) func(context.Context) error
	if store == "bolt" {
		bs, err := history.OpenBolt(filepath.Join(b.TempDir(), "history.db"), history.BoltOptions{Options: opts})
		if err != nil {
			b.Fatal(err)
		}
		s = bs
		enqueue = func(m pubsub.Message, key string) func(context.Context) error { return bs.Enqueue("lobby", m, key) }
	} else {
		ms := history.NewMemory(opts)
		s = ms
		enqueue = func(m pubsub.Message, key string) func(context.Context) error {
			err := ms.AppendKey(context.Background(), "lobby", m, key)
			return func(context.Context) error { return err }
		}
	}
	b.Cleanup(func() { s.Close() })
	ids, err := snowid.New(1)
	if err != nil {
		b.Fatal(err)
	}
	var wait func(context.Context) error
	for i := range 2 * keys {
		at := now.Add(-time.Hour)
		if i >= keys {
			at = now.Add(-time.Minute + time.Duration(i-keys)*time.Millisecond/2)
		}
		m := pubsub.Message{ID: ids.Next(at), Topic: "chat", From: "alice", Payload: benchPayload, Timestamp: at}
		wait = enqueue(m, fmt.Sprintf("c3f1a2b4d5e6f708:%x", i))
	}
	if wait != nil {
		if err := wait(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	return s, fakeclock.New(now)
}
