package network

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/pubsub"
)

// messagesFrame returns a messages frame of ms, encoded as the Server does.
func messagesFrame(ms ...pubsub.Message) []byte {
	b := []byte(messagesHead)
	for i := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMessage(b, &ms[i])
	}
	return append(b, messagesTail...)
}

// messagesFrameSeeds are frames as the Server sends them, and variations
// of them that the fast path must leave to encoding/json or decode as it
// does.
func messagesFrameSeeds() []string {
	ts := time.Date(2026, 3, 15, 12, 0, 0, 123456789, time.UTC)
	plain := pubsub.Message{ID: 1904829283928846336, Topic: "chat", From: "alice", Payload: json.RawMessage(`{"text":"hi"}`), Timestamp: ts, Persisted: true}
	full := plain
	full.To = []string{"bob", "carol"}
	full.Metadata = map[string]string{"event": "order.updated", "k": "v"}
	full.Persisted = false
	full.Timestamp = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	odd := plain
	odd.From, odd.Payload = "ünï \"quoted\"", json.RawMessage(`"\u2028 <b>&amp;</b> 🎉"`)
	seeds := []string{
		string(messagesFrame(plain)),
		string(messagesFrame(plain, full)),
		string(messagesFrame(plain, odd)),
		string(benchMessagesFrame(1<<40, 3)),
		`{"v":1,"type":"messages","messages":[]}`,
		` { "v" : 1 , "type" : "messages" , "messages" : [ { "id" : "7" , "topic" : "a" , "payload" : [ 1 , 2 ] } ] } `,
		`{"messages":[{"payload":1,"id":"7"}],"type":"messages","v":1}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":null}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"-7","payload":1}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"99999999999999999999","payload":1}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"9223372036854775807","payload":1},{"id":"9223372036854775808","payload":1}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"0","payload":1},{"id":"007","payload":1}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1,"timestamp":"2026-02-30T00:00:00Z"}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1,"timestamp":"2026-03-15T12:00:00+01:00"}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1,"timestamp":"2026-03-15T12:00:00.5Z"}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1,"metadata":{"a":"1","a":"2"}}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1,"to":[]}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1,"Topic":"x"}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1,"topic":"a","topic":"b"}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1}],"id":"3"}`,
		`{"v":1,"type":"history","messages":[{"id":"7","payload":1}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1}]} x`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1,}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1}` + "\xff" + `]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","topic":"` + "\xff" + `","payload":1}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":"` + "\xff" + `"}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + `}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}]}`,
		// Names and timestamps the decoder remembers from message to message.
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1,"timestamp":"2026-03-15T12:00:00.5Z"},{"id":"8","payload":1,"timestamp":"2026-03-15T12:00:00Z"},{"id":"9","payload":1,"timestamp":"2026-03-15T12:00:00.1234567891Z"},{"id":"10","payload":1,"timestamp":"2026-03-15T12:00:00+01:00"}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","payload":1,"timestamp":"2026-03-15T12:00:00.5Z"},{"id":"8","payload":1,"timestamp":"2026-03-15T12:00:01.25Z"}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","topic":"a","from":"x","payload":1},{"id":"8","topic":"a","from":"a","payload":1},{"id":"9","topic":"b","from":"a","payload":1}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","to":["a","a","b"],"payload":1}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"7","tox":1,"payload":1}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"12345678901234567890","payload":1}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"","payload":1}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"1x","payload":1}]}`,
		`{"v":1,"type":"messages","messages":[{"id":"1`,
	}
	return seeds
}

// FuzzMessagesDecoder holds the fast path to encoding/json: a frame it
// takes decodes to the same messages with encoding/json and with
// decodeServerFrame, and every payload is a slice of its own.
func FuzzMessagesDecoder(f *testing.F) {
	for _, s := range messagesFrameSeeds() {
		f.Add([]byte(s))
	}
	warm := benchMessagesFrame(1<<40, 2) // names and a timestamp for the decoder to remember
	f.Fuzz(func(t *testing.T, data []byte) {
		// A fresh decoder, and one that remembers the names and the
		// timestamp of a frame before: what it remembers changes no
		// result.
		var d, dw messagesDecoder
		if _, ok := dw.decode(warm); !ok {
			t.Fatal("decode() refused the benchmark's frame")
		}
		fr, ok := d.decode(data)
		frw, okw := dw.decode(data)
		if ok != okw {
			t.Fatalf("decode(%q) took it: %v, after another frame: %v", data, ok, okw)
		}
		if !ok {
			return
		}
		got := fr.msgs
		if diff := cmp.Diff(got, frw.msgs); diff != "" {
			t.Fatalf("decode(%q) (-fresh +after another frame):\n%s", data, diff)
		}
		var std serverFrame
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatalf("decode(%q) took a frame encoding/json refuses: %v", data, err)
		}
		if std.Type != typeMessages || std.ID != "" {
			t.Fatalf("decode(%q) took a frame of type %q, id %q", data, std.Type, std.ID)
		}
		if diff := cmp.Diff(std.Messages, got); diff != "" {
			t.Fatalf("decode(%q) (-encoding/json +fast):\n%s", data, diff)
		}
		slow, err := decodeServerFrame(data)
		if err != nil {
			t.Fatalf("decodeServerFrame(%q) = %v", data, err)
		}
		if diff := cmp.Diff(slow.Messages, got); diff != "" {
			t.Fatalf("decode(%q) (-decodeServerFrame +fast):\n%s", data, diff)
		}
		for i, m := range got {
			if m.Timestamp.Location() != std.Messages[i].Timestamp.Location() {
				t.Errorf("message %d: timestamp in %v, encoding/json says %v", i, m.Timestamp.Location(), std.Messages[i].Timestamp.Location())
			}
			if cap(m.Payload) != len(m.Payload) {
				t.Errorf("message %d: payload of %d bytes has capacity %d: an append would overwrite the next", i, len(m.Payload), cap(m.Payload))
			}
		}
	})
}

// The fast path takes the frames the Server sends, which is what makes it
// fast, and leaves the rest to decodeServerFrame.
func TestMessagesDecoderTakes(t *testing.T) {
	seeds := messagesFrameSeeds()
	tests := []struct {
		name  string
		frame string
		want  bool
	}{
		{"one message", seeds[0], true},
		{"recipients and metadata", seeds[1], true},
		{"a string with escapes", seeds[2], false},
		{"the benchmark's frame", seeds[3], true},
		{"no messages", seeds[4], true},
		{"white space everywhere", seeds[5], true},
		{"members in another order", seeds[6], true},
		{"a null payload", seeds[7], false},
		{"an id past int64", seeds[10], false},
		{"ids with leading zeros", seeds[11], true},
		{"a timestamp with an offset", seeds[13], false},
		{"a member in another case", seeds[17], false},
		{"a repeated member", seeds[18], false},
		{"a history reply", seeds[20], false},
		{"data after the frame", seeds[21], false},
	}
	for _, tt := range tests {
		var d messagesDecoder
		if _, ok := d.decode([]byte(tt.frame)); ok != tt.want {
			t.Errorf("%s: decode() took it: %v, want %v", tt.name, ok, tt.want)
		}
	}
}

// Payloads are copied out of the frame, so the reader may reuse its buffer.
func TestMessagesDecoderCopies(t *testing.T) {
	frame := messagesFrame(pubsub.Message{ID: 7, Topic: "chat", From: "alice", Payload: json.RawMessage(`"hello"`), Timestamp: t0})
	var d messagesDecoder
	fr, ok := d.decode(frame)
	if !ok || len(fr.msgs) != 1 {
		t.Fatalf("decode() = %v, %v; want 1 message, true", fr, ok)
	}
	got := fr.msgs
	for i := range frame {
		frame[i] = 'x'
	}
	if string(got[0].Payload) != `"hello"` || got[0].Topic != "chat" || got[0].From != "alice" {
		t.Errorf("after the frame's buffer was overwritten: %+v", got[0])
	}
}

// Every message the Server encodes is read by serverMessage, straight
// through: the fast path is the Server's own form, with recipients,
// metadata, either persisted value and a timestamp without a fraction.
func TestServerMessageForm(t *testing.T) {
	ts := time.Date(2026, 3, 15, 12, 0, 0, 123456789, time.UTC)
	plain := pubsub.Message{ID: 1904829283928846336, Topic: "chat", From: "alice", Payload: json.RawMessage(`{"text":"hi"}`), Timestamp: ts, Persisted: true}
	full := plain
	full.To = []string{"bob", "carol"}
	full.Metadata = map[string]string{"event": "order.updated"}
	full.Persisted = false
	full.Timestamp = ts.Truncate(time.Second)
	for _, tt := range []struct {
		name string
		m    pubsub.Message
	}{{"plain", plain}, {"recipients, metadata, not persisted", full}} {
		b := appendMessage(nil, &tt.m)
		var d messagesDecoder
		var got pubsub.Message
		sc := new(decodeScratch)
		p := cursor{b: b}
		if !d.serverMessage(&p, &got, sc) || p.i != len(b) {
			t.Fatalf("%s: serverMessage(%s) = false or stopped at %d of %d bytes", tt.name, b, p.i, len(b))
		}
		got.Payload = b[sc.payloads[0].start:sc.payloads[0].end]
		if diff := cmp.Diff(tt.m, got); diff != "" {
			t.Errorf("%s: serverMessage(%s) (-sent +read):\n%s", tt.name, b, diff)
		}
	}
	// Any other form is left to the member-by-member reading.
	var d messagesDecoder
	p := cursor{b: []byte(`{"id":"7", "topic":"a","from":"b","payload":1,"timestamp":"2026-03-15T12:00:00Z","persisted":true}`)}
	if d.serverMessage(&p, new(pubsub.Message), new(decodeScratch)) {
		t.Error("serverMessage took a message with white space in it")
	}
}
