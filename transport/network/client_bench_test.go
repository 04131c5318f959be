package network

import (
	"context"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
)

// benchFrameMessages is how many messages a frame of the receive benchmarks
// holds: what the Server packs into one frame when a burst is waiting.
const benchFrameMessages = 64

// benchMessagesFrame returns a messages frame of n 100-byte payloads on topic
// "fan" from "publisher", encoded as the Server encodes it, with ids from
// first on.
func benchMessagesFrame(first pubsub.ID, n int) []byte {
	b := []byte(messagesHead)
	ts := time.Date(2026, 3, 15, 12, 0, 0, 123456789, time.UTC)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		m := pubsub.Message{ID: first + pubsub.ID(i), Topic: "fan", From: "publisher",
			Payload: benchPayload(ts), Timestamp: ts, Persisted: true}
		b = appendMessage(b, &m)
	}
	return append(b, messagesTail...)
}

// captureTransport is a Client that remembers the last Conn it opened.
type captureTransport struct {
	*Client
	conn atomic.Pointer[clientConn]
}

func (c *captureTransport) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	conn, err := c.Client.Connect(ctx, req)
	if err == nil {
		c.conn.Store(conn.(*clientConn))
	}
	return conn, err
}

// benchReceiver is a Room on a Client, subscribed to "fan", whose handler
// counts deliveries.
type benchReceiver struct {
	room      *pubsub.Room
	cc        *clientConn
	delivered atomic.Int64
	poke      chan struct{} // signalled after the last message of every frame
	deadline  *time.Timer
}

// newBenchReceiver joins a Room through a Client of the scripted server srv.
func newBenchReceiver(b *testing.B, srv *scriptedServer, opts *DialOptions) *benchReceiver {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	client, err := NewClient(srv.ts.URL, opts)
	if err != nil {
		b.Fatal(err)
	}
	t := &captureTransport{Client: client}
	room, err := pubsub.Join(ctx, t, "bench", &pubsub.JoinOptions{Token: "bench"}) // a token: no auth frame
	if err != nil {
		b.Fatalf("Join() = %v", err)
	}
	r := &benchReceiver{room: room, cc: t.conn.Load(), poke: make(chan struct{}, 1)}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = room.Leave(ctx)
	})
	var sink int
	if _, err := room.Subscribe(ctx, "fan", func(m pubsub.Message) {
		sink += len(m.Payload) // the handler reads the payload, as any would
		if r.delivered.Add(1)%benchFrameMessages == 0 {
			select {
			case r.poke <- struct{}{}:
			default:
			}
		}
	}); err != nil {
		b.Fatalf("Subscribe() = %v", err)
	}
	return r
}

// waitDelivered waits until the handler has counted n messages.
func (r *benchReceiver) waitDelivered(b *testing.B, n int64) {
	if r.deadline == nil {
		r.deadline = time.NewTimer(waitTimeout)
	}
	r.deadline.Reset(waitTimeout) // one timer for every wait: no allocation counted against the client
	for r.delivered.Load() < n {
		select {
		case <-r.poke:
		case <-r.deadline.C:
			b.Fatalf("the handler got %d of %d messages within %v; Conn.Err = %v", r.delivered.Load(), n, waitTimeout, r.cc.Err())
		}
	}
}

// processCPU is the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs b.N frames of benchFrameMessages through send and reports
// per message: wall ns, the process's CPU ns and its allocations.
func measure(b *testing.B, r *benchReceiver, send func(i int)) {
	const window = 8 // frames in flight: the queue holds them easily
	msgs := int64(b.N) * benchFrameMessages
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := processCPU()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if i >= window {
			r.waitDelivered(b, int64(i-window+1)*benchFrameMessages)
		}
		send(i)
	}
	r.waitDelivered(b, msgs)
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := processCPU() - cpu0
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(msgs), "ns/msg")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(msgs), "cpu-ns/msg")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(msgs), "allocs/msg")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(msgs), "B/msg")
}

// BenchmarkClientReceive measures the Go client's receive path for messages
// frames of 64 messages with 100-byte payloads, up to a Room handler that
// reads each payload. One op is one frame; ns/msg, cpu-ns/msg (the whole
// process's CPU time, user and system) and allocs/msg are per message.
//
// "decode+dispatch" hands the frame's bytes to the Conn as its reader would
// once a WebSocket message is read: decoding, the delivery queue, the
// Room's goroutine and the handler. "websocket" sends the same frame from a
// server on loopback, so the WebSocket read is included, and so is the
// server's write.
//
//	go test -run '^$' -bench ClientReceive -benchtime 2000x ./transport/network
func BenchmarkClientReceive(b *testing.B) {
	frame := benchMessagesFrame(1<<40, benchFrameMessages)
	subscribed := func(c *scriptedConn) {
		c.answer(typeSubscribe, `{"v":1,"type":"subscribed","id":"","topic":"fan"}`)
	}
	b.Run("decode+dispatch", func(b *testing.B) {
		srv := newScriptedServer(b, func(c *scriptedConn) {
			subscribed(c)
			c.wait()
		})
		r := newBenchReceiver(b, srv, nil)
		measure(b, r, func(int) {
			if !r.cc.handle(frame) {
				b.Fatalf("the Conn ended: %v", r.cc.Err())
			}
		})
	})
	b.Run("websocket", func(b *testing.B) {
		frames := make(chan int, 16)
		srv := newScriptedServer(b, func(c *scriptedConn) {
			subscribed(c)
			for range frames {
				if err := c.ws.Write(context.Background(), websocket.MessageText, frame); err != nil {
					return
				}
			}
		})
		b.Cleanup(func() { close(frames) })
		r := newBenchReceiver(b, srv, nil)
		measure(b, r, func(i int) { frames <- i })
	})
}

// BenchmarkMessagesFrameDecode decodes a messages frame of 64 100-byte
// payloads: "fast" with the client's decoder, "encoding/json" with
// decodeServerFrame, which the client used for every frame before and
// still uses for the frames the fast path does not take. One op is one
// frame.
//
//	go test -run '^$' -bench MessagesFrameDecode ./transport/network
func BenchmarkMessagesFrameDecode(b *testing.B) {
	frame := benchMessagesFrame(1<<40, benchFrameMessages)
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchFrameMessages), "ns/msg")
	}
	b.Run("fast", func(b *testing.B) {
		var d messagesDecoder
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			fr, ok := d.decode(frame)
			if !ok {
				b.Fatal("the fast path refused the frame")
			}
			fr.recycle() // as the Conn does once its Room took the messages
		}
		report(b)
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			if _, err := decodeServerFrame(frame); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
}
