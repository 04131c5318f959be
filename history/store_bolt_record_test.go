package history

import (
	"bytes"
	"encoding/hex"
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
		key  string
	}{
		{"plain", pubsub.Message{From: "alice", Payload: json.RawMessage(`{"a":1}`), Timestamp: at}, ""},
		{"recipients", pubsub.Message{From: "alice", To: []string{"bob", "carol"}, Payload: json.RawMessage(`1`), Timestamp: at}, ""},
		{"metadata", pubsub.Message{From: "a", Metadata: map[string]string{"k": "v", "": "empty key", "z": ""}, Payload: json.RawMessage(`"x"`), Timestamp: at}, ""},
		{"everything empty", pubsub.Message{}, ""},
		{"before 1970", pubsub.Message{From: "old", Payload: json.RawMessage(`null`), Timestamp: time.Date(1969, 7, 20, 20, 17, 0, 0, time.UTC)}, ""},
		{"long strings", pubsub.Message{From: string(make([]byte, 300)), To: []string{string(make([]byte, 200))}, Payload: make([]byte, pubsub.MaxPayloadBytes), Timestamp: at}, ""},
		{"key", pubsub.Message{From: "alice", Payload: json.RawMessage(`{"a":1}`), Timestamp: at}, "c3f1a2b4d5e6f708:1"},
		{"key and everything", pubsub.Message{From: "alice", To: []string{"bob"}, Metadata: map[string]string{"k": "v"}, Payload: json.RawMessage(`[]`), Timestamp: at}, "k"},
		{"key, empty sender", pubsub.Message{Payload: json.RawMessage(`0`)}, "k"},
		{"long key", pubsub.Message{From: "alice", Payload: json.RawMessage(`0`), Timestamp: at}, string(bytes.Repeat([]byte{0x80}, 300))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := encodeRecord(&tt.m, tt.key)
			r, err := parseRecord(v)
			if err != nil {
				t.Fatalf("parseRecord(encodeRecord(%+v, %q)) = %v", tt.m, tt.key, err)
			}
			if string(r.key) != tt.key || string(recordKey(v)) != tt.key {
				t.Errorf("key = %q, recordKey = %q, want %q", r.key, recordKey(v), tt.key)
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

// TestRecordVersion1 pins the form of a message stored without a key: the
// one layout version 1 wrote for every message, which must stay readable.
func TestRecordVersion1(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	m := pubsub.Message{From: "alice", To: []string{"bob"}, Metadata: map[string]string{"k": "v"}, Payload: json.RawMessage(`{"a":1}`), Timestamp: at}
	// timestamp, "alice", one recipient "bob", one entry k=v, the payload
	const v1 = "1828ac068d8f4d15" + "05616c696365" + "0103626f62" + "01016b0176" + "7b2261223a317d"
	if got := hex.EncodeToString(encodeRecord(&m, "")); got != v1 {
		t.Errorf("encodeRecord without a key = %s, want the version 1 form %s", got, v1)
	}
	v, _ := hex.DecodeString(v1)
	r, err := parseRecord(v)
	if err != nil {
		t.Fatalf("parseRecord(version 1 record) = %v", err)
	}
	got := r.message(42, "chat")
	got.Payload = r.payload
	want := m
	want.ID, want.Topic, want.Persisted = 42, "chat", true
	if diff := cmp.Diff(want, got); diff != "" || len(r.key) != 0 {
		t.Errorf("version 1 record read as key %q and (-want +got):\n%s", r.key, diff)
	}
}

func TestRecordVisible(t *testing.T) {
	m := pubsub.Message{From: "alice", To: []string{"bob", "carol"}, Payload: json.RawMessage(`{}`)}
	r, err := parseRecord(encodeRecord(&m, "k"))
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
// query or a key lookup panic, and that a key lookup agrees with a full
// parse.
func FuzzParseRecord(f *testing.F) {
	f.Add(encodeRecord(&pubsub.Message{From: "alice", To: []string{"bob"}, Metadata: map[string]string{"k": "v"}, Payload: json.RawMessage(`{}`)}, ""))
	f.Add(encodeRecord(&pubsub.Message{From: "alice", To: []string{"bob"}, Metadata: map[string]string{"k": "v"}, Payload: json.RawMessage(`{}`)}, "key-1"))
	f.Add([]byte{})
	f.Add(make([]byte, 8))
	f.Add(append(make([]byte, 8), keyMarker[:]...))
	f.Add(append(make([]byte, 8), 0x80, 0x00, 0x05, 'k'))
	f.Fuzz(func(t *testing.T, v []byte) {
		k := recordKey(v)
		r, err := parseRecord(v)
		if err != nil {
			return
		}
		if !bytes.Equal(k, r.key) {
			t.Errorf("recordKey = %q, parseRecord found key %q", k, r.key)
		}
		r.visible(&Query{Viewer: "bob"})
		r.visible(&Query{Viewer: "x", From: []string{"alice"}})
		r.message(1, "chat")
	})
}

// FuzzRecordRoundTrip checks that every message and key read back as they
// were stored.
func FuzzRecordRoundTrip(f *testing.F) {
	f.Add(int64(1740830400123456789), "alice", "bob", "k", "v", "c3f1a2b4d5e6f708:1", []byte(`{"a":1}`))
	f.Add(int64(0), "", "", "", "", "", []byte{})
	f.Add(int64(-1), "\x80\x00", "", "\x80", "", "\x80\x00", []byte{0x80, 0x00})
	f.Fuzz(func(t *testing.T, ts int64, from, to, mdKey, mdValue, key string, payload []byte) {
		m := pubsub.Message{From: from, Payload: payload, Timestamp: fromUnixNano(ts)}
		if to != "" {
			m.To = []string{to}
		}
		if mdKey != "" {
			m.Metadata = map[string]string{mdKey: mdValue}
		}
		r, err := parseRecord(encodeRecord(&m, key))
		if err != nil {
			t.Fatalf("parseRecord(encodeRecord(%+v, %q)) = %v", m, key, err)
		}
		got := r.message(1, "chat")
		got.Payload = r.payload
		want := m
		want.ID, want.Topic, want.Persisted = 1, "chat", true
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" || string(r.key) != key {
			t.Errorf("round trip of key %q: got key %q and (-want +got):\n%s", key, r.key, diff)
		}
	})
}
