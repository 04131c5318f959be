package network

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// BenchmarkNetworkFanout delivers 100-byte payloads from one publisher to N
// WebSocket clients on loopback, each subscribed to the topic, and reports
// deliveries per second and end-to-end latency. "plaza" runs a memory hub
// behind a Server, its clients on GET /{room}/ws, where messages come in
// batches; "plaza-topic" the same on single-topic sockets, where each
// message is a WebSocket message of its own; "baseline" writes the same pre-encoded message to N raw
// coder/websocket connections, flushing each connection's queued messages
// together in one write. One op is one published message.
//
// The publisher keeps at most "window" messages undelivered: with 64 the
// receivers are saturated and the figures are throughput and latency under
// full load; with 1 each message is fanned out alone, and the latency is
// that of an idle server.
//
//	go test -run '^$' -bench NetworkFanout -benchtime 3s ./transport/network
func BenchmarkNetworkFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		for _, w := range []int{64, 1} {
			b.Run(fmt.Sprintf("clients=%d/window=%d", n, w), func(b *testing.B) {
				b.Run("plaza", func(b *testing.B) { benchPlaza(b, n, w, false) })
				b.Run("plaza-topic", func(b *testing.B) { benchPlaza(b, n, w, true) })
				b.Run("baseline", func(b *testing.B) { benchBaseline(b, n, w) })
			})
		}
	}
}

// receivers are N raw WebSocket clients that count deliveries and record
// each message's latency from the timestamp in its payload.
type receivers struct {
	delivered atomic.Int64
	poke      chan struct{} // signalled after every frame
	lat       [][]int32     // per receiver, microseconds
	wg        sync.WaitGroup
	closers   []func()
}

func newReceivers(n int) *receivers {
	return &receivers{poke: make(chan struct{}, 1), lat: make([][]int32, n)}
}

// start reads from ws as receiver i until it closes.
func (r *receivers) start(i int, ws *websocket.Conn) {
	ws.SetReadLimit(1 << 24)
	r.closers = append(r.closers, func() { ws.CloseNow() })
	r.run(i, func() ([]byte, error) {
		_, data, err := ws.Read(context.Background())
		return data, err
	})
}

// run reads chunks with read as receiver i until it fails; every message in
// a chunk carries its send time after "t":.
func (r *receivers) run(i int, read func() ([]byte, error)) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		mark := []byte(`"t":`)
		for {
			data, err := read()
			if err != nil {
				return
			}
			now := time.Now().UnixNano()
			k := 0
			for {
				j := bytes.Index(data, mark)
				if j < 0 {
					break
				}
				data = data[j+len(mark):]
				end := bytes.IndexByte(data, ',')
				sent, _ := strconv.ParseInt(string(data[:end]), 10, 64)
				r.lat[i] = append(r.lat[i], int32((now-sent)/1e3))
				k++
			}
			if k > 0 {
				r.delivered.Add(int64(k))
				select {
				case r.poke <- struct{}{}:
				default:
				}
			}
		}
	}()
}

// waitDelivered waits until n deliveries have been counted.
func (r *receivers) waitDelivered(b *testing.B, n int64) {
	deadline := time.After(time.Minute)
	for r.delivered.Load() < n {
		select {
		case <-r.poke:
		case <-deadline:
			b.Fatalf("delivered %d of %d", r.delivered.Load(), n)
		}
	}
}

// reset clears the counts between runs; no message may be in flight.
func (r *receivers) reset() {
	r.delivered.Store(0)
	for i := range r.lat {
		r.lat[i] = r.lat[i][:0]
	}
}

// report adds the run's figures to b.
func (r *receivers) report(b *testing.B, elapsed time.Duration, n int) {
	var all []int32
	for _, l := range r.lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) }
	b.ReportMetric(float64(b.N)*float64(n)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

func (r *receivers) close() {
	for _, c := range r.closers {
		c()
	}
	r.wg.Wait()
}

// benchPayload is a 100-byte JSON payload carrying its send time.
func benchPayload(sent time.Time) []byte {
	p := fmt.Appendf(nil, `{"t":%d,"pad":"`, sent.UnixNano())
	p = append(p, strings.Repeat("x", 100-len(p)-2)...)
	return append(p, `"}`...)
}

// publishAll publishes b.N messages with publish, keeping at most window of
// them undelivered.
func publishAll(b *testing.B, r *receivers, n, window int, publish func(payload []byte)) {
	for i := range b.N {
		if i >= window {
			r.waitDelivered(b, int64(i-window+1)*int64(n))
		}
		publish(benchPayload(time.Now()))
	}
	r.waitDelivered(b, int64(b.N)*int64(n))
}

// benchPlaza runs the "plaza" benchmarks; with topicSocket the receivers
// are single-topic sockets.
func benchPlaza(b *testing.B, n, window int, topicSocket bool) {
	hub, err := memory.New(memory.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	srv := NewServer(hub, Options{Authenticate: testAuthenticate, MaxFrameRate: -1})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer shutdown(b, srv)

	r := newReceivers(n)
	defer r.close()
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/bench/ws"
	if topicSocket {
		url = "ws" + strings.TrimPrefix(ts.URL, "http") + "/bench/pubsub/fan/ws"
	}
	ctx := context.Background()
	for i := range n {
		ws, _, err := websocket.Dial(ctx, url, bearer(fmt.Sprint("r", i)))
		if err != nil {
			b.Fatal(err)
		}
		if !topicSocket {
			ws.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","id":"1","topic":"fan"}`))
		}
		for _, want := range []string{typeWelcome, typeSubscribed} {
			if _, data, err := ws.Read(ctx); err != nil || !bytes.Contains(data, []byte(`"type":"`+want+`"`)) {
				b.Fatalf("receiver %d: %s, %v; want %s", i, data, err, want)
			}
		}
		r.start(i, ws)
	}
	pub, err := hub.Connect(ctx, pubsub.ConnectRequest{Room: "bench", ClientID: "pub"})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()

	r.reset()
	encoded := srv.Stats().Encoded
	runtime.GC()
	b.ResetTimer()
	start := time.Now()
	publishAll(b, r, n, window, func(p []byte) {
		if _, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "fan", Payload: p, NoPersist: true}); err != nil {
			b.Fatal(err)
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	r.report(b, elapsed, n)
	b.ReportMetric(float64(srv.Stats().Encoded-encoded)/float64(b.N), "encodes/msg")
}

// baselineConn is a raw connection with a queue of encoded messages.
type baselineConn struct {
	ws *websocket.Conn
	q  chan []byte
}

func benchBaseline(b *testing.B, n, window int) {
	var (
		mu    sync.Mutex
		conns []*baselineConn
		wg    sync.WaitGroup
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c := &baselineConn{ws: ws, q: make(chan []byte, 4096)}
		ctx := ws.CloseRead(context.Background())
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		wg.Add(1)
		go func() { // the writer: everything queued goes out in one write
			defer wg.Done()
			var buf []byte
			for {
				select {
				case m := <-c.q:
					buf = append(buf[:0], m...)
				drain:
					for {
						select {
						case m := <-c.q:
							buf = append(buf, '\n')
							buf = append(buf, m...)
						default:
							break drain
						}
					}
					if ws.Write(ctx, websocket.MessageText, buf) != nil {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}))
	defer ts.Close()

	r := newReceivers(n)
	url := "ws" + strings.TrimPrefix(ts.URL, "http")
	ctx := context.Background()
	for i := range n {
		ws, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			b.Fatal(err)
		}
		r.start(i, ws)
	}
	waitFor(b, "the baseline connections", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(conns) == n
	})

	r.reset()
	b.ResetTimer()
	start := time.Now()
	var id pubsub.ID
	publishAll(b, r, n, window, func(p []byte) {
		id++
		m := pubsub.Message{ID: id, Topic: "fan", From: "pub", Payload: p, Timestamp: time.Now()}
		enc := appendMessage(nil, &m) // encoded once, written to every connection
		for _, c := range conns {
			c.q <- enc
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	r.report(b, elapsed, n)
	r.close()
	wg.Wait()
}
