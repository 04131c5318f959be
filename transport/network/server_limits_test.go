package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// TestBadInput sends every kind of bad frame and checks the error frame it
// earns; each time the connection keeps working, and so does a bystander's.
func TestBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{})
	c := f.authed(t, "lobby", "alice")
	big := `"` + strings.Repeat("x", pubsub.MaxPayloadBytes-1) + `"`
	tests := []struct {
		name  string
		frame string
		id    string // the id the error frame must carry
		code  pubsub.Code
	}{
		{"malformed JSON", `{"type":"ping",`, "", pubsub.CodeInvalidRequest},
		{"not JSON at all", `hello`, "", pubsub.CodeInvalidRequest},
		{"array", `[1,2]`, "", pubsub.CodeInvalidRequest},
		{"string", `"ping"`, "", pubsub.CodeInvalidRequest},
		{"null", `null`, "", pubsub.CodeInvalidRequest},
		{"empty object", `{}`, "", pubsub.CodeInvalidRequest},
		{"unknown type", `{"type":"explode","id":"1"}`, "1", pubsub.CodeInvalidRequest},
		{"type not a string", `{"type":7,"id":"2"}`, "2", pubsub.CodeInvalidRequest},
		{"numeric id", `{"type":"ping","id":3}`, "", pubsub.CodeInvalidRequest},
		{"id with letters", `{"type":"ping","id":"abc"}`, "", pubsub.CodeInvalidRequest},
		{"negative id", `{"type":"ping","id":"-1"}`, "", pubsub.CodeInvalidRequest},
		{"empty id", `{"type":"ping","id":""}`, "", pubsub.CodeInvalidRequest},
		{"id of 20 digits", `{"type":"ping","id":"12345678901234567890"}`, "", pubsub.CodeInvalidRequest},
		{"other version", `{"v":2,"type":"ping","id":"4"}`, "4", pubsub.CodeInvalidRequest},
		{"version as string", `{"v":"1","type":"ping","id":"5"}`, "5", pubsub.CodeInvalidRequest},
		{"bad topic", `{"type":"publish","id":"6","topic":"a b","payload":1}`, "6", pubsub.CodeInvalidTopicName},
		{"topic not a string", `{"type":"subscribe","id":"7","topic":["chat"]}`, "7", pubsub.CodeInvalidTopicName},
		{"publish to a pattern", `{"type":"publish","id":"8","topic":"user:*","payload":1}`, "8", pubsub.CodeInvalidTopicName},
		{"no payload", `{"type":"publish","id":"9","topic":"chat"}`, "9", pubsub.CodeInvalidPayload},
		{"payload too large", `{"type":"publish","id":"10","topic":"chat","payload":` + big + `}`, "10", pubsub.CodePayloadTooLarge},
		{"metadata not strings", `{"type":"publish","id":"11","topic":"chat","payload":1,"metadata":{"k":1}}`, "11", pubsub.CodeInvalidPayload},
		{"bad recipient", `{"type":"publish","id":"12","topic":"chat","payload":1,"to":[""]}`, "12", pubsub.CodeInvalidRequest},
		{"persist not a bool", `{"type":"publish","id":"13","topic":"chat","payload":1,"persist":"no"}`, "13", pubsub.CodeInvalidRequest},
		{"negative rate", `{"type":"subscribe","id":"14","topic":"chat","rate":-1}`, "14", pubsub.CodeInvalidRequest},
		{"rate not a number", `{"type":"subscribe","id":"15","topic":"chat","rate":"fast"}`, "15", pubsub.CodeInvalidRequest},
		{"before and after", `{"type":"history","id":"16","topic":"chat","before":"5","after":"3"}`, "16", pubsub.CodeInvalidHistoryOpts},
		{"message id as number", `{"type":"history","id":"17","topic":"chat","before":5}`, "17", pubsub.CodeInvalidHistoryOpts},
		{"message id not digits", `{"type":"history","id":"18","topic":"chat","after":"0x10"}`, "18", pubsub.CodeInvalidHistoryOpts},
		{"limit too large", `{"type":"history","id":"19","topic":"chat","limit":51}`, "19", pubsub.CodeInvalidLimit},
		{"limit not a number", `{"type":"history","id":"20","topic":"chat","limit":"5"}`, "20", pubsub.CodeInvalidLimit},
		{"limit fractional", `{"type":"history","id":"21","topic":"chat","limit":2.5}`, "21", pubsub.CodeInvalidLimit},
		{"auth without credential", `{"type":"auth","id":"22"}`, "22", pubsub.CodeInvalidRequest},
		{"invalid UTF-8", "{\"type\":\"publish\",\"id\":\"23\",\"topic\":\"chat\",\"payload\":\"\xff\"}", "", pubsub.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.send(tt.frame)
			c.expectError(tt.id, tt.code)
			c.ping("99")
		})
	}
	// Members a frame type does not use are ignored, whatever their type.
	c.send(`{"type":"ping","id":"30","topic":5,"payload":{"x":[1]},"from":"x","limit":"y","future":true}`)
	c.expect(typePong, "30")

	bob := f.authed(t, "lobby", "bob")
	bob.send(`{"type":"subscribe","id":"1","topic":"chat"}`)
	bob.expect(typeSubscribed, "1")
	c.send(`{"type":"publish","id":"31","topic":"chat","payload":{"ok":true}}`)
	c.expect(typePublished, "31")
	if m := bob.expect(typeMessages, "").Messages; len(m) != 1 || string(m[0].Payload) != `{"ok":true}` {
		t.Errorf("bob received %+v, want the one message", m)
	}
}

// TestBadInputCloses covers the input that ends a connection: each gets its
// documented close code and no other connection notices.
func TestBadInputCloses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{MaxFrameBytes: 1024, MaxFrameRate: 5})
	bystander := f.authed(t, "lobby", "bob")
	tests := []struct {
		name  string
		run   func(c *rawConn)
		code  pubsub.Code // of the error frame before the close; "" for none
		close websocket.StatusCode
	}{
		{"binary frame", func(c *rawConn) {
			ctx, cancel := ctxWait()
			defer cancel()
			c.ws.Write(ctx, websocket.MessageBinary, []byte(`{"type":"ping"}`))
		}, pubsub.CodeInvalidRequest, CloseUnsupportedData},
		{"oversized frame", func(c *rawConn) {
			c.send(`{"type":"publish","topic":"chat","payload":"` + strings.Repeat("x", 1024) + `"}`)
		}, "", CloseTooBig},
		{"flood", func(c *rawConn) {
			for i := range 6 { // the burst is 5, and the fake clock stands still
				c.send(fmt.Sprintf(`{"type":"ping","id":"%d"}`, i))
			}
		}, pubsub.CodeRateLimitExceeded, ClosePolicyViolation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.authed(t, "lobby", "alice")
			tt.run(c)
			frames := c.expectClose(tt.close)
			var last serverFrame
			if len(frames) > 0 {
				last = frames[len(frames)-1]
			}
			if tt.code != "" && (last.Type != typeError || last.Error.Code != tt.code || last.ID != "") {
				t.Errorf("last frame before the close = %+v, want an error frame with code %s", last, tt.code)
			}
			bystander.ping("1")
		})
	}
}

func TestTooManySubscriptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		max  int
		want int // subscriptions allowed; -1 for no limit
	}{
		{"default", 0, DefaultMaxSubscriptions},
		{"two", 2, 2},
		{"no limit", -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, memory.Options{}, Options{MaxSubscriptions: tt.max})
			c := f.connect(t, "lobby", "alice")
			ctx := ctxT(t)
			n := tt.want
			if n < 0 {
				n = 150
			}
			for i := range n {
				if err := c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: fmt.Sprint("t", i)}); err != nil {
					t.Fatalf("Subscribe(#%d) = %v", i+1, err)
				}
			}
			if tt.want < 0 {
				return
			}
			err := c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "one-more"})
			if !errors.Is(err, pubsub.ErrTooManySubscriptions) {
				t.Fatalf("Subscribe(#%d) = %v, want TOO_MANY_SUBSCRIPTIONS", n+1, err)
			}
			// Changing the rate of a subscription is not a new one.
			if err := c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "t0", Rate: 3}); err != nil {
				t.Errorf("Subscribe(t0 again) = %v", err)
			}
			if err := c.Unsubscribe(ctx, "t0"); err != nil {
				t.Fatalf("Unsubscribe() = %v", err)
			}
			if err := c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "one-more"}); err != nil {
				t.Errorf("Subscribe after Unsubscribe = %v", err)
			}
		})
	}
}

// serverConnOf returns the server side of the live connection of client id.
func (f *fixture) serverConnOf(tb testing.TB, id string) *serverConn {
	tb.Helper()
	var found *serverConn
	waitFor(tb, "the server connection of "+id, func() bool {
		f.srv.mu.Lock()
		defer f.srv.mu.Unlock()
		for c := range f.srv.conns {
			if c.clientID() == id {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	const beat = 30 * time.Second
	f := newFixture(t, memory.Options{}, Options{})

	// A raw client that never reads never answers pings.
	dead := f.authed(t, "lobby", "dead")
	live := f.connect(t, "lobby", "live")
	liveSide := f.serverConnOf(t, "live")

	for i := 1; i <= 3; i++ {
		f.clock.Advance(beat)
		now := f.clock.Now().UnixNano()
		waitFor(t, "the live client's pong", func() bool { return liveSide.lastSeen.Load() == now })
		if i == 2 {
			waitFor(t, "the dead client to be dropped", func() bool { return f.srv.Stats().Connections == 1 })
		}
	}
	if _, err := dead.read(); websocket.CloseStatus(err) != -1 {
		t.Errorf("dead client: Read() = %v, want the socket cut off without a close frame", err)
	}
	if err := live.Subscribe(ctxT(t), pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
		t.Errorf("live client after three heartbeats: Subscribe() = %v", err)
	}
}

func TestClientDetectsSilentServer(t *testing.T) {
	t.Parallel()
	// The server announces 30 s heartbeats but, on its own fake clock that
	// never moves, sends none.
	f := newFixture(t, memory.Options{}, Options{})
	clock := fakeclock.New(t0)
	client, err := NewClient(f.ts.URL, &DialOptions{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby", Token: testTokenPrefix + "alice"})
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	defer c.Close()
	clock.Advance(75 * time.Second)
	select {
	case <-c.Done():
		t.Fatal("Conn lost after 2.5 heartbeats of silence; the limit is more than that")
	default:
	}
	clock.Advance(30 * time.Second)
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatal("Conn still live after 3.5 heartbeats of silence")
	}
	if err := c.Err(); !errors.Is(err, pubsub.ErrNetwork) {
		t.Errorf("Err() = %v, want NETWORK_ERROR", err)
	}
}

// TestSlowConsumer fills a subscriber's socket and checks that it, and only
// it, is closed with the slow-consumer code, whether the hub's or the
// server's QueueBytes bound it, or its write timed out.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	const n = memory.ChannelSlots + 64 // beyond the hub connection's channel
	payload := []byte(`"` + strings.Repeat("x", 16<<10) + `"`)
	// The slow client's socket and its buffers hold a few of the messages,
	// the hub connection's channel memory.ChannelSlots; the queue bounds
	// below hold 4 more.
	bound := 4 * (len(payload) + len("chat") + len("pub") + memory.MessageOverhead)
	tests := []struct {
		name       string
		hubBytes   int           // memory.Options.QueueBytes
		queueBytes int           // Options.QueueBytes
		timeout    time.Duration // WriteTimeout
		stuck      func(*fixture, *serverConn) bool
		close      websocket.StatusCode // -1: cut off without a close frame
		reads      bool                 // whether the slow client reads again
	}{
		{
			name: "server QueueBytes", queueBytes: bound,
			stuck: func(f *fixture, _ *serverConn) bool { return f.hub.Stats().SlowConsumers == 1 },
			close: CloseSlowConsumer, reads: true,
		},
		{
			name: "hub QueueBytes", hubBytes: bound,
			stuck: func(f *fixture, _ *serverConn) bool { return f.hub.Stats().SlowConsumers == 1 },
			close: CloseSlowConsumer, reads: true,
		},
		{
			// Long enough that no write to the fast client times out on a
			// loaded machine.
			name: "write timeout", queueBytes: 64 << 20, timeout: time.Second,
			stuck: func(f *fixture, _ *serverConn) bool { return f.srv.Stats().Connections == 1 },
			close: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, memory.Options{QueueBytes: tt.hubBytes}, Options{QueueBytes: tt.queueBytes, WriteTimeout: tt.timeout},
				func(l net.Listener) net.Listener { return smallSockets{l} })
			slow := dialRaw(t, f.wsURL("lobby"), smallReadBuffer(bearer("slow")))
			slow.expect(typeWelcome, "")
			slow.send(`{"type":"subscribe","id":"1","topic":"chat"}`)
			slow.expect(typeSubscribed, "1")
			slowSide := f.serverConnOf(t, "slow")
			fast := f.connect(t, "lobby", "fast")
			ctx := ctxT(t)
			if err := fast.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
				t.Fatal(err)
			}
			pub, err := f.hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "pub"})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()

			// Publish at the pace of the fast client, which must receive
			// everything, in order, while the slow one falls behind.
			for i := range n {
				m, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: payload})
				if err != nil {
					t.Fatalf("Publish() = %v", err)
				}
				select {
				case got := <-fast.Messages():
					if got.ID != m.ID {
						t.Fatalf("fast client: message %d is %v, want %v", i, got.ID, m.ID)
					}
				case <-time.After(waitTimeout):
					t.Fatalf("fast client received %d of %d messages", i, n)
				}
			}
			waitFor(t, "the slow client's backlog", func() bool { return tt.stuck(f, slowSide) })
			if !tt.reads {
				waitFor(t, "the slow client to be cut off", func() bool { return f.srv.Stats().Connections == 1 })
			}
			frames := slow.expectClose(tt.close)
			got := 0
			for i, fr := range frames {
				switch fr.Type {
				case typeMessages:
					got += len(fr.Messages)
				case typeError:
					if i != len(frames)-1 || fr.Error.Code != pubsub.CodeSlowConsumer {
						t.Errorf("frame %d: error %+v, want SLOW_CONSUMER as the last frame", i, fr.Error)
					}
				}
			}
			if tt.close == CloseSlowConsumer && (len(frames) == 0 || frames[len(frames)-1].Type != typeError) {
				t.Errorf("no SLOW_CONSUMER error frame before the close")
			}
			if got >= n {
				t.Errorf("the slow client received all %d messages; it should have been cut off", got)
			}
			if err := fast.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "after"}); err != nil {
				t.Errorf("fast client afterwards: Subscribe() = %v", err)
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	enter := sync.OnceFunc(func() { close(entered) })
	f := newFixture(t, memory.Options{}, Options{
		Authorize: func(_ context.Context, _ Identity, a pubsub.Access) error {
			if a.Topic == "slow" {
				enter()
				<-release // closed by the test, or when it ends
			}
			return nil
		},
	})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before the fixture's: a failed test must not hold the server
	ctx := ctxT(t)
	alice := f.connect(t, "lobby", "alice")
	raw := f.authed(t, "lobby", "bob")

	published := make(chan error, 1)
	go func() {
		_, err := alice.Publish(ctx, pubsub.PublishRequest{Topic: "slow", Payload: []byte(`1`)})
		published <- err
	}()
	recv(t, entered, "the publish to reach Authorize")
	shut := make(chan error, 1)
	go func() { shut <- f.srv.Shutdown(ctx) }()
	// Shutdown refuses new connections at once...
	waitFor(t, "Shutdown to begin", func() bool {
		f.srv.mu.Lock()
		defer f.srv.mu.Unlock()
		return f.srv.shutdown
	})
	_, err := f.client.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", Token: testTokenPrefix + "carol"})
	if !errors.Is(err, pubsub.ErrNetwork) {
		t.Errorf("Connect during Shutdown = %v, want NETWORK_ERROR (HTTP 503)", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.ts.URL+"/lobby/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.ts.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET during Shutdown: status %d, want 503", resp.StatusCode)
		}
	}
	// ...and waits for the request in flight.
	select {
	case err := <-shut:
		t.Fatalf("Shutdown() = %v before the request in flight was answered", err)
	default:
	}
	closed := make(chan error, 1)
	go func() { // a browser reads on, and sees the close
		for {
			if _, err := raw.read(); err != nil {
				closed <- err
				return
			}
		}
	}()
	releaseOnce()
	if err := recv(t, published, "the publish in flight to return"); err != nil {
		t.Errorf("Publish in flight during Shutdown = %v, want success", err)
	}
	if err := recv(t, shut, "Shutdown to return"); err != nil {
		t.Errorf("Shutdown() = %v", err)
	}
	if err := recv(t, closed, "the raw client's connection to end"); websocket.CloseStatus(err) != CloseGoingAway {
		t.Errorf("raw client: connection ended with %v, want status %v", err, CloseGoingAway)
	}
	recv(t, alice.Done(), "alice's Conn to end")
	if err := alice.Err(); !errors.Is(err, pubsub.ErrNetwork) {
		t.Errorf("Err() after Shutdown = %v, want NETWORK_ERROR, so that Rooms reconnect", err)
	}
	if n := f.srv.Stats().Connections; n != 0 {
		t.Errorf("%d connections after Shutdown", n)
	}
}

func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	enter := sync.OnceFunc(func() { close(entered) })
	f := newFixture(t, memory.Options{}, Options{
		Authorize: func(context.Context, Identity, pubsub.Access) error {
			enter()
			<-release // closed by the test, or when it ends: Shutdown must not wait for it
			return nil
		},
	})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before the fixture's: a failed test must not hold the server
	c := f.authed(t, "lobby", "alice")
	c.send(`{"type":"subscribe","id":"1","topic":"chat"}`)
	recv(t, entered, "the subscribe to reach Authorize")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- f.srv.Shutdown(ctx) }()
	if _, err := c.read(); err == nil {
		t.Error("connection still open after Shutdown's deadline")
	}
	releaseOnce()
	if err := recv(t, done, "Shutdown to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown(done context) = %v, want context.Canceled", err)
	}
}

// TestEncodedOncePerPublish counts encodings: one per publish, however many
// subscribers.
func TestEncodedOncePerPublish(t *testing.T) {
	t.Parallel()
	const subscribers, messages = 20, 10
	f := newFixture(t, memory.Options{}, Options{})
	ctx := ctxT(t)
	var conns []pubsub.Conn
	for i := range subscribers {
		c := f.connect(t, "lobby", fmt.Sprint("sub", i))
		if err := c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	pub, err := f.hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "pub"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	before := f.srv.Stats().Encoded
	for i := range messages {
		m, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: fmt.Appendf(nil, `{"n":%d}`, i)})
		if err != nil {
			t.Fatal(err)
		}
		for j, c := range conns {
			select {
			case got := <-c.Messages():
				if got.ID != m.ID {
					t.Fatalf("subscriber %d received %v, want %v", j, got.ID, m.ID)
				}
			case <-time.After(waitTimeout):
				t.Fatalf("subscriber %d received nothing", j)
			}
		}
	}
	if got := f.srv.Stats().Encoded - before; got != messages {
		t.Errorf("%d messages to %d subscribers were encoded %d times, want %d", messages, subscribers, got, messages)
	}
}

func TestHubDropsConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{})
	raw := f.authed(t, "lobby", "alice")
	c := f.connect(t, "lobby", "bob")
	f.hub.Disconnect("lobby", "alice")
	f.hub.Disconnect("lobby", "bob")
	raw.expectError("", pubsub.CodeNetworkError)
	raw.expectClose(CloseHubEnded)
	recv(t, c.Done(), "the Go client's Conn to end")
	if err := c.Err(); !errors.Is(err, pubsub.ErrNetwork) {
		t.Errorf("Err() = %v, want NETWORK_ERROR", err)
	}
	err := c.Subscribe(ctxT(t), pubsub.SubscribeRequest{Topic: "chat"})
	if !errors.Is(err, pubsub.ErrNetwork) {
		t.Errorf("Subscribe() on a lost Conn = %v, want NETWORK_ERROR", err)
	}
}

// TestIdleLongerThanWriteTimeout checks that pings both ways still work when
// the connection has been idle for longer than WriteTimeout: no write
// deadline outlives the write it was set for, so the frames the WebSocket
// library writes on its own (pongs) go out too.
func TestIdleLongerThanWriteTimeout(t *testing.T) {
	t.Parallel()
	// Long enough that no write times out on a loaded machine.
	const writeTimeout = 2 * time.Second
	f := newFixture(t, memory.Options{}, Options{WriteTimeout: writeTimeout})
	c := f.authed(t, "lobby", "alice")
	c.send(`{"type":"subscribe","id":"1","topic":"chat"}`)
	c.expect(typeSubscribed, "1")
	side := f.serverConnOf(t, "alice")
	readErr := make(chan error, 1)
	go func() { // keep reading, so that pings are answered
		for {
			if _, err := c.read(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	time.Sleep(3 * writeTimeout) // let the last write's deadline pass

	// The client pings; the server's pong must go out.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.ws.Ping(ctx); err != nil {
		t.Errorf("client Ping() after idling = %v", err)
	}
	// The server pings; its ping must go out.
	for range 2 {
		f.clock.Advance(DefaultHeartbeat)
		now := f.clock.Now().UnixNano()
		waitFor(t, "the pong", func() bool { return side.lastSeen.Load() == now })
	}
	c.ws.Close(CloseNormal, "")
	recv(t, readErr, "the reading goroutine to see the close")
}

// Beyond Options.MaxConnections, WebSockets and event streams are refused
// before the upgrade with 503, and admitted again once one closes.
func TestMaxConnections(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{MaxConnections: 1})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	first, err := f.client.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", Token: lobbySub + ":a"})
	if err != nil {
		t.Fatalf("first connection: %v", err)
	}
	if r := f.do(t, http.MethodGet, "/lobby/pubsub/alerts/subscribe", lobbySub, "", ""); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("event stream beyond MaxConnections = %d %s, want 503 with Retry-After", r.status, r.raw)
	}
	if _, err := f.client.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", Token: lobbySub + ":b"}); err == nil {
		t.Error("second WebSocket beyond MaxConnections was accepted")
	}
	first.Close()
	deadline := time.Now().Add(waitTimeout)
	for {
		c, err := f.client.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", Token: lobbySub + ":c"})
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection admitted after the first closed: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
