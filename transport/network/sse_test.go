package network

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

func TestSSE(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	tests := []struct {
		name  string
		path  string // with {key}
		hdr   http.Header
		topic string // published to
	}{
		{name: "token parameter", path: "/lobby/pubsub/alerts/subscribe?token={key}", topic: "alerts"},
		{name: "bearer header", path: "/lobby/pubsub/alerts/subscribe", hdr: http.Header{"Authorization": {"Bearer " + lobbySub}}, topic: "alerts"},
		{name: "raw header", path: "/lobby/pubsub/alerts/subscribe", hdr: http.Header{"Authorization": {lobbySub}}, topic: "alerts"},
		{name: "publish key", path: "/lobby/pubsub/alerts/subscribe?token=" + lobbyPub, topic: "alerts"},
		{name: "legacy alias", path: "/lobby/subscribe/alerts?token={key}", topic: "alerts"},
		{name: "pattern with a literal star", path: "/lobby/pubsub/user:*/subscribe?pattern=true&token={key}", topic: "user:123"},
		{name: "pattern escaped", path: "/lobby/pubsub/user%3A%2A/subscribe?pattern=true&token={key}", topic: "user:7"},
		{name: "the seed's pattern example", path: "/lobby/pubsub/user:*/subscribe?pattern=1&token={key}", topic: "user:123:events"},
		{name: "one-character wildcard", path: "/lobby/pubsub/user:%3F/subscribe?pattern=true&token={key}", topic: "user:7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.openSSE(t, strings.ReplaceAll(tt.path, "{key}", lobbySub), tt.hdr)
			// The subscription is live once the response has begun.
			sent := f.publish(t, "lobby", tt.topic, lobbyPub, `{"message":"Server restarted"}`)
			got := c.message()
			if got.ID != sent.ID || got.Topic != tt.topic {
				t.Errorf("received %v on %q, want %v on %q", got.ID, got.Topic, sent.ID, tt.topic)
			}
			if string(got.Payload) != `"Server restarted"` {
				t.Errorf("payload %s, want the string as published", got.Payload)
			}
		})
	}
}

func TestSSEPatternMatchesOnlyItsTopics(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	c := f.openSSE(t, "/lobby/pubsub/user:*/subscribe?pattern=true&token="+lobbySub, nil)
	for _, name := range []string{"user", "users:1", "user:1:events", "xuser:1", "user:42"} {
		f.publish(t, "lobby", name, lobbyPub, `{"message":"`+name+`"}`)
	}
	for _, want := range []string{"user:1:events", "user:42"} {
		if got := c.message(); got.Topic != want {
			t.Errorf("pattern user:* delivered %q, want %q", got.Topic, want)
		}
	}
}

func TestSSERefused(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{
		Authorize: func(_ context.Context, _ Identity, a pubsub.Access) error {
			if a.Topic == "secret" {
				return fmt.Errorf("no")
			}
			return nil
		},
	})
	tests := []struct {
		name   string
		path   string
		status int
		code   pubsub.Code
	}{
		{"no key", "/lobby/pubsub/alerts/subscribe", 401, pubsub.CodeUnauthenticated},
		{"wrong room", "/other/pubsub/alerts/subscribe?token=" + lobbySub, 401, pubsub.CodeUnauthenticated},
		{"wildcard without pattern=true", "/lobby/pubsub/user:*/subscribe?token=" + lobbySub, 400, pubsub.CodeInvalidTopicName},
		{"'>' is no wildcard", "/lobby/pubsub/user:%3E/subscribe?pattern=true&token=" + lobbySub, 400, pubsub.CodeInvalidTopicName},
		{"character class", "/lobby/pubsub/user:%5Bab%5D/subscribe?pattern=true&token=" + lobbySub, 400, pubsub.CodeInvalidTopicName},
		{"bad pattern flag", "/lobby/pubsub/user:*/subscribe?pattern=yes&token=" + lobbySub, 400, pubsub.CodeInvalidRequest},
		{"bad last event id", "/lobby/pubsub/alerts/subscribe?lastEventId=abc&token=" + lobbySub, 400, pubsub.CodeInvalidHistoryOpts},
		{"refused by Authorize", "/lobby/pubsub/secret/subscribe?token=" + lobbySub, 403, pubsub.CodePermissionDenied},
		{"POST", "/lobby/pubsub/alerts/subscribe", 405, pubsub.CodeInvalidRequest},
		{"no such route", "/lobby/pubsub/alerts/nothing", 404, pubsub.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := http.MethodGet
			if tt.name == "POST" {
				method = http.MethodPost
			}
			r := f.do(t, method, tt.path, "", "", "")
			if r.status != tt.status || r.env.Error.Code != tt.code {
				t.Errorf("%s %s = %d %s, want %d %s", method, tt.path, r.status, r.raw, tt.status, tt.code)
			}
			if tt.status == 405 && r.header.Get("Allow") != "GET" {
				t.Errorf("405 with Allow %q, want GET", r.header.Get("Allow"))
			}
		})
	}
}

// TestSSEResume reconnects with the id of the last event seen while a
// publisher keeps publishing: the new stream must carry every message after
// that id exactly once, in order, across history pages and the switch to
// live delivery.
func TestSSEResume(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	pub, err := f.hub.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby", ClientID: "pub"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var ids []pubsub.ID
	ctx := ctxT(t)
	publish := func(i int) {
		m, err := pub.Publish(ctx, pubsub.PublishRequest{Topic: "feed", Payload: fmt.Appendf(nil, "%d", i)})
		if err != nil {
			t.Errorf("Publish(%d) = %v", i, err)
			return
		}
		ids = append(ids, m.ID)
	}
	const before, during = 130, 200 // more than two history pages, then live
	for i := range before {
		publish(i)
	}
	tests := []struct {
		name string
		from int // index of the last message the client saw
		hdr  bool
	}{
		{"Last-Event-ID header", 10, true},
		{"lastEventId parameter", 60, false},
		{"up to date", -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(ids)
			from := tt.from
			if from < 0 {
				from = n - 1
			}
			path := "/lobby/pubsub/feed/subscribe?token=" + lobbySub
			var hdr http.Header
			if tt.hdr {
				hdr = http.Header{"Last-Event-Id": {ids[from].String()}}
			} else {
				path += "&lastEventId=" + ids[from].String()
			}
			done := make(chan struct{})
			go func() { // publish while the stream starts
				defer close(done)
				for i := range during {
					publish(n + i)
				}
			}()
			c := f.openSSE(t, path, hdr)
			recv(t, done, "the publisher to finish")
			want := ids[from+1:]
			for i, id := range want {
				if got := c.message(); got.ID != id {
					t.Fatalf("event %d after the resume point is %v, want %v (a gap or a duplicate)", i, got.ID, id)
				}
			}
			// Nothing more: one last publish is the next event.
			publish(len(ids))
			if got := c.message(); got.ID != ids[len(ids)-1] {
				t.Fatalf("after the backlog came %v, want the new message %v", got.ID, ids[len(ids)-1])
			}
		})
	}
}

func TestSSEHeartbeat(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{Heartbeat: 15 * time.Second})
	c := f.openSSE(t, "/lobby/pubsub/alerts/subscribe?token="+lobbySub, nil)
	if ev := c.next(); !ev.comment {
		t.Fatalf("first event %+v, want the opening comment", ev)
	}
	for i := range 3 {
		f.clock.Advance(15 * time.Second)
		if ev := c.next(); !ev.comment {
			t.Fatalf("after heartbeat %d: %+v, want a comment", i+1, ev)
		}
	}
	if got := f.srv.Stats().Streams; got != 1 {
		t.Errorf("Stats().Streams = %d, want 1", got)
	}
}

// TestSSEOutlivesServerTimeouts runs an event stream on an http.Server with
// read and write timeouts far shorter than the stream: the stream must
// carry on, heartbeat after heartbeat, and still deliver.
func TestSSEOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	hub, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	// Far shorter than the stream, yet long enough for a plain request to
	// be read and answered on a loaded machine.
	const timeout = 500 * time.Millisecond
	srv := NewServer(hub, Options{Keys: testKeys, Heartbeat: timeout / 5})
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ReadTimeout, ts.Config.WriteTimeout = timeout, timeout
	ts.Start()
	defer ts.Close()
	defer shutdown(t, srv)
	f := &fixture{hub: hub, srv: srv, ts: ts}
	start := time.Now()
	c := f.openSSE(t, "/lobby/pubsub/alerts/subscribe?token="+lobbySub, nil)
	beats := 0
	for time.Since(start) < 6*timeout { // a condition on the stream, not a sleep
		if ev := c.next(); ev.comment {
			beats++
		}
	}
	sent := f.publish(t, "lobby", "alerts", lobbyPub, `{"message":"still here"}`)
	if got := c.message(); got.ID != sent.ID {
		t.Errorf("after %d heartbeats received %v, want %v", beats, got.ID, sent.ID)
	}
}

// TestSSESlowReader shows that an event stream whose reader stops is cut off
// without holding up publishers or other subscribers.
func TestSSESlowReader(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{QueueBytes: 256 << 10, Keys: testKeys, WriteTimeout: 200 * time.Millisecond, Clock: pubsub.SystemClock{}},
		func(l net.Listener) net.Listener { return smallSockets{l} })
	slowReq, _ := http.NewRequest(http.MethodGet, f.ts.URL+"/lobby/pubsub/big/subscribe?token="+lobbySub, nil)
	tr := smallReadBuffer(&websocket.DialOptions{}).HTTPClient
	defer tr.CloseIdleConnections()
	slow, err := tr.Do(slowReq)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close() // and never read
	fast := f.openSSE(t, "/lobby/pubsub/big/subscribe?token="+lobbySub, nil)
	pub, err := f.hub.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby", ClientID: "pub"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	payload := []byte(`"` + strings.Repeat("x", 8<<10) + `"`)
	for i := 0; f.srv.Stats().Streams > 1; i++ {
		if i == 10000 {
			t.Fatal("the slow stream was never cut off")
		}
		start := time.Now()
		m, err := pub.Publish(ctxT(t), pubsub.PublishRequest{Topic: "big", Payload: payload, NoPersist: true})
		if err != nil {
			t.Fatalf("Publish() = %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Publish() took %v while a reader was stuck", d)
		}
		if got := fast.message(); got.ID != m.ID {
			t.Fatalf("the fast reader received %v, want %v", got.ID, m.ID)
		}
	}
}

func TestSSEShutdown(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	c := f.openSSE(t, "/lobby/pubsub/alerts/subscribe?token="+lobbySub, nil)
	ctx, cancel := ctxWait()
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown() = %v", err)
	}
	c.expectError(pubsub.CodeNetworkError)
	r := f.do(t, http.MethodGet, "/lobby/pubsub/alerts/subscribe?token="+lobbySub, "", "", "")
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("subscribe after Shutdown = %d %s, want 503", r.status, r.raw)
	}
}

func TestSSECredentialsExpire(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{
		Authenticate: func(context.Context, *http.Request, string) (Identity, error) {
			return Identity{ClientID: "brief", Expires: t0.Add(time.Minute)}, nil
		},
	})
	c := f.openSSE(t, "/lobby/pubsub/alerts/subscribe", nil)
	c.next() // the opening comment: the stream is running
	f.clock.Advance(time.Minute)
	c.expectError(pubsub.CodeUnauthenticated)
}

// TestSSEEncodesOnce shows that a message going to many event streams is
// encoded once.
func TestSSEEncodesOnce(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	var cs []*sseClient
	for range 5 {
		cs = append(cs, f.openSSE(t, "/lobby/pubsub/alerts/subscribe?token="+url.QueryEscape(lobbySub), nil))
	}
	before := f.srv.Stats().EncodedEvents
	m := f.publish(t, "lobby", "alerts", lobbyPub, `{"message":{"multi":"line\nvalue"}}`)
	for _, c := range cs {
		if got := c.message(); got.ID != m.ID {
			t.Fatalf("received %v, want %v", got.ID, m.ID)
		}
	}
	if n := f.srv.Stats().EncodedEvents - before; n != 1 {
		t.Errorf("%d encodings for 5 streams, want 1", n)
	}
}

func TestAppendEvent(t *testing.T) {
	m := pubsub.Message{ID: 42, Topic: "t", From: "a", Payload: []byte("{\r\n \"k\": \"v\"\n}"), Timestamp: t0}
	got := string(appendEvent(nil, &m))
	want := "id: 42\ndata: {\"id\":\"42\",\"topic\":\"t\",\"from\":\"a\",\"payload\":{   \"k\": \"v\" },\"timestamp\":\"2026-03-15T12:00:00Z\",\"persisted\":false}\n\n"
	if got != want {
		t.Errorf("appendEvent() = %q, want %q", got, want)
	}
}
