package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/network"
)

// BenchmarkObservedFanout measures what the metrics wrappers cost a
// publish: one publisher, no subscribers (the wrapper's cost alone) or 100,
// each drained by its own goroutine, on the hub itself ("bare") and through observedTransport
// ("observed"), which times and counts every publish. Compare the two as a
// ratio of the same run:
//
//	go test -run '^$' -bench ObservedFanout -count 10 ./examples/server
func BenchmarkObservedFanout(b *testing.B) {
	for _, subs := range []int{0, 100} {
		for _, observed := range []bool{false, true} {
			name := "bare"
			if observed {
				name = "observed"
			}
			b.Run(fmt.Sprintf("%s/subs=%d", name, subs), func(b *testing.B) { benchObservedFanout(b, observed, subs) })
		}
	}
}

func benchObservedFanout(b *testing.B, observed bool, subs int) {
	hub, err := memory.New(memory.Options{QueueBytes: max(b.N, 1) << 10}) // room for every message of the run
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	var t pubsub.Transport = hub
	if observed {
		t = observedTransport{Transport: hub, m: newServerMetrics()}
	}
	ctx := context.Background()
	connect := func(id string) pubsub.Conn {
		c, err := t.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: id})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	pub := connect("pub")
	var wg sync.WaitGroup
	for i := range subs {
		c := connect(fmt.Sprint("sub", i))
		if err := c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range b.N {
				select {
				case <-c.Messages():
				case <-c.Done():
					b.Error("a subscriber was dropped")
					return
				}
			}
		}()
	}
	req := pubsub.PublishRequest{Topic: "chat", Payload: []byte(`{"text":"hello"}`), NoPersist: true}
	b.ResetTimer()
	for range b.N {
		if _, err := pub.Publish(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	if subs > 0 {
		b.ReportMetric(float64(b.N*subs)/b.Elapsed().Seconds(), "deliveries/s")
	}
}

// BenchmarkObservedNetworkFanout is the same comparison over the network
// server, the path the wrappers sit on in the program: one Room publishes
// over a WebSocket, 10 Rooms receive over theirs, and the clock stops when
// all have received every message.
//
//	go test -run '^$' -bench ObservedNetworkFanout ./examples/server
func BenchmarkObservedNetworkFanout(b *testing.B) {
	for _, observed := range []bool{false, true} {
		name := "bare"
		if observed {
			name = "observed"
		}
		b.Run(name+"/subs=10", func(b *testing.B) { benchObservedNetworkFanout(b, observed, 10) })
	}
}

func benchObservedNetworkFanout(b *testing.B, observed bool, subs int) {
	hub, err := memory.New(memory.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	var t pubsub.Transport = hub
	opts := network.Options{QueueBytes: max(b.N, 1) << 10} // room for every message of the run
	if observed {
		m := newServerMetrics()
		t = observedTransport{Transport: hub, m: m}
		opts.OnConnEvent = m.connEvent
	}
	srv := network.NewServer(t, opts)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Shutdown(context.Background())
	client, err := network.NewClient(ts.URL, &network.DialOptions{QueueBytes: max(b.N, 1) << 10})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	join := func() *pubsub.Room {
		r, err := pubsub.Join(ctx, client, "lobby", nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Leave(ctx) })
		return r
	}
	pub := join()
	var wg sync.WaitGroup
	for range subs {
		r := join()
		var n atomic.Int64
		wg.Add(1)
		if _, err := r.Subscribe(ctx, "chat", func(pubsub.Message) {
			if n.Add(1) == int64(b.N) {
				wg.Done()
			}
		}); err != nil {
			b.Fatal(err)
		}
	}
	payload := json.RawMessage(`{"text":"hello"}`)
	b.ResetTimer()
	for range b.N {
		if _, err := pub.Publish(ctx, "chat", payload, pubsub.Persist(false)); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.ReportMetric(float64(b.N*subs)/b.Elapsed().Seconds(), "deliveries/s")
}
