package history_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
)

// benchMessages is the size of the benchmarks' big topic.
const benchMessages = 1_000_000

var (
	benchStart   = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	benchSenders = []string{"alice", "bob", "carol", "dave"}
)

// benchMessage returns the i-th message of a benchmark topic: a 100-byte
// payload, ids and timestamps a millisecond apart.
func benchMessage(i int, payload []byte) pubsub.Message {
	return pubsub.Message{
		ID:        benchID(i),
		Topic:     "chat",
		From:      benchSenders[i%len(benchSenders)],
		Payload:   payload,
		Timestamp: benchStart.Add(time.Duration(i) * time.Millisecond),
	}
}

// benchID is the snowflake of a hub that publishes message i at benchStart
// plus i milliseconds.
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

// BenchmarkHistoryPage measures a Before page of 50 at anchors spread over a
// topic of a million messages with 100-byte payloads. bytes/msg is what the
// store holds per message: the growth of the live heap for the memory store,
// the file size for bolt. Each store's fixture is built once, on first use.
func BenchmarkHistoryPage(b *testing.B) {
	var mem *history.Memory
	var memPerMsg float64
	b.Run("store=memory", func(b *testing.B) {
		if mem == nil {
			mem, memPerMsg = memoryFixture(b)
		}
		benchBefore(b, mem)
		b.ReportMetric(memPerMsg, "bytes/msg")
	})
	if mem != nil {
		mem.Close()
	}

	var bolt *history.Bolt
	var boltPerMsg float64
	dir := b.TempDir()
	b.Run("store=bolt", func(b *testing.B) {
		if bolt == nil {
			bolt, boltPerMsg = boltFixture(b, filepath.Join(dir, "history.db"))
		}
		benchBefore(b, bolt)
		b.ReportMetric(boltPerMsg, "bytes/msg")
	})
	if bolt != nil {
		bolt.Close()
	}
}

func memoryFixture(b *testing.B) (*history.Memory, float64) {
	ctx := context.Background()
	payload := benchPayload()
	before := heapAlloc()
	s := history.NewMemory(benchOptions())
	for i := range benchMessages {
		// Each message owns its payload, as the ones a hub appends do, so
		// bytes/msg counts the payload too.
		if err := s.Append(ctx, "room", benchMessage(i, bytes.Clone(payload))); err != nil {
			b.Fatal(err)
		}
	}
	return s, float64(heapAlloc()-before) / benchMessages
}

// boltFixture fills a file in transactions of 100,000 messages, bypassing
// the committer: that takes seconds, where a million fsynced appends would
// take minutes.
func boltFixture(b *testing.B, path string) (*history.Bolt, float64) {
	s, err := history.OpenBolt(path, history.BoltOptions{Options: benchOptions()})
	if err != nil {
		b.Fatal(err)
	}
	payload := benchPayload()
	const batch = 100_000
	msgs := make([]pubsub.Message, batch)
	for i := 0; i < benchMessages; i += batch {
		for j := range msgs {
			msgs[j] = benchMessage(i+j, payload)
		}
		if err := s.BulkAppend("room", msgs); err != nil {
			s.Close()
			b.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		s.Close()
		b.Fatal(err)
	}
	return s, float64(fi.Size()) / benchMessages
}

// benchBefore runs Before pages of 50 at anchors spread over the fixture.
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

// BenchmarkAppend measures Append throughput with 1, 16 and 256 goroutines
// appending at once, either all to one topic or each to a topic of its own.
// For the bolt store every Append waits for its fsync; concurrent appends
// share them.
func BenchmarkAppend(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) history.Store
	}{
		{"memory", func(b *testing.B) history.Store { return history.NewMemory(history.Options{}) }},
		{"bolt", func(b *testing.B) history.Store {
			s, err := history.OpenBolt(filepath.Join(b.TempDir(), "history.db"), history.BoltOptions{})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	for _, st := range stores {
		for _, appenders := range []int{1, 16, 256} {
			topicCounts := []int{1}
			if appenders > 1 {
				topicCounts = append(topicCounts, appenders)
			}
			for _, topics := range topicCounts {
				name := fmt.Sprintf("store=%s/appenders=%d/topics=%d", st.name, appenders, topics)
				b.Run(name, func(b *testing.B) {
					s := st.open(b)
					defer s.Close()
					benchAppend(b, s, appenders, topics)
				})
			}
		}
	}
}

func benchAppend(b *testing.B, s history.Store, appenders, topics int) {
	ctx := context.Background()
	payload := benchPayload()
	var nextID, left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for w := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("topic%d", w%topics)
			for left.Add(-1) >= 0 {
				m := benchMessage(int(nextID.Add(1)), payload)
				m.Topic = topic
				m.Timestamp = time.Now()
				if err := s.Append(ctx, "room", m); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
