package pubsub_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// payload100 is a 100-byte JSON payload.
var payload100 = json.RawMessage(`{"text":"` + strings.Repeat("x", 89) + `"}`)

// window bounds how far the publisher may run ahead of the slowest
// subscriber, so that no queue overflows (the hub would drop the connection).
const window = 256

// BenchmarkFanout publishes from one Room to N subscriber Rooms on the
// in-process hub, and, as a baseline in the same run, fans the same message
// pointer out over N plain buffered channels, each drained by a goroutine.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run("rooms/N="+strconv.Itoa(n), func(b *testing.B) { benchRooms(b, n) })
		b.Run("channels/N="+strconv.Itoa(n), func(b *testing.B) { benchChannels(b, n) })
	}
}

func benchRooms(b *testing.B, n int) {
	ctx := context.Background()
	hub, err := memory.New(memory.Options{Store: history.NewMemory(history.Options{MaxMessages: 1000})})
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	pub, err := pubsub.Join(ctx, hub, "bench", &pubsub.JoinOptions{ClientID: "pub"})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Leave(ctx)

	counts := make([]atomic.Int64, n)
	var total atomic.Int64
	done := make(chan struct{})
	want := int64(b.N) * int64(n)
	rooms := make([]*pubsub.Room, n)
	for i := range rooms {
		r, err := pubsub.Join(ctx, hub, "bench", &pubsub.JoinOptions{ClientID: "sub" + strconv.Itoa(i)})
		if err != nil {
			b.Fatal(err)
		}
		rooms[i] = r
		c := &counts[i]
		if _, err := r.Subscribe(ctx, "fanout", func(pubsub.Message) {
			c.Add(1)
			if total.Add(1) == want {
				close(done)
			}
		}); err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		for _, r := range rooms {
			r.Leave(ctx)
		}
	}()

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if i%32 == 0 {
			for k := range counts {
				for stuck := time.Now().Add(waitTimeout); int64(i)-counts[k].Load() > window; {
					if time.Now().After(stuck) {
						b.Fatalf("subscriber %d received %d of %d messages, then nothing for %v", k, counts[k].Load(), i, waitTimeout)
					}
					time.Sleep(10 * time.Microsecond)
				}
			}
		}
		if _, err := pub.Publish(ctx, "fanout", payload100, pubsub.Persist(false)); err != nil {
			b.Fatal(err)
		}
	}
	recv(b, done, "every delivery")
	elapsed := time.Since(start)
	b.StopTimer()
	if s := hub.Stats().SlowConsumers; s != 0 {
		b.Fatalf("%d slow consumers: the benchmark lost deliveries", s)
	}
	b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
}

func benchChannels(b *testing.B, n int) {
	m := &pubsub.Message{Topic: "fanout", From: "pub", Payload: payload100}
	chans := make([]chan *pubsub.Message, n)
	var total atomic.Int64
	want := int64(b.N) * int64(n)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range chans {
		chans[i] = make(chan *pubsub.Message, 1024)
		wg.Add(1)
		go func(ch chan *pubsub.Message) {
			defer wg.Done()
			for range ch {
				if total.Add(1) == want {
					close(done)
				}
			}
		}(chans[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for _, ch := range chans {
			ch <- m
		}
	}
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	for _, ch := range chans {
		close(ch)
	}
	wg.Wait()
	b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
}

// BenchmarkPublish measures Room.Publish with no subscribers, persisted to
// the in-memory history.
func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	hub, err := memory.New(memory.Options{}) // default retention: a steady state, whatever b.N
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	r, err := pubsub.Join(ctx, hub, "bench", &pubsub.JoinOptions{ClientID: "pub"})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Leave(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := r.Publish(ctx, "chat", payload100); err != nil {
			b.Fatal(err)
		}
	}
}
