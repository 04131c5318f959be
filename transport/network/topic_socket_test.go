package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

func TestTopicSocket(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	header := &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + lobbySub}}}
	tests := []struct {
		name  string
		path  string
		opts  *websocket.DialOptions
		first string
		topic string // published to
	}{
		{name: "header", path: "/lobby/pubsub/alerts/ws", opts: header, topic: "alerts"},
		{name: "token parameter", path: "/lobby/pubsub/alerts/ws?token=" + lobbySub, topic: "alerts"},
		{name: "first frame", path: "/lobby/pubsub/alerts/ws", first: `{"auth":"` + lobbySub + `"}`, topic: "alerts"},
		{name: "legacy alias", path: "/lobby/ws/subscribe/alerts", opts: header, topic: "alerts"},
		{name: "pattern with a literal star", path: "/lobby/pubsub/user:*/ws?pattern=true", opts: header, topic: "user:9"},
		{name: "the seed's pattern example", path: "/lobby/pubsub/user:*/ws?pattern=true", opts: header, topic: "user:123:events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.openBound(t, tt.path, tt.opts, tt.first)
			m := f.publish(t, "lobby", tt.topic, lobbyPub, `{"message":{"n":1}}`)
			c.expectMessage(m.ID)
			c.send(`{"type":"history","id":"1","topic":"alerts"}`)
			c.expectError("1", pubsub.CodePermissionDenied)
		})
	}
}

// TestTopicSocketOneMessagePerWebSocketMessage checks what the seed's
// browser clients rely on: on every single-topic route each WebSocket
// message is one message object, which JSON.parse(e.data) turns into the
// message, also in a burst, which the server writes many at a time.
func TestTopicSocketOneMessagePerWebSocketMessage(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	ctx := ctxT(t)
	pub, err := f.hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "backend"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	routes := []struct{ name, path, topic string }{
		{"pubsub route", "/lobby/pubsub/alerts/ws?token=" + lobbySub, "alerts"},
		{"legacy alias", "/lobby/ws/subscribe/alerts?token=" + lobbySub, "alerts"},
		{"pattern", "/lobby/pubsub/user:*/ws?pattern=true&token=" + lobbySub, "user:123:events"},
		{"client socket", f.mint(t, "lobby", "alerts", "").Path, "alerts"},
	}
	for _, r := range routes {
		t.Run(r.name, func(t *testing.T) {
			c := f.openBound(t, r.path, nil, "")
			// Up to 10 KB each, 1 MB in all: more than one write's worth.
			sent := make([]pubsub.Message, 200)
			for i := range sent {
				payload := fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 50*i))
				if sent[i], err = pub.Publish(ctx, pubsub.PublishRequest{Topic: r.topic, Payload: payload}); err != nil {
					t.Fatalf("Publish(%q) = %v", r.topic, err)
				}
			}
			for i, want := range sent {
				got := c.messageObject()
				if got.ID != want.ID || got.Topic != r.topic || !bytes.Equal(got.Payload, want.Payload) {
					t.Fatalf("WebSocket message %d: message %v on %q, want %v on %q with the published payload", i, got.ID, got.Topic, want.ID, r.topic)
				}
			}
			c.ping("1") // and nothing else came
		})
	}
}

func TestTopicSocketRefused(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{
		Authorize: func(_ context.Context, _ Identity, a pubsub.Access) error {
			if a.Topic == "secret" {
				return errors.New("no")
			}
			return nil
		},
	})
	t.Run("wildcard without pattern=true", func(t *testing.T) {
		f.dialRefused(t, "/lobby/pubsub/user:*/ws?token="+lobbySub, 400, pubsub.CodeInvalidTopicName)
	})
	t.Run("bad key", func(t *testing.T) {
		c := dialRaw(t, f.wsBase()+"/lobby/pubsub/alerts/ws?token=nope", nil)
		c.expectError("", pubsub.CodeUnauthenticated)
		c.expectClose(CloseUnauthenticated)
	})
	t.Run("refused topic", func(t *testing.T) {
		c := dialRaw(t, f.wsBase()+"/lobby/pubsub/secret/ws?token="+lobbySub, nil)
		c.expectError("", pubsub.CodePermissionDenied)
		c.expectClose(CloseUnauthenticated)
	})
}

// TestKeys shows the two kinds of key on the frame protocol: the subscribe
// key subscribes and reads history but never publishes; the publish key does
// everything; a key opens only its own room.
func TestKeys(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	sub := f.authedKey(t, "lobby", lobbySub+":bob")
	pub := f.authedKey(t, "lobby", lobbyPub+":alice")
	sub.send(`{"type":"subscribe","id":"1","topic":"chat"}`)
	sub.expect(typeSubscribed, "1")
	sub.send(`{"type":"publish","id":"2","topic":"chat","payload":1}`)
	sub.expectError("2", pubsub.CodePermissionDenied)
	pub.send(`{"type":"publish","id":"3","topic":"chat","payload":2}`)
	m := pub.expect(typePublished, "3").Message
	if m.From != "alice" {
		t.Errorf("From = %q, want the name after the key", m.From)
	}
	sub.expectMessage(m.ID)
	sub.send(`{"type":"history","id":"4","topic":"chat"}`)
	if h := sub.expect(typeHistory, "4"); len(h.Messages) != 1 {
		t.Errorf("history = %+v, want the one message", h.Messages)
	}
	for _, cred := range []string{otherPub, "", ":bob", lobbySub + "x"} {
		c := dialRaw(t, f.wsURL("lobby"), nil)
		c.send(`{"auth":"` + cred + `"}`)
		c.expectError("", pubsub.CodeUnauthenticated)
		c.expectClose(CloseUnauthenticated)
	}
}

// authedKey opens a frame protocol connection with cred and reads the
// welcome.
func (f *fixture) authedKey(tb testing.TB, room, cred string) *rawConn {
	tb.Helper()
	c := dialRaw(tb, f.wsURL(room), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + cred}}})
	c.expect(typeWelcome, "")
	return c
}

func TestKeyIdentity(t *testing.T) {
	t.Parallel()
	s := NewServer(nil, Options{Keys: testKeys})
	a, err := s.keyIdentity("lobby", lobbySub)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.keyIdentity("lobby", lobbySub)
	c, _ := s.keyIdentity("lobby", lobbyPub)
	if a.ClientID != b.ClientID || a.ClientID == c.ClientID || len(a.ClientID) != len("key-")+12 {
		t.Errorf("bare key ids %q, %q, %q: want one stable id per key", a.ClientID, b.ClientID, c.ClientID)
	}
	if a.Info != RoleSubscriber || c.Info != RolePublisher {
		t.Errorf("roles %v, %v", a.Info, c.Info)
	}
	if _, err := s.keyIdentity("lobby", lobbyPub+":bad\nname"); err == nil {
		t.Error("a name with a control character was accepted")
	}
}

// TestRoomPatternOverNetwork subscribes a Room on a network Client to a
// pattern and receives what HTTP publishes to matching topics.
func TestRoomPatternOverNetwork(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	ctx := ctxT(t)
	room, err := pubsub.Join(ctx, f.client, "lobby", &pubsub.JoinOptions{Token: lobbySub + ":carol"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := ctxWait()
		defer cancel()
		room.Leave(ctx)
	}()
	got := make(chan string, 4)
	if _, err := room.Subscribe(ctx, "user:*", func(m pubsub.Message) { got <- m.Topic }); err != nil {
		t.Fatal(err)
	}
	f.publish(t, "lobby", "users", lobbyPub, `{"message":0}`)
	f.publish(t, "lobby", "user:1:events", lobbyPub, `{"message":1}`)
	select {
	case name := <-got:
		if name != "user:1:events" {
			t.Errorf("user:* delivered %q, want user:1:events", name)
		}
	case <-time.After(waitTimeout):
		t.Fatal("user:* delivered nothing within waitTimeout")
	}
	if _, err := room.Publish(ctx, "user:*", 1); !errors.Is(err, pubsub.ErrInvalidTopicName) {
		t.Errorf("Publish(pattern) = %v, want INVALID_TOPIC_NAME", err)
	}
}
