package history

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plazahq/plaza/pubsub"
)

func TestRecordRoundTrip(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name string
		m    pubsub.Message
	}{
		{"plain", pubsub.Message{From: "alice", Payload: json.RawMessage(`{"a":1}`), Timestamp: at}},
		{"recipients", pubsub.Message{From: "alice", To: []string{"bob", "carol"}, Payload: json.RawMessage(`1`), Timestamp: at}},
		{"metadata", pubsub.Message{From: "a", Metadata: map[string]string{"k": "v", "": "empty key", "z": ""}, Payload: json.RawMessage(`"x"`), Timestamp: at}},
		{"everything empty", pubsub.Message{}},
		{"before 1970", pubsub.Message{From: "old", Payload: json.RawMessage(`null`), Timestamp: time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC)}},
		{"long strings", pubsub.Message{From: string(make([]byte, 300)), To: []string{string(make([]byte, 200))}, Payload: make([]byte, pubsub.MaxPayloadBytes), Timestamp: at}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := encodeRecord(&tt.m)
			r, err := parseRecord(v)
			if err != nil {
				t.Fatalf("parseRecord(encodeRecord(%+v)) = %v", tt.m, err)
			}
			got := r.message(42, "chat")
			got.Payload = r.payload
			want := tt.m
			want.ID, want.Topic, want.Persisted = 42, "chat", true
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			if recordTS(v) != unixNano(tt.m.Timestamp) {
				t.Errorf("recordTS = %d, want %d", recordTS(v), unixNano(tt.m.Timestamp))
			}
		})
	}
}

func TestRecordVisible(t *testing.T) {
	m := pubsub.Message{From: "alice", To: []string{"bob", "carol"}, Payload: json.RawMessage(`{}`)}
	r, err := parseRecord(encodeRecord(&m))
	if err != nil {
		t.Fatal(err)
	}
	for _, viewer := range []string{"alice", "bob", "carol", "dave", ""} {
		for _, from := range [][]string{nil, {"alice"}, {"bob"}} {
			q := Query{Viewer: viewer, From: from}
			want := m.VisibleTo(viewer) && (from == nil || from[0] == "alice")
			if got := r.visible(&q); got != want {
				t.Errorf("visible(Viewer %q, From %q) = %t, want %t", viewer, from, got, want)
			}
		}
	}
}

// FuzzParseRecord checks that no stored value, however damaged, makes a
// query panic.
func FuzzParseRecord(f *testing.F) {
	f.Add(encodeRecord(&pubsub.Message{From: "alice", To: []string{"bob"}, Metadata: map[string]string{"k": "v"}, Payload: json.RawMessage(`{}`)}))
	f.Add([]byte{})
	f.Add(make([]byte, 8))
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := parseRecord(v)
		if err != nil {
			return
		}
		r.visible(&Query{Viewer: "bob"})
		r.visible(&Query{Viewer: "x", From: []string{"alice"}})
		r.message(1, "chat")
	})
}
