package network

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// TestBurstFitsDefaults sends a burst of 1000 small messages to a client
// that reads nothing until the burst is over, with every setting at its
// default: the queue holds it, and the client then receives all of it, in
// order, without being dropped as a slow consumer.
func TestBurstFitsDefaults(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{}, func(l net.Listener) net.Listener { return smallSockets{l} })
	late := dialRaw(t, f.wsURL("lobby"), smallReadBuffer(bearer("late")))
	late.expect(typeWelcome, "")
	late.send(`{"type":"subscribe","id":"1","topic":"chat"}`)
	late.expect(typeSubscribed, "1")
	ctx := ctxT(t)
	pub, err := f.hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "pub"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	const n = 1000
	ids := make([]pubsub.ID, n)
	for i := range ids {
		p := fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 80))
		m, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: p, NoPersist: true})
		if err != nil {
			t.Fatalf("Publish #%d = %v", i, err)
		}
		ids[i] = m.ID
	}
	for got := 0; got < n; {
		fr := late.next()
		if fr.Type != typeMessages {
			t.Fatalf("after %d of %d messages: frame %q (error %+v), want messages", got, n, fr.Type, fr.Error)
		}
		for _, m := range fr.Messages {
			if m.ID != ids[got] {
				t.Fatalf("message %d is %v, want %v", got, m.ID, ids[got])
			}
			got++
		}
	}
	if s := f.hub.Stats().SlowConsumers; s != 0 {
		t.Errorf("hub dropped %d slow consumers during a burst within the default bound", s)
	}
	late.ping("2") // still connected
}

// TestStalledClientIsDroppedAtItsBound has a client stop reading while
// others keep up: it is dropped with SLOW_CONSUMER once about QueueBytes of
// messages wait for it beyond its hub connection's channel (not before, and
// not much later: its socket and the frame in its write hold the rest), the
// others receive everything in order, and once it reads again it finds a
// SLOW_CONSUMER error frame and close code 4008.
func TestStalledClientIsDroppedAtItsBound(t *testing.T) {
	t.Parallel()
	const bound = 256 << 10
	payload := []byte(`"` + strings.Repeat("x", 1000) + `"`)
	size := len(payload) + len("chat") + len("pub") + memory.MessageOverhead
	// What the stalled client's socket buffers and the server's frame in
	// flight may hold beyond the queue.
	const slack = 2*maxBatchBytes + 64<<10
	f := newFixture(t, memory.Options{}, Options{QueueBytes: bound, WriteTimeout: time.Minute},
		func(l net.Listener) net.Listener { return smallSockets{l} })
	stalled := dialRaw(t, f.wsURL("lobby"), smallReadBuffer(bearer("stalled")))
	stalled.expect(typeWelcome, "")
	stalled.send(`{"type":"subscribe","id":"1","topic":"chat"}`)
	stalled.expect(typeSubscribed, "1")
	ctx := ctxT(t)
	fast := make([]pubsub.Conn, 3)
	for i := range fast {
		fast[i] = f.connect(t, "lobby", fmt.Sprint("fast", i))
		if err := fast[i].Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := f.hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "pub"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	limit := memory.ChannelSlots + (bound+slack)/size
	sent := 0
	for f.hub.Stats().SlowConsumers == 0 {
		if sent > limit {
			t.Fatalf("the stalled client is still served after %d messages of %d bytes; its bound is %d", sent, size, bound)
		}
		m, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: payload, NoPersist: true})
		if err != nil {
			t.Fatalf("Publish #%d = %v", sent, err)
		}
		sent++
		for i, c := range fast {
			if got := recv(t, c.Messages(), fmt.Sprintf("message %d on fast client %d", sent, i)); got.ID != m.ID {
				t.Fatalf("fast client %d: message %d is %v, want %v", i, sent, got.ID, m.ID)
			}
		}
	}
	if (sent-memory.ChannelSlots)*size < bound {
		t.Errorf("the stalled client was dropped after %d messages of %d bytes, before its bound of %d beyond the channel's %d", sent, size, bound, memory.ChannelSlots)
	}
	frames := stalled.expectClose(CloseSlowConsumer)
	if len(frames) == 0 || frames[len(frames)-1].Type != typeError || frames[len(frames)-1].Error.Code != pubsub.CodeSlowConsumer {
		t.Errorf("no SLOW_CONSUMER error frame before the close")
	}
	for i, c := range fast {
		if err := c.Err(); err != nil {
			t.Errorf("fast client %d: Err() = %v", i, err)
		}
	}
}

// BenchmarkStalledClient measures what a client that stops reading costs
// the others: 100 WebSocket clients receive 100-byte payloads as fast as
// they can, with "stalled=0" no other client, with "stalled=1" one more that
// reads nothing and is dropped once QueueBytes (default) wait for it.
// Compare their deliveries/s; "dropped" counts the stalled clients the hub
// dropped, and must be 1 whenever b.N is large enough for the bound.
//
//	go test -run '^$' -bench StalledClient -benchtime 200000x ./transport/network
func BenchmarkStalledClient(b *testing.B) {
	for _, stalled := range []int{0, 1} {
		b.Run(fmt.Sprintf("stalled=%d", stalled), func(b *testing.B) { benchStalled(b, 100, stalled) })
	}
}

func benchStalled(b *testing.B, n, stalled int) {
	hub, err := memory.New(memory.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	srv := NewServer(hub, Options{Authenticate: testAuthenticate, MaxFrameRate: -1})
	ts := httptest.NewUnstartedServer(srv)
	ts.Listener = smallSockets{ts.Listener}
	ts.Start()
	defer ts.Close()
	defer shutdown(b, srv)

	url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/bench/ws"
	ctx := context.Background()
	dial := func(id string, opts *websocket.DialOptions) *websocket.Conn {
		ws, _, err := websocket.Dial(ctx, url, opts)
		if err != nil {
			b.Fatal(err)
		}
		ws.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","id":"1","topic":"fan"}`))
		for _, want := range []string{typeWelcome, typeSubscribed} {
			if _, data, err := ws.Read(ctx); err != nil || !bytes.Contains(data, []byte(`"type":"`+want+`"`)) {
				b.Fatalf("%s: %s, %v; want %s", id, data, err, want)
			}
		}
		return ws
	}
	for i := range stalled {
		ws := dial(fmt.Sprint("s", i), smallReadBuffer(bearer(fmt.Sprint("s", i))))
		defer ws.CloseNow()
	}
	r := newReceivers(n)
	defer r.close()
	for i := range n {
		r.start(i, dial(fmt.Sprint("r", i), bearer(fmt.Sprint("r", i))))
	}
	pub, err := hub.Connect(ctx, pubsub.ConnectRequest{Room: "bench", ClientID: "pub"})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()

	r.reset()
	b.ResetTimer()
	start := time.Now()
	publishAll(b, r, n, 64, func(p []byte) {
		if _, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "fan", Payload: p, NoPersist: true}); err != nil {
			b.Fatal(err)
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	r.report(b, elapsed, n)
	b.ReportMetric(float64(hub.Stats().SlowConsumers), "dropped")
}
