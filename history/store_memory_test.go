package history_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/history/historytest"
	"github.com/plazahq/plaza/pubsub"
)

func TestMemory(t *testing.T) {
	historytest.Run(t, func(t *testing.T, opts history.Options) history.Store {
		s := history.NewMemory(opts)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// benchMessages is the size of the benchmarks' big topic.
const benchMessages = 1_000_000

// benchMessage returns the i-th message of a benchmark topic: a 100-byte
// payload, ids and timestamps one millisecond apart.
func benchMessage(i int, payload []byte) pubsub.Message {
	return pubsub.Message{
		ID:        benchID(i),
		Topic:     "chat",
		From:      benchSenders[i%len(benchSenders)],
		Payload:   payload,
		Timestamp: benchStart.Add(time.Duration(i) * time.Millisecond),
	}
}

var (
	benchStart   = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	benchSenders = []string{"alice", "bob", "carol", "dave"}
)

func benchID(i int) pubsub.ID { return pubsub.ID(1_900_000_000_000_000_000 + int64(i)<<22) }

// benchPayload returns a 100-byte JSON payload.
func benchPayload() []byte {
	p := []byte(`{"text":"` + strings.Repeat("x", 89) + `"}`)
	if len(p) != 100 {
		panic(len(p))
	}
	return p
}

// benchOptions keeps everything the benchmarks append.
func benchOptions() history.Options {
	return history.Options{MaxMessages: -1, MaxAge: -1}
}

// benchBefore runs Before pages of 50 at anchors spread over the topic.
func benchBefore(b *testing.B, s history.Store) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	x := uint64(1)
	for b.Loop() {
		x = x*6364136223846793005 + 1442695040888963407
		anchor := benchID(50 + int(x>>33)%(benchMessages-50))
		page, err := s.Query(ctx, "room", history.Query{Topic: "chat", Before: anchor, Limit: 50})
		if err != nil || len(page.Messages) != 50 {
			b.Fatalf("Query(Before %d) = %d messages, %v", anchor, len(page.Messages), err)
		}
	}
}

func heapAlloc() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkHistoryPage measures a Before page of 50 on a topic of a million
// messages with 100-byte payloads, and what the store holds per message.
func BenchmarkHistoryPage(b *testing.B) {
	var mem *history.Memory
	var memBytes float64
	b.Run("store=memory", func(b *testing.B) {
		if mem == nil {
			ctx := context.Background()
			payload := benchPayload()
			before := heapAlloc()
			mem = history.NewMemory(benchOptions())
			for i := range benchMessages {
				if err := mem.Append(ctx, "room", benchMessage(i, payload)); err != nil {
					b.Fatal(err)
				}
			}
			memBytes = float64(heapAlloc()-before) / benchMessages
		}
		benchBefore(b, mem)
		b.ReportMetric(memBytes, "bytes/msg")
	})
	if mem != nil {
		mem.Close()
	}
}
