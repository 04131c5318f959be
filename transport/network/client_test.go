package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

func TestNewClient(t *testing.T) {
	tests := []struct {
		url  string
		want string // the URL of room "lobby"; "" means NewClient fails
	}{
		{"ws://127.0.0.1:8080", "ws://127.0.0.1:8080/lobby/ws"},
		{"ws://127.0.0.1:8080/", "ws://127.0.0.1:8080/lobby/ws"},
		{"http://127.0.0.1:8080/plaza/", "ws://127.0.0.1:8080/plaza/lobby/ws"},
		{"https://127.0.0.1/a%20b", "wss://127.0.0.1/a%20b/lobby/ws"},
		{"wss://[::1]:443/x?tenant=7", "wss://[::1]:443/x/lobby/ws?tenant=7"},
		{"ftp://127.0.0.1", ""},
		{"127.0.0.1:8080", ""},
		{"ws:///nohost", ""},
		{"ws://127.0.0.1:8080/%zz", ""},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c, err := NewClient(tt.url, nil)
			if tt.want == "" {
				if err == nil {
					t.Errorf("NewClient(%q) = %v, want an error", tt.url, c.nodes[0].base)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewClient(%q) = %v", tt.url, err)
			}
			if got := c.nodes[0].roomURL("lobby"); got != tt.want {
				t.Errorf("room URL = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestClientConnectErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "ws://" + l.Addr().String()
	l.Close()
	nowhere, _ := NewClient(closed, nil)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		client *Client
		ctx    context.Context
		req    pubsub.ConnectRequest
		want   error
	}{
		{"nothing listening", nowhere, ctxT(t), pubsub.ConnectRequest{Room: "lobby"}, pubsub.ErrNetwork},
		{"context done", f.client, cancelled, pubsub.ConnectRequest{Room: "lobby", Token: "test-token:a"}, context.Canceled},
		{"bad credentials", f.client, ctxT(t), pubsub.ConnectRequest{Room: "lobby", Token: "nope"}, pubsub.ErrUnauthenticated},
		{"room the hub refuses", f.client, ctxT(t), pubsub.ConnectRequest{Room: "a b", Token: "test-token:a"}, pubsub.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.client.Connect(tt.ctx, tt.req)
			if !errors.Is(err, tt.want) {
				if c != nil {
					c.Close()
				}
				t.Errorf("Connect() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestClientConn(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	f := newFixture(t, memory.Options{}, Options{
		MaxFrameBytes: 4096,
		Authorize: func(_ context.Context, _ Identity, a pubsub.Access) error {
			if a.Topic == "slow" {
				select {
				case entered <- struct{}{}:
				default: // one signal is all the test waits for
				}
				<-release // closed by the test, or when it ends
			}
			return nil
		},
	})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before the fixture's: a failed test must not hold the server
	ctx := ctxT(t)
	c := f.connect(t, "lobby", "alice")

	t.Run("frame too large for the server", func(t *testing.T) {
		_, err := c.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`"` + strings.Repeat("x", 5000) + `"`)})
		if !errors.Is(err, pubsub.ErrPayloadTooLarge) {
			t.Errorf("Publish(5000 bytes) = %v, want PAYLOAD_TOO_LARGE", err)
		}
	})
	t.Run("invalid payload fails locally", func(t *testing.T) {
		_, err := c.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`{nope`)})
		if !errors.Is(err, pubsub.ErrInvalidPayload) {
			t.Errorf("Publish(invalid JSON) = %v, want INVALID_PAYLOAD", err)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Publish(cctx, pubsub.PublishRequest{Topic: "slow", Payload: []byte(`1`)})
			errc <- err
		}()
		recv(t, entered, "the publish to reach Authorize")
		cancel()
		if err := recv(t, errc, "the cancelled Publish to return"); !errors.Is(err, context.Canceled) {
			t.Errorf("Publish() = %v, want context.Canceled", err)
		}
		releaseOnce()
		// The late reply is dropped and the Conn carries on.
		if _, err := c.History(ctx, pubsub.HistoryRequest{Topic: "slow"}); err != nil {
			t.Errorf("History() after a cancelled Publish = %v", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		d := f.connect(t, "lobby", "dora")
		if err := d.Close(); err != nil {
			t.Fatalf("Close() = %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("second Close() = %v", err)
		}
		if err := d.Err(); !errors.Is(err, pubsub.ErrNotConnected) {
			t.Errorf("Err() = %v, want NOT_CONNECTED", err)
		}
		if _, err := d.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`1`)}); !errors.Is(err, pubsub.ErrNotConnected) {
			t.Errorf("Publish() after Close = %v, want NOT_CONNECTED", err)
		}
	})
}

// connectQueued connects bob to lobby through a Client whose delivery queue
// holds at most limit bytes.
func connectQueued(tb testing.TB, ctx context.Context, f *fixture, limit int) pubsub.Conn {
	tb.Helper()
	client, err := NewClient(f.ts.URL, &DialOptions{QueueBytes: limit})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := client.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", Token: testTokenPrefix + "bob"})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// A Conn whose delivery queue outgrows DialOptions.QueueBytes ends with
// SLOW_CONSUMER and keeps, in order, the messages that fit, whether they are
// taken in batches (as a Room does) or read from Messages.
func TestClientQueueFull(t *testing.T) {
	t.Parallel()
	const (
		limit   = 1000 // bytes: a handful of these messages
		maxSent = 5000 // publishes at most, until the Conn ends
	)
	for _, tt := range []struct {
		name string
		read func(t *testing.T, c pubsub.Conn) []*pubsub.Message // what the Conn kept, once done
	}{
		{"take", func(_ *testing.T, c pubsub.Conn) []*pubsub.Message { return c.(pubsub.BatchConn).Take(nil) }},
		{"messages", func(t *testing.T, c pubsub.Conn) []*pubsub.Message {
			// Done, the channel hands out what is queued, then its
			// goroutine ends.
			var got []*pubsub.Message
			deadline := time.After(waitTimeout)
			for {
				select {
				case m := <-c.Messages():
					got = append(got, m)
				case <-c.(*clientConn).pumpDone:
					return got
				case <-deadline:
					t.Fatalf("Messages() still open %v after the Conn was done", waitTimeout)
				}
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, memory.Options{}, Options{})
			ctx := ctxT(t)
			c := connectQueued(t, ctx, f, limit)
			defer c.Close()
			if tt.name == "messages" {
				c.Messages() // the consumer is there, and reads nothing until the end
			}
			if err := c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
				t.Fatal(err)
			}
			ended := c.Done()
			if tt.name == "messages" {
				// Done waits for the channel to hand out what is
				// queued, which this consumer reads only afterwards.
				ended = c.(*clientConn).done
			}
			// Publish until the queue overflows: the first frame is taken
			// whatever its size, and a loaded server may put many messages
			// in it.
			pub := f.connect(t, "lobby", "alice")
			var ids []pubsub.ID
		publishing:
			for i := range maxSent {
				select {
				case <-ended:
					break publishing
				default:
				}
				m, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`"` + strings.Repeat("x", 60) + `"`)})
				if err != nil {
					t.Fatalf("Publish(#%d) = %v", i+1, err)
				}
				ids = append(ids, m.ID)
			}
			select {
			case <-ended:
			case <-time.After(waitTimeout):
				t.Fatalf("Conn whose queue outgrew %d bytes (%d messages published) still live after %v", limit, len(ids), waitTimeout)
			}
			// What stayed: whole frames within the bound, or the one frame
			// an empty queue took.
			cc := c.(*clientConn)
			cc.qmu.Lock()
			frames := cc.queue[cc.head:]
			var kept int64
			for _, q := range frames {
				kept += q.size
			}
			cc.qmu.Unlock()
			if len(frames) > 1 && kept > limit {
				t.Errorf("%d frames of %d bytes kept, more than QueueBytes %d", len(frames), kept, limit)
			}
			if err := c.Err(); !errors.Is(err, pubsub.ErrSlowConsumer) {
				t.Errorf("Err() = %v, want SLOW_CONSUMER", err)
			}
			got := tt.read(t, c)
			if len(got) == 0 || len(got) >= len(ids) {
				t.Fatalf("%d messages kept, want some of the %d sent but not all", len(got), len(ids))
			}
			for i, m := range got {
				if m.ID != ids[i] {
					t.Fatalf("message %d kept is %v, want %v: the oldest are kept, in order", i, m.ID, ids[i])
				}
			}
		})
	}
}

// The delivery queue grows with a burst and lets its storage go once the
// burst is taken, so an idle Conn holds none.
func TestClientQueueShrinks(t *testing.T) {
	t.Parallel()
	const burst = 300 // more messages than maxIdleQueue holds frames
	f := newFixture(t, memory.Options{}, Options{})
	ctx := ctxT(t)
	c, err := f.client.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", Token: testTokenPrefix + "bob"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
		t.Fatal(err)
	}
	pub := f.connect(t, "lobby", "alice")
	for i := range burst {
		if _, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`1`)}); err != nil {
			t.Fatalf("Publish(#%d) = %v", i+1, err)
		}
	}
	cc := c.(*clientConn)
	waiting := func() int {
		cc.qmu.Lock()
		defer cc.qmu.Unlock()
		return cc.count
	}
	deadline := time.After(waitTimeout)
	for waiting() < burst {
		select {
		case <-cc.Ready():
		case <-deadline:
			t.Fatalf("%d of %d messages queued after %v; Err = %v", waiting(), burst, waitTimeout, c.Err())
		}
	}
	if got := len(cc.Take(nil)); got != burst {
		t.Fatalf("Take() = %d messages, want %d", got, burst)
	}
	if got := len(cc.Take(nil)); got != 0 {
		t.Fatalf("second Take() = %d messages, want none", got)
	}
	cc.qmu.Lock()
	defer cc.qmu.Unlock()
	if cap(cc.queue) > maxIdleQueue || cc.queued != 0 || cc.count != 0 || len(cc.lent) != 0 {
		t.Errorf("taken to the end, the queue keeps room for %d frames, counts %d bytes and %d messages and holds %d frames; want at most %d, 0, 0 and 0",
			cap(cc.queue), cc.queued, cc.count, len(cc.lent), maxIdleQueue)
	}
}

// A handler may keep the Messages it is handed: their payloads stay as
// they were while the client reads, decodes and delivers more frames.
func TestClientPayloadsOutliveHandlers(t *testing.T) {
	t.Parallel()
	const n = 500
	f := newFixture(t, memory.Options{}, Options{})
	ctx := ctxT(t)
	room, err := pubsub.Join(ctx, f.client, "lobby", &pubsub.JoinOptions{Token: testTokenPrefix + "bob"})
	if err != nil {
		t.Fatal(err)
	}
	defer room.Leave(context.Background())
	got := make(chan pubsub.Message, n)
	if _, err := room.Subscribe(ctx, "chat", func(m pubsub.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	pub := f.connect(t, "lobby", "alice")
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf(`{"n":%d,"pad":%q}`, i, strings.Repeat(strconv.Itoa(i%10), 40+i%50))
		if _, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(want[i])}); err != nil {
			t.Fatalf("Publish(#%d) = %v", i+1, err)
		}
	}
	kept := make([]pubsub.Message, 0, n)
	for len(kept) < n {
		select {
		case m := <-got:
			kept = append(kept, m)
		case <-ctx.Done():
			t.Fatalf("got %d of %d messages within %v; stats %+v", len(kept), n, waitTimeout, room.Stats())
		}
	}
	for i, m := range kept {
		if string(m.Payload) != want[i] {
			t.Fatalf("message %d kept since its handler returned has payload %s, want %s", i, m.Payload, want[i])
		}
	}
}

func TestCloseCodeError(t *testing.T) {
	tests := []struct {
		code int
		want pubsub.Code
	}{
		{int(CloseGoingAway), pubsub.CodeNetworkError},
		{int(CloseUnsupportedData), pubsub.CodeInvalidRequest},
		{int(ClosePolicyViolation), pubsub.CodeRateLimitExceeded},
		{int(CloseTooBig), pubsub.CodePayloadTooLarge},
		{int(CloseInternal), pubsub.CodeInternal},
		{int(CloseUnauthenticated), pubsub.CodeUnauthenticated},
		{int(CloseCredentialsExpired), pubsub.CodeUnauthenticated},
		{int(CloseSlowConsumer), pubsub.CodeSlowConsumer},
		{int(CloseHubEnded), pubsub.CodeNetworkError},
		{4999, pubsub.CodeNetworkError},
	}
	for _, tt := range tests {
		if got := closeCodeError(statusCode(tt.code), "").Code; got != tt.want {
			t.Errorf("close code %d maps to %s, want %s", tt.code, got, tt.want)
		}
	}
}

func statusCode(c int) websocket.StatusCode { return websocket.StatusCode(c) }

// A full history page of messages at the payload cap fits the client's
// default read limit.
func TestClientReadsFullPageOfLargeMessages(t *testing.T) {
	f := newFixture(t, memory.Options{}, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	hc, err := f.hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "pub"})
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	big := json.RawMessage(`"` + strings.Repeat("x", pubsub.MaxPayloadBytes-2) + `"`)
	for range pubsub.MaxHistoryLimit {
		if _, err := hc.Publish(ctx, pubsub.PublishRequest{Topic: "big", Payload: big}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := f.client.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", Token: testTokenPrefix + "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	page, err := c.History(ctx, pubsub.HistoryRequest{Topic: "big", Limit: pubsub.MaxHistoryLimit})
	if err != nil {
		t.Fatalf("History(limit 50) of messages at the payload cap = %v; Conn.Err = %v", err, c.Err())
	}
	if len(page.Messages) != pubsub.MaxHistoryLimit {
		t.Errorf("History returned %d messages, want %d", len(page.Messages), pubsub.MaxHistoryLimit)
	}
}

// A consumer of Messages that drains the channel without blocking once Done
// is closed, as the Conn contract allows and as a Room does over a Conn
// that a wrapper keeps from being a BatchConn, gets every message that
// arrived before the Conn ended: none is handed out after that drain.
func TestClientMessagesDrainedAfterDone(t *testing.T) {
	t.Parallel()
	const (
		limit = 1000 // bytes: a handful of these messages
		sent  = 30
	)
	f := newFixture(t, memory.Options{}, Options{})
	ctx := ctxT(t)
	c := connectQueued(t, ctx, f, limit)
	defer c.Close()
	msgs := c.Messages()
	if err := c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
		t.Fatal(err)
	}
	pub := f.connect(t, "lobby", "alice")
	for i := range sent {
		if _, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`"` + strings.Repeat("x", 60) + `"`)}); err != nil {
			t.Fatalf("Publish(#%d) = %v", i+1, err)
		}
	}
	cc := c.(*clientConn)
	recv(t, cc.done, "the Conn to end with SLOW_CONSUMER") // as a busy handler would, the consumer reads nothing until then

	// The Room's loop over a Conn that is not a BatchConn.
	got := 0
	deadline := time.After(waitTimeout)
	for live := true; live; {
		select {
		case <-msgs:
			got++
			continue
		default:
		}
		select {
		case <-msgs:
			got++
		case <-c.Done():
			for drained := false; !drained; {
				select {
				case <-msgs:
					got++
				default:
					drained = true
				}
			}
			live = false
		case <-deadline:
			t.Fatalf("Done not closed %v after the Conn ended; %d messages read", waitTimeout, got)
		}
	}
	late := 0
	for pumping := true; pumping; {
		select {
		case <-msgs:
			late++
		case <-cc.pumpDone:
			pumping = false
		case <-deadline:
			t.Fatalf("Messages() still handing out messages %v after the Conn ended", waitTimeout)
		}
	}
	if got == 0 || late != 0 {
		t.Errorf("%d messages read before the drain after Done ended, and %d after it; want some, and none after: a consumer that drains after Done loses those", got, late)
	}
}
