package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// benchPayload is about 100 bytes of encoded JSON, as in transport/memory.
var benchPayload = json.RawMessage(`{"text":"` + strings.Repeat("x", 80) + `","n":12345}`)

// latencies collects the durations of a benchmark's operations and
// reports their median and 99th percentile.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	b.ReportMetric(float64(l.d[len(l.d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(l.d[len(l.d)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkPublish measures Store.Publish, the cross-node publish path (one
// script: dedup, id, append, trim, SPUBLISH), against a redis-server of
// its own, beside the in-process hub's publish of the same message:
//
//	go test -run '^$' -bench Publish ./transport/redis
//
// "persist+key" is a publish as a Room sends it; "patterns" adds the room's
// pattern channel; "parallel" runs 64 publishers on 64 topics, where the
// client's auto-pipelining shares round trips.
func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	c := openOn(b, srv, Options{})
	ctx := context.Background()
	tests := []struct {
		name     string
		key      bool
		patterns bool
		parallel bool
	}{
		{"persist+key", true, false, false},
		{"persist", false, false, false},
		{"patterns", false, true, false},
		{"parallel", true, false, true},
	}
	for _, tt := range tests {
		b.Run("redis/"+tt.name, func(b *testing.B) {
			s := c.Store(StoreOptions{Patterns: tt.patterns})
			var lat latencies
			var seq atomic.Int64
			start := pubsub.ID(time.Now().UnixMilli()) << 22
			one := func(topic string, i int64) {
				m := pubsub.Message{ID: start + pubsub.ID(i), Topic: topic, From: "alice", Payload: benchPayload, Timestamp: time.Now(), Persisted: true}
				key := ""
				if tt.key {
					key = fmt.Sprint("k", i)
				}
				t0 := time.Now()
				if _, _, err := s.Publish(ctx, Publication{Room: "lobby", Message: m, Key: key}); err != nil {
					b.Error(err)
				}
				lat.add(time.Since(t0))
			}
			b.ResetTimer()
			if tt.parallel {
				b.SetParallelism(64 / max(1, testingProcs()))
				b.RunParallel(func(pb *testing.PB) {
					topic := fmt.Sprint("chat", seq.Add(1))
					for pb.Next() {
						one(topic, seq.Add(1))
					}
				})
			} else {
				for i := 0; i < b.N; i++ {
					one("chat", int64(i))
				}
			}
			b.StopTimer()
			lat.report(b)
		})
	}
	hubs := map[string]func(b *testing.B) *memory.Hub{
		"memory-hub/persist+key": func(b *testing.B) *memory.Hub {
			store := history.NewMemory(history.Options{MaxAge: -1})
			b.Cleanup(func() { store.Close() })
			h, err := memory.New(memory.Options{Store: store})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { h.Close() })
			return h
		},
		// A hub whose Broker is Redis: the publish a Room makes on a node.
		"broker-hub/persist+key": func(b *testing.B) *memory.Hub {
			h, _ := newNode(b, srv, nodeOpts{})
			return h
		},
	}
	for _, name := range []string{"memory-hub/persist+key", "broker-hub/persist+key"} {
		b.Run(name, func(b *testing.B) { benchHubPublish(b, hubs[name](b)) })
	}
}

// benchHubPublish measures keyed publishes of one client on h.
func benchHubPublish(b *testing.B, h *memory.Hub) {
	ctx := context.Background()
	conn, err := h.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "alice"})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var lat latencies
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := conn.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: benchPayload, IdempotencyKey: fmt.Sprint("k", i)}); err != nil {
			b.Fatal(err)
		}
		lat.add(time.Since(t0))
	}
	b.StopTimer()
	lat.report(b)
}

// BenchmarkCrossNodeFanout publishes to 1000 subscribers spread evenly
// over 1, 2 and 3 hubs on one Redis (in this process; Redis in its own),
// from a publisher on the first hub, one message at a time until every
// subscriber has it. It reports deliveries/s, the CPU time of this
// process (every hub) per delivery, and the p50/p99 time from Publish to
// each delivery:
//
//	go test -run '^$' -bench CrossNodeFanout ./transport/redis
func BenchmarkCrossNodeFanout(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	const subscribers = 1000
	for _, nodes := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			hubs := newNodes(b, srv, nodes, nodeOpts{})
			ctx := context.Background()
			var got atomic.Int64
			var sent atomic.Int64 // Unix nanoseconds of the publish in flight
			all := make(chan struct{}, 1)
			var lat latencies
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for i := range subscribers {
				c := connect(b, hubs[i%nodes], "lobby", fmt.Sprint("sub", i))
				if err := c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-c.Messages():
							if i%10 == 0 { // a sample keeps the collection cheap
								lat.add(time.Duration(time.Now().UnixNano() - sent.Load()))
							}
							if got.Add(1)%subscribers == 0 {
								all <- struct{}{}
							}
						case <-stop:
							return
						}
					}
				}()
			}
			defer func() { close(stop); wg.Wait() }()
			pub := connect(b, hubs[0], "lobby", "alice")
			req := pubsub.PublishRequest{Topic: "chat", Payload: benchPayload}
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sent.Store(time.Now().UnixNano())
				if _, err := pub.Publish(ctx, req); err != nil {
					b.Fatal(err)
				}
				select {
				case <-all:
				case <-time.After(waitTimeout):
					b.Fatalf("message %d: %d of %d deliveries after %v", i, got.Load()%subscribers, subscribers, waitTimeout)
				}
			}
			b.StopTimer()
			deliveries := float64(b.N) * subscribers
			b.ReportMetric(deliveries/b.Elapsed().Seconds(), "deliveries/s")
			b.ReportMetric(float64(cpuTime()-cpu0)/deliveries, "cpu-ns/delivery")
			lat.report(b)
		})
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublishToDelivery measures the time from Store.Publish to a
// Subscriber's OnMessage on another Client (another node), for a topic
// subscription and for a pattern subscription (which needs the Store's
// Patterns and reads the room's classic channel):
//
//	go test -run '^$' -bench PublishToDelivery ./transport/redis
func BenchmarkPublishToDelivery(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	pub, rcv := openOn(b, srv, Options{}), openOn(b, srv, Options{})
	for _, pattern := range []bool{false, true} {
		name := "topic"
		if pattern {
			name = "pattern"
		}
		b.Run(name, func(b *testing.B) {
			s := pub.Store(StoreOptions{Patterns: pattern})
			got := make(chan time.Time, 1)
			sub := rcv.Subscriber(SubscriberOptions{OnMessage: func(Delivery) { got <- time.Now() }})
			defer sub.Close()
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			var err error
			if pattern {
				err = sub.SubscribePattern(ctx, "lobby", "chat*")
			} else {
				err = sub.Subscribe(ctx, "lobby", "chat")
			}
			if err != nil {
				b.Fatal(err)
			}
			var lat latencies
			start := pubsub.ID(time.Now().UnixMilli()) << 22
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := pubsub.Message{ID: start + pubsub.ID(i), Topic: "chat", From: "alice", Payload: benchPayload, Timestamp: time.Now(), Persisted: true}
				t0 := time.Now()
				if _, _, err := s.Publish(ctx, Publication{Room: "lobby", Message: m}); err != nil {
					b.Fatal(err)
				}
				select {
				case t1 := <-got:
					lat.add(t1.Sub(t0))
				case <-ctx.Done():
					b.Fatalf("message %d not delivered: %v", i, ctx.Err())
				}
			}
			b.StopTimer()
			lat.report(b)
		})
	}
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }
