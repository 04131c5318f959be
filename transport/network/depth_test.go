package network

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/internal/jsonvalid"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// maxEnvelopeDepth is the most levels any answer of the Server wraps around a
// payload: {"data":{"messages":[{…,"payload":…}]}} from the HTTP history
// route. pubsub.MaxPayloadDepth's documentation counts on it.
const maxEnvelopeDepth = 4

// nestedPayload returns a payload of arrays nested depth levels deep.
func nestedPayload(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// TestPayloadDepthRefused sends payloads nested too deeply through every
// route that publishes: each fails with INVALID_PAYLOAD, the connection stays
// usable, and nothing is stored.
func TestPayloadDepthRefused(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	tests := []struct {
		name  string
		depth int
		id    string // of the error frame
	}{
		{"one level too deep", pubsub.MaxPayloadDepth + 1, "1"},
		// The frame or body around it nests deeper than encoding/json
		// decodes, so the frame's id is unknown.
		{"beyond encoding/json", jsonvalid.StdDepth, ""},
	}
	for _, tt := range tests {
		payload := nestedPayload(tt.depth)
		t.Run("WebSocket/"+tt.name, func(t *testing.T) {
			c := dialRaw(t, f.wsURL("lobby"), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + lobbyPub + ":alice"}}})
			c.expect(typeWelcome, "")
			c.send(`{"type":"publish","id":"1","topic":"deep","payload":` + payload + `}`)
			c.expectError(tt.id, pubsub.CodeInvalidPayload)
			c.ping("2")
		})
		t.Run("HTTP/"+tt.name, func(t *testing.T) {
			r := f.do(t, http.MethodPost, "/lobby/pubsub/deep/publish", lobbyPub, "application/json", `{"message":`+payload+`}`)
			if r.status != http.StatusBadRequest || r.env.Error == nil || r.env.Error.Code != pubsub.CodeInvalidPayload {
				t.Errorf("POST publish of a payload nested %d levels = %d %s, want 400 %s", tt.depth, r.status, clip(r.raw, 200), pubsub.CodeInvalidPayload)
			}
		})
	}
	r := f.do(t, http.MethodGet, "/lobby/pubsub/deep/history", lobbySub, "", "")
	var page pubsub.HistoryPage
	if err := json.Unmarshal(r.env.Data, &page); err != nil || len(page.Messages) != 0 {
		t.Errorf("history after refused publishes = %s, want no messages", r.raw)
	}
}

// TestDeepestPayloadReachesEveryClient publishes a payload at
// pubsub.MaxPayloadDepth and reads it back through every route that hands
// out messages: each answer decodes, holds the payload as it was published,
// and nests at most maxEnvelopeDepth levels more.
func TestDeepestPayloadReachesEveryClient(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	ctx := ctxT(t)
	deepest := nestedPayload(pubsub.MaxPayloadDepth)

	// A Go Room over the network.
	errs := make(chan error, 16)
	bob, err := pubsub.Join(ctx, f.client, "lobby", &pubsub.JoinOptions{Token: lobbySub + ":bob", OnError: func(err error) { errs <- err }})
	if err != nil {
		t.Fatalf("Join() = %v", err)
	}
	defer bob.Leave(ctx)
	got := make(chan pubsub.Message, 1)
	if _, err := bob.Subscribe(ctx, "deep", func(m pubsub.Message) { got <- m }); err != nil {
		t.Fatalf("Subscribe() = %v", err)
	}
	// A raw WebSocket, as a browser holds it, and an event stream.
	carol := dialRaw(t, f.wsURL("lobby"), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + lobbySub + ":carol"}}})
	carol.expect(typeWelcome, "")
	carol.send(`{"type":"subscribe","id":"1","topic":"deep"}`)
	carol.expect(typeSubscribed, "1")
	sse := f.openSSE(t, "/lobby/pubsub/deep/subscribe?token="+lobbySub, nil)

	// check decodes what a route answered into v, and checks its depth.
	check := func(route string, raw []byte, envelope int, v any) {
		t.Helper()
		if err := json.Unmarshal(raw, v); err != nil {
			t.Errorf("%s: %v in %.120s", route, err, raw)
		}
		if err := jsonvalid.Check(raw, pubsub.MaxPayloadDepth+envelope); err != nil {
			t.Errorf("%s: answer nests more than %d levels around the payload: %v", route, envelope, err)
		}
		if envelope > maxEnvelopeDepth {
			t.Errorf("%s wraps the payload in %d levels, more than maxEnvelopeDepth", route, envelope)
		}
	}
	payloadOf := func(route string, ms []pubsub.Message) {
		t.Helper()
		if len(ms) != 1 || string(ms[0].Payload) != deepest {
			t.Errorf("%s: %d messages, want 1 with the payload as published", route, len(ms))
		}
	}

	r := f.do(t, http.MethodPost, "/lobby/pubsub/deep/publish", lobbyPub+":alice", "application/json", `{"message":`+deepest+`}`)
	if r.status != http.StatusOK {
		t.Fatalf("POST publish of a payload nested %d levels = %d %s, want 200", pubsub.MaxPayloadDepth, r.status, clip(r.raw, 200))
	}
	var published struct{ Data pubsub.Message }
	check("HTTP publish", []byte(r.raw), 2, &published)
	payloadOf("HTTP publish", []pubsub.Message{published.Data})

	select {
	case m := <-got:
		payloadOf("Go Room", []pubsub.Message{m})
		if _, err := pubsub.Decode[any](m); err != nil {
			t.Errorf("Decode() in the Go Room = %v", err)
		}
	case err := <-errs:
		t.Fatalf("the Go Room reported %v, want the message", err)
	case <-time.After(waitTimeout):
		t.Fatal("the Go Room did not receive the message")
	}

	raw, err := carol.read()
	if err != nil {
		t.Fatalf("WebSocket read = %v, want the messages frame", err)
	}
	var frame serverFrame
	check("WebSocket messages", raw, 3, &frame)
	payloadOf("WebSocket messages", frame.Messages)

	ev := sse.next()
	for ev.comment {
		ev = sse.next()
	}
	var m pubsub.Message
	check("event stream", []byte(ev.data), 1, &m)
	payloadOf("event stream", []pubsub.Message{m})

	carol.send(`{"type":"history","id":"2","topic":"deep"}`)
	if raw, err = carol.read(); err != nil {
		t.Fatalf("WebSocket read = %v, want the history frame", err)
	}
	frame = serverFrame{}
	check("WebSocket history", raw, 3, &frame)
	payloadOf("WebSocket history", frame.Messages)

	r = f.do(t, http.MethodGet, "/lobby/pubsub/deep/history", lobbySub, "", "")
	var hist struct{ Data pubsub.HistoryPage }
	check("HTTP history", []byte(r.raw), 4, &hist)
	payloadOf("HTTP history", hist.Data.Messages)

	page, err := bob.GetHistory(ctx, "deep")
	if err != nil {
		t.Fatalf("GetHistory() in the Go Room = %v", err)
	}
	payloadOf("Go Room history", page.Messages)
	if s := bob.Stats(); s.Reconnects != 0 {
		t.Errorf("the Go Room reconnected %d times, want never", s.Reconnects)
	}
}
