package network

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// BenchmarkSSEFanout delivers 100-byte payloads from one publisher to 1000
// Server-Sent Events streams on loopback, and, in the same run, to 1000
// WebSocket clients (as BenchmarkNetworkFanout does), so that the two
// deliveries/s figures sit side by side. One op is one published message;
// "window" is as in BenchmarkNetworkFanout.
//
//	go test -run '^$' -bench SSEFanout -benchtime 3s ./transport/network
func BenchmarkSSEFanout(b *testing.B) {
	const n = 1000
	for _, w := range []int{64, 1} {
		b.Run(fmt.Sprintf("clients=%d/window=%d", n, w), func(b *testing.B) {
			b.Run("websocket", func(b *testing.B) { benchPlaza(b, n, w, false) })
			b.Run("sse", func(b *testing.B) { benchSSE(b, n, w) })
		})
	}
}

func benchSSE(b *testing.B, n, window int) {
	hub, err := memory.New(memory.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	srv := NewServer(hub, Options{Authenticate: testAuthenticate})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer shutdown(b, srv)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}}
	defer client.CloseIdleConnections()
	r := newReceivers(n)
	defer r.close()
	for i := range n {
		resp, err := client.Get(fmt.Sprintf("%s/bench/pubsub/fan/subscribe?token=%sr%d", ts.URL, testTokenPrefix, i))
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("receiver %d: %v, %v", i, resp, err)
		}
		br := bufio.NewReaderSize(resp.Body, 64<<10)
		r.closers = append(r.closers, func() { resp.Body.Close() })
		r.run(i, func() ([]byte, error) {
			// One line at a time: each data line is one message.
			return br.ReadSlice('\n')
		})
	}
	waitFor(b, "the streams", func() bool { return srv.Stats().Streams == n })
	pub, err := hub.Connect(context.Background(), pubsub.ConnectRequest{Room: "bench", ClientID: "pub"})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()

	r.reset()
	encoded := srv.Stats().EncodedEvents
	runtime.GC()
	b.ResetTimer()
	start := time.Now()
	publishAll(b, r, n, window, func(p []byte) {
		if _, err := pub.Publish(context.Background(), pubsub.PublishRequest{Topic: "fan", Payload: p, NoPersist: true}); err != nil {
			b.Fatal(err)
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	r.report(b, elapsed, n)
	b.ReportMetric(float64(srv.Stats().EncodedEvents-encoded)/float64(b.N), "encodes/msg")
}
