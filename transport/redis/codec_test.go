package redis

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plazahq/plaza/pubsub"
)

var codecCases = []struct {
	name string
	m    pubsub.Message
	key  string
}{
	{"plain", pubsub.Message{From: "alice", Payload: json.RawMessage(`{"text":"hi"}`), Timestamp: time.Unix(0, 1_700_000_000_123_456_789), Persisted: true}, ""},
	{"everything", pubsub.Message{
		From: "al:ice", To: []string{"bob", "", "c:3:x"}, Payload: json.RawMessage(`[1,"2:3",{}]`),
		Metadata:  map[string]string{"b": "2", "a": "", "z:": "1:x"},
		Timestamp: time.Date(2026, 3, 15, 12, 0, 0, 1, time.UTC),
	}, "key:1"},
	{"zero time, empty payload", pubsub.Message{}, ""},
	{"before 1970", pubsub.Message{From: "x", Payload: json.RawMessage(`null`), Timestamp: time.Unix(-5, 7)}, ""},
}

func TestRecordRoundTrip(t *testing.T) {
	for _, tt := range codecCases {
		t.Run(tt.name, func(t *testing.T) {
			tt.m.ID, tt.m.Topic = 1_900_000_000_000_000_123, "chat"
			rec := encodeRecord(&tt.m, tt.key)
			got, key, err := decodeRecord(tt.m.ID, tt.m.Topic, rec)
			if err != nil {
				t.Fatalf("decodeRecord(%q) = %v", rec, err)
			}
			if key != tt.key {
				t.Errorf("key = %q, want %q", key, tt.key)
			}
			if diff := cmp.Diff(tt.m, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("decodeRecord(encodeRecord(m)) (-want +got):\n%s", diff)
			}
			// Comparing the timestamp keys compares the times.
			later := tsKey(tt.m.Timestamp.Add(time.Nanosecond))
			if !tt.m.Timestamp.IsZero() && !(tsKey(tt.m.Timestamp) < later) {
				t.Errorf("tsKey(%v) = %s, not below tsKey of a nanosecond later %s", tt.m.Timestamp, tsKey(tt.m.Timestamp), later)
			}
		})
	}
}

func TestRecordBad(t *testing.T) {
	good := encodeRecord(&pubsub.Message{From: "a", To: []string{"b"}, Metadata: map[string]string{"k": "v"}, Payload: json.RawMessage(`1`), Timestamp: time.Unix(1, 0)}, "")
	bad := map[string][]byte{
		"empty":              nil,
		"short header":       good[:10],
		"wrong format":       append([]byte{'x'}, good[1:]...),
		"wrong flag":         append([]byte{'m', '7'}, good[2:]...),
		"timestamp digits":   append(append([]byte("m1"), "0000000000000000000x"...), good[headerLen:]...),
		"length past end":    append(append([]byte(nil), good[:headerLen]...), "99:a"...),
		"leading zero":       append(append([]byte(nil), good[:headerLen]...), "01:a0:0:0:"...),
		"no colon":           append(append([]byte(nil), good[:headerLen]...), "1"...),
		"metadata unordered": append(append([]byte(nil), good[:headerLen]...), "1:a0:0:2:1:b1:x1:a1:y"...),
	}
	for name, rec := range bad {
		if m, _, err := decodeRecord(1, "t", rec); err == nil {
			t.Errorf("%s: decodeRecord(%q) = %+v, want an error", name, rec, m)
		} else if perr := (*pubsub.Error)(nil); !errors.As(err, &perr) || perr.Code != pubsub.CodeInternal {
			t.Errorf("%s: decodeRecord(%q) error = %v, want INTERNAL_ERROR", name, rec, err)
		}
	}
}

// FuzzRecord checks that any bytes either fail to decode or decode to a
// message whose encoding is the same bytes, and never panic.
func FuzzRecord(f *testing.F) {
	for _, tt := range codecCases {
		f.Add(encodeRecord(&tt.m, tt.key))
	}
	f.Add([]byte("m1000000000000000000000:0:0:0:"))
	f.Fuzz(func(t *testing.T, rec []byte) {
		m, key, err := decodeRecord(42, "t", rec)
		if err != nil {
			return
		}
		if again := encodeRecord(&m, key); !bytes.Equal(again, rec) {
			t.Errorf("decodeRecord(%q) re-encodes as %q", rec, again)
		}
	})
}
