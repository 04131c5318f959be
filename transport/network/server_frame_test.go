package network

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plazahq/plaza/pubsub"
)

func TestDecodeServerFrame(t *testing.T) {
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	deepest := strings.Repeat("[", 10000) + strings.Repeat("]", 10000) // as deep as encoding/json goes
	good := pubsub.Message{ID: 7, Topic: "chat", From: "alice", Payload: json.RawMessage(`{"n":1}`), Timestamp: time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC), Persisted: true}
	goodJSON := string(appendMessage(nil, &good))
	// bad is good with its payload or another member replaced.
	bad := func(member, value string) string {
		old := map[string]string{"payload": `{"n":1}`, "id": `"7"`, "timestamp": `"2026-03-15T12:00:00Z"`}[member]
		return strings.Replace(goodJSON, `"`+member+`":`+old, `"`+member+`":`+value, 1)
	}
	// skipped is good as a client that could not decode it sees it: without
	// its payload, unless edit restores it.
	skipped := func(edit func(m *pubsub.Message)) pubsub.Message {
		m := good
		m.Payload = nil
		edit(&m)
		m.Err = errors.New("set")
		return m
	}
	tests := []struct {
		name    string
		frame   string
		want    serverFrame
		wantErr bool
	}{
		{"whole", `{"v":1,"type":"messages","messages":[` + goodJSON + `]}`,
			serverFrame{V: 1, Type: typeMessages, Messages: []pubsub.Message{good}}, false},
		{"a message too deep between good ones", `{"v":1,"type":"messages","messages":[` + goodJSON + `,` + bad("payload", deep) + ` , ` + goodJSON + `]}`,
			serverFrame{V: 1, Type: typeMessages, Messages: []pubsub.Message{good, skipped(func(*pubsub.Message) {}), good}}, false},
		{"a payload as deep as encoding/json goes", `{"v":1,"type":"messages","messages":[` + bad("payload", deepest) + `]}`,
			serverFrame{V: 1, Type: typeMessages, Messages: []pubsub.Message{func() pubsub.Message { m := good; m.Payload = json.RawMessage(deepest); return m }()}}, false},
		{"a timestamp that is not one", `{"v":1,"type":"messages","messages":[` + bad("timestamp", `"yesterday"`) + `]}`,
			serverFrame{V: 1, Type: typeMessages, Messages: []pubsub.Message{skipped(func(m *pubsub.Message) { m.Payload, m.Timestamp = good.Payload, time.Time{} })}}, false},
		{"a numeric id", `{"v":1,"type":"messages","messages":[` + bad("id", `7`) + `]}`,
			serverFrame{V: 1, Type: typeMessages, Messages: []pubsub.Message{skipped(func(m *pubsub.Message) { m.Payload, m.ID = good.Payload, 0 })}}, false},
		{"a message that is not an object", `{"v":1,"type":"messages","messages":[5,` + goodJSON + `]}`,
			serverFrame{V: 1, Type: typeMessages, Messages: []pubsub.Message{{Err: errors.New("set")}, good}}, false},
		{"history reply", `{"v":1,"type":"history","id":"4","messages":[` + bad("payload", deep) + `],"hasMore":true}`,
			serverFrame{V: 1, Type: typeHistory, ID: "4", HasMore: true, Messages: []pubsub.Message{skipped(func(*pubsub.Message) {})}}, false},
		{"published reply", `{"v":1,"type":"published","id":"5","message":` + bad("payload", deep) + `}`,
			serverFrame{V: 1, Type: typePublished, ID: "5", Message: func() *pubsub.Message { m := skipped(func(*pubsub.Message) {}); return &m }()}, false},
		{"cut short", `{"v":1,"type":"messages","messages":[` + goodJSON,
			serverFrame{V: 1, Type: typeMessages}, true},
		{"a bad member after the id", `{"v":1,"type":"error","id":"6","error":5}`,
			serverFrame{V: 1, Type: typeError, ID: "6"}, true},
		{"not an object", `[` + goodJSON + `]`, serverFrame{}, true},
		{"data after the frame", `{"v":1,"type":"pong","messages":[` + deep + `]} {}`,
			serverFrame{V: 1, Type: typePong, Messages: []pubsub.Message{{Err: errors.New("set")}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeServerFrame([]byte(tt.frame))
			if (err != nil) != tt.wantErr {
				t.Fatalf("decodeServerFrame() error = %v, want an error: %v", err, tt.wantErr)
			}
			if err != nil {
				// What was read before the error, the id above all.
				got.Error = nil
			}
			// Only whether Err is set matters here, and that it is INVALID_PAYLOAD.
			setErr := cmp.Comparer(func(a, b error) bool { return (a == nil) == (b == nil) })
			if diff := cmp.Diff(tt.want, got, setErr, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("decodeServerFrame() (-want +got):\n%s", diff)
			}
			for _, m := range append(got.Messages, derefMessage(got.Message)...) {
				if m.Err != nil && !errors.Is(m.Err, pubsub.ErrInvalidPayload) {
					t.Errorf("message %v: Err = %v, want INVALID_PAYLOAD", m.ID, m.Err)
				}
			}
		})
	}
}

func derefMessage(m *pubsub.Message) []pubsub.Message {
	if m == nil {
		return nil
	}
	return []pubsub.Message{*m}
}

// FuzzPayloadRoundTrip holds the validator and the decoders to each other:
// whatever payload pubsub.CheckPayload accepts, wrapped in any frame, event
// or answer the Server sends, encoding/json decodes as it is, and so does
// the Go client, to the message that was sent, payload unchanged.
func FuzzPayloadRoundTrip(f *testing.F) {
	for _, s := range []string{
		`{"text":"hi"}`, `"plain"`, `1`, `null`, ` [1, {"a":"]]]"}] `, "{\n\"a\":\t[]\r\n}",
		`"\u2028 <b>&amp;</b> 🎉"`,
		strings.Repeat("[", pubsub.MaxPayloadDepth) + strings.Repeat("]", pubsub.MaxPayloadDepth),
		strings.Repeat(`{"a":`, pubsub.MaxPayloadDepth) + `1` + strings.Repeat("}", pubsub.MaxPayloadDepth),
		strings.Repeat("[", pubsub.MaxPayloadDepth+1) + strings.Repeat("]", pubsub.MaxPayloadDepth+1),
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if pubsub.CheckPayload(p) != nil {
			return
		}
		m := pubsub.Message{ID: 1904829283928846336, Topic: "chat", From: "alice", Payload: p,
			Timestamp: time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC), Persisted: true}
		want := m
		want.Payload = bytes.TrimSpace(p)
		page := &pubsub.HistoryPage{Messages: []pubsub.Message{m}, HasMore: true}
		frames := map[string][]byte{
			"messages":  append(append(append([]byte(messagesHead), appendMessage(nil, &m)...), ','), append(appendMessage(nil, &m), messagesTail...)...),
			"history":   appendHistory(nil, "1", page),
			"published": appendPublished(nil, "2", &m),
		}
		for name, frame := range frames {
			var std serverFrame
			if err := json.Unmarshal(frame, &std); err != nil {
				t.Fatalf("encoding/json cannot decode the %s frame of payload %q: %v", name, p, err)
			}
			got, err := decodeServerFrame(frame)
			if err != nil {
				t.Fatalf("decodeServerFrame(%s frame of payload %q) = %v", name, p, err)
			}
			for _, gm := range append(got.Messages, derefMessage(got.Message)...) {
				if diff := cmp.Diff(want, gm); diff != "" {
					t.Fatalf("%s frame of payload %q (-sent +decoded):\n%s", name, p, diff)
				}
			}
		}
		// The client's fast path, for the frames it takes.
		var d messagesDecoder
		if fr, ok := d.decode(frames["messages"]); ok {
			for _, gm := range fr.msgs {
				if diff := cmp.Diff(want, gm); diff != "" {
					t.Fatalf("messages frame of payload %q, fast path (-sent +decoded):\n%s", p, diff)
				}
			}
		}
		// An event's data, and the answer of the HTTP history route.
		_, data, _ := strings.Cut(string(appendEvent(nil, &m)), "\ndata: ")
		var em pubsub.Message
		if err := json.Unmarshal([]byte(strings.TrimSuffix(data, "\n\n")), &em); err != nil {
			t.Fatalf("encoding/json cannot decode the event of payload %q: %v", p, err)
		}
		if got, want := em.Payload, bytes.TrimSpace(bytes.Map(newlineToSpace, p)); !bytes.Equal(got, want) {
			t.Fatalf("event payload %q, want %q", got, want)
		}
		var answer struct{ Data pubsub.HistoryPage }
		if err := json.Unmarshal(append(append([]byte(`{"data":`), appendPage(nil, page)...), '}'), &answer); err != nil {
			t.Fatalf("encoding/json cannot decode the history answer of payload %q: %v", p, err)
		}
	})
}

// newlineToSpace is what an event does to line breaks outside strings.
func newlineToSpace(r rune) rune {
	if r == '\n' || r == '\r' {
		return ' '
	}
	return r
}
