package transporttest

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/plazahq/plaza/pubsub"
)

func testTopicRules(t *testing.T, e *env) {
	r := e.join("alice")
	ctx := ctxT(t)
	for _, bad := range []string{"", "chat room", strings.Repeat("a", 129), "a/b", "user:*", "é"} {
		_, err := r.Publish(ctx, bad, body{N: 1})
		wantCode(t, "Publish("+bad+")", err, pubsub.ErrInvalidTopicName)
		_, err = r.Subscribe(ctx, bad+" ", func(pubsub.Message) {})
		wantCode(t, "Subscribe("+bad+" )", err, pubsub.ErrInvalidTopicName)
		_, err = r.GetHistory(ctx, bad)
		wantCode(t, "GetHistory("+bad+")", err, pubsub.ErrInvalidTopicName)
	}
	if n := len(e.rec.sent()); n != 0 {
		t.Errorf("invalid publishes reached the transport %d times, want 0", n)
	}
	subs, _ := e.rec.wire()
	if len(subs) != 0 {
		t.Errorf("invalid subscriptions reached the transport: %v", subs)
	}
	for _, good := range []string{"chat", "dm:alice:bob", "mods-only", "app.events.v2", "__system", strings.Repeat("a", 128), "Chat"} {
		publish(t, r, good, 1)
	}
	// Topics are case-sensitive.
	p := history(t, r, "chat")
	if len(p.Messages) != 1 {
		t.Errorf("history of %q has %d messages, want 1 (\"Chat\" is another topic)", "chat", len(p.Messages))
	}
}

func testPayloadLimits(t *testing.T, e *env) {
	r := e.join("alice")
	ctx := ctxT(t)
	exact := rawPayload(`"` + strings.Repeat("x", pubsub.MaxPayloadBytes-2) + `"`)
	if len(exact) != 32768 {
		t.Fatalf("test payload is %d bytes", len(exact))
	}
	if _, err := r.Publish(ctx, "big", exact); err != nil {
		t.Errorf("Publish(32768 bytes) = %v, want success", err)
	}
	_, err := r.Publish(ctx, "big", rawPayload(`"`+strings.Repeat("x", pubsub.MaxPayloadBytes-1)+`"`))
	wantCode(t, "Publish(32769 bytes)", err, pubsub.ErrPayloadTooLarge)
	// The cap applies after JSON encoding: 32767 '<' encode to six bytes each.
	_, err = r.Publish(ctx, "big", strings.Repeat("<", 6000))
	wantCode(t, "Publish(string that grows when encoded)", err, pubsub.ErrPayloadTooLarge)

	for name, v := range map[string]any{
		"func":    func() {},
		"channel": make(chan int),
		"NaN":     math.NaN(),
		"bad raw": rawPayload(`{"a":`),
		"latin-1": rawPayload("\"caf\xe9\""),
		"empty":   rawPayload(``),
	} {
		_, err := r.Publish(ctx, "chat", v)
		wantCode(t, "Publish("+name+")", err, pubsub.ErrInvalidPayload)
	}
	if n := len(e.rec.sent()); n != 1 {
		t.Errorf("the transport saw %d publishes, want 1 (only the valid one)", n)
	}
}

// nested returns a payload whose arrays nest depth levels, with an object
// at the bottom: {"n":1} wrapped in depth-1 arrays.
func nested(depth int) json.RawMessage {
	return rawPayload(strings.Repeat("[", depth-1) + `{"n":1}` + strings.Repeat("]", depth-1))
}

// nestedValue is nested(depth) as a Go value, for json.Marshal.
func nestedValue(depth int) any {
	var v any = map[string]int{"n": 1}
	for range depth - 1 {
		v = []any{v}
	}
	return v
}

func testPayloadDepth(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob")
	ctx := ctxT(t)
	in := newInbox()
	subscribe(t, bob, "deep", in.handle)

	for name, v := range map[string]any{
		"raw":                   nested(pubsub.MaxPayloadDepth + 1),
		"Go value":              nestedValue(pubsub.MaxPayloadDepth + 1),
		"object":                rawPayload(strings.Repeat(`{"a":`, pubsub.MaxPayloadDepth+1) + "1" + strings.Repeat("}", pubsub.MaxPayloadDepth+1)),
		"encoding/json's limit": rawPayload(strings.Repeat("[", 10000) + strings.Repeat("]", 10000)),
	} {
		_, err := alice.Publish(ctx, "deep", v)
		wantCode(t, fmt.Sprintf("Publish(%s nested too deeply)", name), err, pubsub.ErrInvalidPayload)
	}
	if n := len(e.rec.sent()); n != 0 {
		t.Errorf("payloads nested too deeply reached the transport %d times, want 0", n)
	}

	// At the limit a payload is stored and delivered, and the receiver can
	// decode it.
	deepest := nested(pubsub.MaxPayloadDepth)
	sent, err := alice.Publish(ctx, "deep", deepest)
	if err != nil {
		t.Fatalf("Publish(payload nested %d levels) = %v, want success", pubsub.MaxPayloadDepth, err)
	}
	if _, err := alice.Publish(ctx, "deep", nestedValue(pubsub.MaxPayloadDepth)); err != nil {
		t.Fatalf("Publish(Go value nested %d levels) = %v, want success", pubsub.MaxPayloadDepth, err)
	}
	for i, m := range []pubsub.Message{in.next(t), in.next(t)} {
		if !json.Valid(m.Payload) || string(m.Payload) != string(deepest) {
			t.Errorf("message %d delivered with payload %.80s, want %.80s", i, m.Payload, deepest)
		}
		if _, err := pubsub.Decode[any](m); err != nil {
			t.Errorf("Decode(message %d nested %d levels) = %v", i, pubsub.MaxPayloadDepth, err)
		}
	}
	p := history(t, bob, "deep")
	if len(p.Messages) != 2 || p.Messages[0].ID != sent.ID || string(p.Messages[0].Payload) != string(deepest) {
		t.Errorf("history of \"deep\" = %d messages, want the 2 at the limit and nothing deeper", len(p.Messages))
	}
}

func testHubValidatesAgain(t *testing.T, e *env) {
	ctx := ctxT(t)
	c, err := e.h.Transport.Connect(ctx, pubsub.ConnectRequest{Room: room, ClientID: "mallory"})
	if err != nil {
		t.Fatalf("Connect() = %v", err)
	}
	defer c.Close()
	tests := []struct {
		name string
		req  pubsub.PublishRequest
		want *pubsub.Error
	}{
		{"bad topic", pubsub.PublishRequest{Topic: "chat room", Payload: []byte(`1`)}, pubsub.ErrInvalidTopicName},
		{"pattern", pubsub.PublishRequest{Topic: "user:*", Payload: []byte(`1`)}, pubsub.ErrInvalidTopicName},
		{"too large", pubsub.PublishRequest{Topic: "chat", Payload: []byte(`"` + strings.Repeat("x", pubsub.MaxPayloadBytes-1) + `"`)}, pubsub.ErrPayloadTooLarge},
		{"not JSON", pubsub.PublishRequest{Topic: "chat", Payload: []byte(`{nope`)}, pubsub.ErrInvalidPayload},
		{"empty", pubsub.PublishRequest{Topic: "chat"}, pubsub.ErrInvalidPayload},
		{"not UTF-8", pubsub.PublishRequest{Topic: "chat", Payload: []byte("\"caf\xe9\"")}, pubsub.ErrInvalidPayload},
		{"nested too deeply", pubsub.PublishRequest{Topic: "chat", Payload: nested(pubsub.MaxPayloadDepth + 1)}, pubsub.ErrInvalidPayload},
	}
	for _, tt := range tests {
		_, err := c.Publish(ctx, tt.req)
		wantCode(t, "Conn.Publish("+tt.name+")", err, tt.want)
	}
	wantCode(t, "Conn.Subscribe(bad)", c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "a b"}), pubsub.ErrInvalidTopicName)
	_, err = c.History(ctx, pubsub.HistoryRequest{Topic: "chat", Before: 5, After: 3})
	wantCode(t, "Conn.History(before and after)", err, pubsub.ErrInvalidHistoryOpts)
	_, err = c.History(ctx, pubsub.HistoryRequest{Topic: "chat", Limit: 51})
	wantCode(t, "Conn.History(limit 51)", err, pubsub.ErrInvalidLimit)
	// The connection is still usable after every refusal, and none of the
	// refused publishes was stored.
	if _, err := c.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`{"n":1}`)}); err != nil {
		t.Errorf("Conn.Publish(valid) after refusals = %v", err)
	}
	if p, err := c.History(ctx, pubsub.HistoryRequest{Topic: "chat"}); err != nil || len(p.Messages) != 1 {
		t.Errorf("Conn.History(chat) = %d messages, %v; want only the valid one", len(p.Messages), err)
	}
}

func testNoSelfEcho(t *testing.T, e *env) {
	alice, alice2, bob := e.join("alice"), e.join("alice"), e.join("bob")
	own, twin, other := newInbox(), newInbox(), newInbox()
	subscribe(t, alice, "chat", own.handle)
	subscribe(t, alice2, "chat", twin.handle)
	subscribe(t, bob, "chat", other.handle)

	m := publish(t, alice, "chat", 1)
	for name, b := range map[string]*inbox{"bob": other, "alice's other Room": twin} {
		got := b.next(t)
		if diff := cmp.Diff(m, got); diff != "" {
			t.Errorf("%s received (-published +received):\n%s", name, diff)
		}
	}
	own.quiet(t, bob, "chat")
}

func testTo(t *testing.T, e *env) {
	alice, bob, carol := e.join("alice"), e.join("bob"), e.join("carol")
	bobIn, carolIn := newInbox(), newInbox()
	subscribe(t, bob, "chat", bobIn.handle)
	subscribe(t, carol, "chat", carolIn.handle)

	m := publish(t, alice, "chat", 1, pubsub.To("bob"))
	if diff := cmp.Diff([]string{"bob"}, m.To); diff != "" {
		t.Errorf("confirmed To (-want +got):\n%s", diff)
	}
	if got := bobIn.next(t); got.ID != m.ID {
		t.Errorf("bob received %v, want %v", got.ID, m.ID)
	}
	carolIn.quiet(t, alice, "chat")

	for _, tt := range []struct {
		r    *pubsub.Room
		want int
	}{{alice, 2}, {bob, 2}, {carol, 1}} {
		if p := history(t, tt.r, "chat"); len(p.Messages) != tt.want {
			t.Errorf("%s sees %d messages in history, want %d (a To message is visible only to sender and recipients)", tt.r.ClientID(), len(p.Messages), tt.want)
		}
	}
}

func testNotPersisted(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob")
	in := newInbox()
	subscribe(t, bob, "cursor", in.handle)
	m := publish(t, alice, "cursor", 7, pubsub.Persist(false))
	if m.Persisted {
		t.Error("Persist(false) message confirmed with Persisted = true")
	}
	if got := num(t, in.next(t)); got != 7 {
		t.Errorf("live message = %d, want 7", got)
	}
	kept := publish(t, alice, "cursor", 8)
	if !kept.Persisted {
		t.Error("default message confirmed with Persisted = false")
	}
	p := history(t, bob, "cursor")
	if diff := cmp.Diff([]int{8}, pageNums(t, p)); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

func testMetadata(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob")
	in := newInbox()
	subscribe(t, bob, "events", in.handle)
	md := map[string]string{"priority": "low", "source": "main-app"}
	m := publish(t, alice, "events", 1, pubsub.Metadata(md))
	if diff := cmp.Diff(md, in.next(t).Metadata); diff != "" {
		t.Errorf("live metadata (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(md, m.Metadata); diff != "" {
		t.Errorf("confirmed metadata (-want +got):\n%s", diff)
	}
	p := history(t, bob, "events")
	if len(p.Messages) != 1 {
		t.Fatalf("history has %d messages, want 1", len(p.Messages))
	}
	if diff := cmp.Diff(m, p.Messages[0]); diff != "" {
		t.Errorf("history message (-confirmed +stored):\n%s", diff)
	}
}

func testUnusedTopic(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob")
	in := newInbox()
	subscribe(t, bob, "never-used", in.handle)
	p := history(t, alice, "never-used")
	if p.Messages == nil || len(p.Messages) != 0 || p.HasMore {
		t.Errorf("history of an unused topic = %+v, want an empty page with HasMore false", p)
	}
	publish(t, alice, "never-used", 1)
	if got := num(t, in.next(t)); got != 1 {
		t.Errorf("first message = %d, want 1", got)
	}
}

func testIDsIncrease(t *testing.T, e *env) {
	alice, bob := e.join("alice"), e.join("bob")
	last := map[string]pubsub.ID{}
	for i := range 60 {
		r := alice
		if i%2 == 1 {
			r = bob
		}
		name := []string{"a", "b", "c"}[i%3]
		if !e.h.PerTopicIDs {
			name = "" // one sequence for the room
		}
		m := publish(t, r, []string{"a", "b", "c"}[i%3], i)
		if m.ID <= last[name] {
			t.Fatalf("publish %d to %q got id %v, not above the previous %v", i, m.Topic, m.ID, last[name])
		}
		last[name] = m.ID
	}
}

func testLeave(t *testing.T, e *env) {
	ctx := ctxT(t)
	alice := e.join("alice")
	sub := subscribe(t, alice, "chat", func(pubsub.Message) {})
	if err := alice.Leave(ctx); err != nil {
		t.Fatalf("Leave() = %v", err)
	}
	if err := alice.Leave(ctx); err != nil {
		t.Errorf("second Leave() = %v, want nil", err)
	}
	_, err := alice.Publish(ctx, "chat", 1)
	wantCode(t, "Publish after Leave", err, pubsub.ErrNotConnected)
	_, err = alice.Subscribe(ctx, "chat", func(pubsub.Message) {})
	wantCode(t, "Subscribe after Leave", err, pubsub.ErrNotConnected)
	_, err = alice.GetHistory(ctx, "chat")
	wantCode(t, "GetHistory after Leave", err, pubsub.ErrNotConnected)
	if err := sub.Unsubscribe(ctx); err != nil {
		t.Errorf("Unsubscribe after Leave = %v, want nil", err)
	}
}
