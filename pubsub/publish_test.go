package pubsub_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/plazahq/plaza/pubsub"
)

// rewriting is a Transport whose Conns change every publish request with
// edit before passing it on, as a middleware between a Room and a hub might.
type rewriting struct {
	pubsub.Transport
	edit func(*pubsub.PublishRequest)
}

func (w rewriting) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	c, err := w.Transport.Connect(ctx, req)
	if err != nil {
		return nil, err
	}
	return rewritingConn{c, w.edit}, nil
}

type rewritingConn struct {
	pubsub.Conn
	edit func(*pubsub.PublishRequest)
}

func (c rewritingConn) Publish(ctx context.Context, req pubsub.PublishRequest) (pubsub.Message, error) {
	c.edit(&req)
	return c.Conn.Publish(ctx, req)
}

// The Room checks a publish once and the hub trusts that check, but only for
// the topic and payload the Room checked: whatever replaces them on the way
// is checked by the hub again.
func TestHubChecksWhatTheRoomDidNot(t *testing.T) {
	tests := []struct {
		name string
		edit func(*pubsub.PublishRequest)
		want error
	}{
		{"payload replaced", func(r *pubsub.PublishRequest) { r.Payload = []byte(`{"unclosed":`) }, pubsub.ErrInvalidPayload},
		{"payload cut short", func(r *pubsub.PublishRequest) { r.Payload = r.Payload[:len(r.Payload)-1] }, pubsub.ErrInvalidPayload},
		{"payload emptied", func(r *pubsub.PublishRequest) { r.Payload = nil }, pubsub.ErrInvalidPayload},
		// The same slice, rewritten in place: the buffer-reusing idiom
		// append(p[:0], ...) and a plain copy.
		{"payload rewritten in its buffer", func(r *pubsub.PublishRequest) {
			r.Payload = append(r.Payload[:0], "{\"text\":\"hell\xff\"}"...)
		}, pubsub.ErrInvalidPayload},
		{"payload overwritten", func(r *pubsub.PublishRequest) { copy(r.Payload, `["text"`) }, pubsub.ErrInvalidPayload},
		{"topic replaced", func(r *pubsub.PublishRequest) { r.Topic = "no spaces" }, pubsub.ErrInvalidTopicName},
		{"topic emptied", func(r *pubsub.PublishRequest) { r.Topic = "" }, pubsub.ErrInvalidTopicName},
		{"too many recipients", func(r *pubsub.PublishRequest) { r.To = make([]string, pubsub.MaxRecipients+1) }, pubsub.ErrInvalidRequest},
		{"bad metadata", func(r *pubsub.PublishRequest) { r.Metadata = map[string]string{"": "x"} }, pubsub.ErrInvalidPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newHub(t)
			r := join(t, rewriting{hub, tt.edit}, "alice", nil)
			ctx, cancel := ctxWait()
			defer cancel()
			for _, payload := range []any{json.RawMessage(`{"text":"hello"}`), map[string]string{"text": "hello"}} {
				_, err := r.Publish(ctx, "chat", payload)
				if !errors.Is(err, tt.want) {
					t.Errorf("Publish(%T) through a Conn that changed the request = %v, want %v", payload, err, tt.want)
				}
			}
			page, err := r.GetHistory(ctx, "chat")
			if err != nil || len(page.Messages) != 0 {
				t.Errorf("history holds %d messages (%v), want none", len(page.Messages), err)
			}
		})
	}
}

// A request that is built by hand, not by a Room, is checked by the hub in
// full, even when it is a copy of one a Room built before.
func TestHubChecksRequestsBuiltByHand(t *testing.T) {
	hub := newHub(t)
	ctx, cancel := ctxWait()
	defer cancel()
	c, err := hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deep := strings.Repeat("[", pubsub.MaxPayloadDepth+1) + strings.Repeat("]", pubsub.MaxPayloadDepth+1)
	for _, p := range []string{`{"a":1`, "", "\"\xff\"", deep, `{"a":1}x`} {
		_, err := c.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(p)})
		if !errors.Is(err, pubsub.ErrInvalidPayload) {
			t.Errorf("Publish(%q) = %v, want INVALID_PAYLOAD", p, err)
		}
	}
}

// The payload and the idempotency key of a published message share one
// allocation; appending to the confirmed payload must not reach the key.
func TestPublishedPayloadIsItsOwn(t *testing.T) {
	hub := newHub(t)
	var keys []string
	tr := rewriting{hub, func(r *pubsub.PublishRequest) { keys = append(keys, r.IdempotencyKey) }}
	r := join(t, tr, "alice", nil)
	ctx, cancel := ctxWait()
	defer cancel()
	raw := json.RawMessage(`{"text":"hello"}`)
	m, err := r.Publish(ctx, "chat", raw)
	if err != nil {
		t.Fatal(err)
	}
	raw[2] = 'X' // the caller's slice is the caller's
	key := strings.Clone(keys[0])
	grown := append(m.Payload, `,"more":1`...)
	for i := len(m.Payload); i < len(grown); i++ {
		grown[i] = '#'
	}
	if keys[0] != key || key == "" {
		t.Errorf("idempotency key %q changed to %q when the payload was appended to", key, keys[0])
	}
	page, err := r.GetHistory(ctx, "chat")
	if err != nil || len(page.Messages) != 1 {
		t.Fatalf("history: %d messages, %v; want 1", len(page.Messages), err)
	}
	if got := string(page.Messages[0].Payload); got != `{"text":"hello"}` {
		t.Errorf("history holds payload %s, want the one published", got)
	}
}
