package memory

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
)

// stepClock is a Clock that moves forward by step on every Now, so that a
// benchmark sees idempotency keys expire at a steady rate without sleeping.
type stepClock struct {
	base time.Time
	step time.Duration
	n    atomic.Int64
}

func (c *stepClock) Now() time.Time {
	return c.base.Add(time.Duration(c.n.Add(1)) * c.step)
}

func (c *stepClock) AfterFunc(d time.Duration, f func()) pubsub.Timer {
	return time.AfterFunc(d, f)
}

var (
	benchKeysOnce sync.Once
	benchKeys     []string
)

// keys returns 1<<18 idempotency keys shaped like the Room's: a per-Room
// prefix and a base-36 sequence number.
func keys() []string {
	benchKeysOnce.Do(func() {
		benchKeys = make([]string, 1<<18)
		for i := range benchKeys {
			benchKeys[i] = "c3f1a2b4d5e6f708-" + strconv.FormatUint(uint64(i+1), 36)
		}
	})
	return benchKeys
}

// benchPayload is about 100 bytes of encoded JSON.
var benchPayload = []byte(`{"text":"` + strings.Repeat("x", 80) + `","n":12345}`)

// BenchmarkPublish measures the publish path with no subscribers: checks,
// idempotency bookkeeping, id, history append and a fan-out to nobody. The
// store is history.NewMemory at its default of 100k messages a topic, so
// that it runs in a steady state whatever b.N. The first case is a publish as
// the Room sends it, persisted and with an idempotency key; the others take
// the key or the store away to show what each costs.
//
// The clock moves 1ms per call to Now, so under the default 2 minute window
// the idempotency map holds about 120k keys, as for a topic at a steady 1000
// publishes a second; keys come round again (after 262k publishes) only
// once they have expired.
func BenchmarkPublish(b *testing.B) {
	tests := []struct {
		name      string
		key       bool
		noPersist bool
	}{
		{"persist+key", true, false},
		{"persist", false, false},
		{"key", true, true},
		{"bare", false, true},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			store := history.NewMemory(history.Options{MaxMessages: history.DefaultMaxMessages, MaxAge: -1})
			defer store.Close()
			h, err := New(Options{Store: store, Clock: &stepClock{base: time.Now(), step: time.Millisecond}})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			c := connect(b, h, "lobby", "alice")
			ks := keys()
			ctx := context.Background()
			req := pubsub.PublishRequest{Topic: "chat", Payload: benchPayload, NoPersist: tt.noPersist}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if tt.key {
					req.IdempotencyKey = ks[i&(len(ks)-1)]
				}
				if _, err := c.Publish(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if s := h.Stats(); s.Published != uint64(b.N) {
				b.Fatalf("Published = %d, want %d (Deduplicated %d)", s.Published, b.N, s.Deduplicated)
			}
		})
	}
}

// BenchmarkHubFanout measures deliveries per second from one publisher to n
// subscriber conns, each drained by its own goroutine, beside the same
// fan-out over plain buffered channels. The clock stops when every
// subscriber has received every message. Queues hold b.N messages, so no
// subscriber is dropped; the benchmark fails if one is.
//
// "hub" subscribers hold an exact subscription to the topic; "pattern"
// subscribers hold two patterns each, one that does not match the topic
// and one that does, so every delivery costs a failed and a successful
// match.
//
//	go test -run '^$' -bench HubFanout ./transport/memory
func BenchmarkHubFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("hub/subs=%d", n), func(b *testing.B) { benchHubFanout(b, n, "chat", "chat") })
		b.Run(fmt.Sprintf("pattern/subs=%d", n), func(b *testing.B) {
			benchHubFanout(b, n, "user:123:events", "order:*", "user:*:events")
		})
		b.Run(fmt.Sprintf("channels/subs=%d", n), func(b *testing.B) { benchChanFanout(b, n) })
	}
}

// benchHubFanout publishes to topic; every subscriber subscribes to subs.
func benchHubFanout(b *testing.B, n int, topic string, subs ...string) {
	h, err := New(Options{QueueBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	pub := connect(b, h, "lobby", "pub")
	chans := make([]<-chan *pubsub.Message, n)
	for i := range chans {
		c := connect(b, h, "lobby", fmt.Sprint("sub", i))
		for _, s := range subs {
			subscribe(b, c, s, 0)
		}
		chans[i] = c.Messages()
	}
	ctx := context.Background()
	req := pubsub.PublishRequest{Topic: topic, Payload: benchPayload, NoPersist: true}
	got := receiveAll(b, chans, func() {
		for i := 0; i < b.N; i++ {
			if _, err := pub.Publish(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	if s := h.Stats(); s.SlowConsumers != 0 {
		b.Fatalf("%d subscribers dropped as slow", s.SlowConsumers)
	}
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "deliveries/s")
}

func benchChanFanout(b *testing.B, n int) {
	chans := make([]chan *pubsub.Message, n)
	subs := make([]<-chan *pubsub.Message, n)
	for i := range chans {
		chans[i] = make(chan *pubsub.Message, max(b.N, 1))
		subs[i] = chans[i]
	}
	dropped := 0
	got := receiveAll(b, subs, func() {
		for i := 0; i < b.N; i++ {
			m := &pubsub.Message{Topic: "chat", From: "pub", Payload: benchPayload}
			for _, ch := range chans {
				select {
				case ch <- m:
				default:
					dropped++
				}
			}
		}
	})
	if dropped != 0 {
		b.Fatalf("%d sends dropped", dropped)
	}
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "deliveries/s")
}

// receiveAll starts one goroutine per channel that receives b.N messages, runs
// publish with the timer on, waits for every goroutine, and returns how many
// messages they received together.
func receiveAll(b *testing.B, subs []<-chan *pubsub.Message, publish func()) int64 {
	var total atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, ch := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stuck := time.NewTimer(time.Minute)
			defer stuck.Stop()
			n := 0
			for ; n < b.N; n++ {
				select {
				case <-ch:
				case <-stuck.C:
					b.Errorf("subscriber received %d of %d messages", n, b.N)
					total.Add(int64(n))
					return
				}
			}
			total.Add(int64(n))
		}()
	}
	b.ReportAllocs()
	b.ResetTimer()
	close(start)
	publish()
	wg.Wait()
	b.StopTimer()
	return total.Load()
}
