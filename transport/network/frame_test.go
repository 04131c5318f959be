package network

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plazahq/plaza/pubsub"
)

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  request
	}{
		{"auth shorthand", `{"auth":"secret"}`, request{Type: typeAuth, Auth: "secret", HasAuth: true}},
		{"auth", `{"v":1,"type":"auth","id":"1","auth":""}`, request{Type: typeAuth, ID: "1", HasAuth: true}},
		{"publish", `{"v":1,"type":"publish","id":"2","topic":"chat","payload":{"a": [1, 2]},"to":["bob"],"metadata":{"k":"v"},"persist":false,"idempotencyKey":"k1"}`,
			request{Type: typePublish, ID: "2", Topic: "chat", Payload: json.RawMessage(`{"a": [1, 2]}`), To: []string{"bob"}, Metadata: map[string]string{"k": "v"}, NoPersist: true, IdempotencyKey: "k1"}},
		{"publish persisted", `{"type":"publish","topic":"chat","payload":"hi","persist":true}`,
			request{Type: typePublish, Topic: "chat", Payload: json.RawMessage(`"hi"`)}},
		{"subscribe", `{"type":"subscribe","id":"3","topic":"user:*","rate":2.5}`, request{Type: typeSubscribe, ID: "3", Topic: "user:*", Rate: 2.5}},
		{"unsubscribe", `{"type":"unsubscribe","id":"4","topic":"chat"}`, request{Type: typeUnsubscribe, ID: "4", Topic: "chat"}},
		{"history", `{"type":"history","id":"5","topic":"chat","before":"1904829283928846336","limit":10,"from":["a","b"]}`,
			request{Type: typeHistory, ID: "5", Topic: "chat", Before: 1904829283928846336, Limit: 10, From: []string{"a", "b"}}},
		{"history after", `{"type":"history","topic":"chat","after":"42","before":null}`, request{Type: typeHistory, Topic: "chat", After: 42}},
		{"ping", `{"type":"ping","id":"0000000000000000001"}`, request{Type: typePing, ID: "0000000000000000001"}},
		{"null members are absent", `{"v":null,"type":"ping","id":null}`, request{Type: typePing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeRequest([]byte(tt.frame))
			if err != nil {
				t.Fatalf("decodeRequest(%s) = %v", tt.frame, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decodeRequest(%s) (-want +got):\n%s", tt.frame, diff)
			}
		})
	}
}

// testMessage has every field set, with strings that need escaping.
var testMessage = pubsub.Message{
	ID:        1904829283928846336,
	Topic:     "dm:alice:bob",
	From:      "alice \"the\" <first>",
	To:        []string{"bob", "carol\\", "ünïcødé 🎉"},
	Payload:   json.RawMessage(`{"text":"hi\nthere","n":[1,2.5,null,true],"html":"<b>&amp;</b>"}`),
	Metadata:  map[string]string{"z": "last", "a": "tab\there", "ctl": "\x00\x1f\x7f", "": "empty key"},
	Timestamp: time.Date(2026, 3, 15, 12, 0, 0, 123456789, time.UTC),
	Persisted: true,
}

func TestAppendMessage(t *testing.T) {
	tests := []struct {
		name string
		m    pubsub.Message
	}{
		{"every field", testMessage},
		{"minimal", pubsub.Message{ID: 1, Topic: "t", From: "f", Payload: json.RawMessage(`1`), Timestamp: time.Unix(0, 0).UTC()}},
		{"zone is normalized", pubsub.Message{ID: 2, Topic: "t", From: "f", Payload: json.RawMessage(`"x"`), Timestamp: time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("X", 3600))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := appendMessage(nil, &tt.m)
			var got pubsub.Message
			if err := json.Unmarshal(enc, &got); err != nil {
				t.Fatalf("appendMessage = %s: %v", enc, err)
			}
			if diff := cmp.Diff(tt.m, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			if string(got.Payload) != string(tt.m.Payload) {
				t.Errorf("payload %s, want the publisher's bytes %s", got.Payload, tt.m.Payload)
			}
			// The same bytes encoding/json would decode to the same message.
			std, _ := json.Marshal(tt.m)
			var want pubsub.Message
			json.Unmarshal(std, &want)
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(pubsub.Message{}, "Payload")); diff != "" {
				t.Errorf("differs from encoding/json (-std +ours):\n%s", diff)
			}
		})
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `"quoted"`, `back\slash`, "\x00\x01\n\r\t\x1f", "<>&", "\u2028\u2029", "é🎉", "bad \xff utf8 \xc3", "\xed\xa0\x80"} {
		got := appendString(nil, s)
		var ours, std string
		if err := json.Unmarshal(got, &ours); err != nil {
			t.Errorf("appendString(%q) = %s: %v", s, got, err)
			continue
		}
		b, _ := json.Marshal(s)
		json.Unmarshal(b, &std)
		if ours != std {
			t.Errorf("appendString(%q) decodes to %q, encoding/json's to %q", s, ours, std)
		}
	}
}

func TestAppendError(t *testing.T) {
	tests := []struct {
		name string
		id   string
		err  error
		want string
	}{
		{"with id", "7", pubsub.Errorf(pubsub.CodePermissionDenied, "no"), `{"v":1,"type":"error","id":"7","error":{"code":"PERMISSION_DENIED","message":"no"}}`},
		{"retry after", "", &pubsub.Error{Code: pubsub.CodeRateLimitExceeded, RetryAfter: 1500 * time.Millisecond}, `{"v":1,"type":"error","error":{"code":"RATE_LIMIT_EXCEEDED","retryAfterMs":1500}}`},
		{"cause only", "", &pubsub.Error{Code: pubsub.CodeNetworkError, Err: errString("gone")}, `{"v":1,"type":"error","error":{"code":"NETWORK_ERROR","message":"gone"}}`},
		{"not a pubsub error", "1", errString("secret detail"), `{"v":1,"type":"error","id":"1","error":{"code":"INTERNAL_ERROR","message":"internal error"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendError(nil, tt.id, tt.err)); got != tt.want {
				t.Errorf("appendError = %s, want %s", got, tt.want)
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestClientFramesDecode checks that what the Go client sends decodes to the
// request it meant.
func TestClientFramesDecode(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		want  request
	}{
		{"publish", appendPublish(nil, "1", &pubsub.PublishRequest{Topic: "chat", Payload: []byte(" [1, {\"a\":\"<\"}]\n"), To: []string{"b"}, Metadata: map[string]string{"k": "v\n"}, NoPersist: true, IdempotencyKey: "key"}),
			request{Type: typePublish, ID: "1", Topic: "chat", Payload: json.RawMessage(`[1, {"a":"<"}]`), To: []string{"b"}, Metadata: map[string]string{"k": "v\n"}, NoPersist: true, IdempotencyKey: "key"}},
		{"subscribe", appendSubscribe(nil, "2", &pubsub.SubscribeRequest{Topic: "user:*:events", Rate: 0.1}), request{Type: typeSubscribe, ID: "2", Topic: "user:*:events", Rate: 0.1}},
		{"unsubscribe", appendUnsubscribe(nil, "3", "chat"), request{Type: typeUnsubscribe, ID: "3", Topic: "chat"}},
		{"history", appendHistoryRequest(nil, "4", &pubsub.HistoryRequest{Topic: "chat", After: 99, Limit: 50, From: []string{"x"}}), request{Type: typeHistory, ID: "4", Topic: "chat", After: 99, Limit: 50, From: []string{"x"}}},
		{"ping", appendPing(nil, "5"), request{Type: typePing, ID: "5"}},
		{"auth", appendAuth(nil, "tok\"en"), request{Type: typeAuth, Auth: "tok\"en", HasAuth: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeRequest(tt.frame)
			if err != nil {
				t.Fatalf("decodeRequest(%s) = %v", tt.frame, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decodeRequest(%s) (-want +got):\n%s", tt.frame, diff)
			}
		})
	}
}

// FuzzDecodeRequest feeds the frame decoder arbitrary bytes. It must never
// panic; what it accepts must survive a round trip through the Go client's
// encoders; and its error frames must be valid JSON.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"auth":"test-token:alice"}`,
		`{"v":1,"type":"publish","id":"1","topic":"chat","payload":{"text":"hi"},"to":["bob"],"metadata":{"lang":"en"},"persist":true,"idempotencyKey":"k-42"}`,
		`{"v":1,"type":"subscribe","id":"2","topic":"chat","rate":5}`,
		`{"v":1,"type":"unsubscribe","id":"3","topic":"chat"}`,
		`{"v":1,"type":"history","id":"4","topic":"chat","before":"1904829283928846336","limit":2,"from":["alice"]}`,
		`{"v":1,"type":"ping","id":"5"}`,
		`{"type":"ping","id":5}`,
		`{"type":"history","topic":"chat","limit":"5","before":5}`,
		`[{"type":"ping"}]`,
		`{"type":"publish","topic":"chat","payload":"\ud800","metadata":{"k":1}}`,
		"{\"type\":\"ping\",\"id\":\"\xff\"}",
		`{"TYPE":"PING","Id":"1"}`,
		`{"type":"publish","id":"6","topic":"chat","payload":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, perr := decodeRequest(data)
		if perr != nil {
			if b := appendError(nil, req.ID, perr); !json.Valid(b) {
				t.Fatalf("error frame %s is not valid JSON", b)
			}
			return
		}
		var again []byte
		switch req.Type {
		case typeAuth:
			again = appendAuth(nil, req.Auth)
			req.ID = ""
		case typePublish:
			if len(req.Payload) == 0 {
				return // the client never sends a publish without a payload
			}
			again = appendPublish(nil, req.ID, &pubsub.PublishRequest{Topic: req.Topic, Payload: req.Payload, To: req.To, Metadata: req.Metadata, NoPersist: req.NoPersist, IdempotencyKey: req.IdempotencyKey})
		case typeSubscribe:
			again = appendSubscribe(nil, req.ID, &pubsub.SubscribeRequest{Topic: req.Topic, Rate: req.Rate})
		case typeUnsubscribe:
			again = appendUnsubscribe(nil, req.ID, req.Topic)
		case typeHistory:
			again = appendHistoryRequest(nil, req.ID, &pubsub.HistoryRequest{Topic: req.Topic, Before: req.Before, After: req.After, Limit: req.Limit, From: req.From})
		case typePing:
			again = appendPing(nil, req.ID)
		default:
			t.Fatalf("decodeRequest accepted type %q", req.Type)
		}
		got, perr := decodeRequest(again)
		if perr != nil {
			t.Fatalf("re-encoded %s of %s fails: %v", again, data, perr)
		}
		if diff := cmp.Diff(req, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip of %s through %s (-first +second):\n%s", data, again, diff)
		}
	})
}

func TestCloseReason(t *testing.T) {
	long := pubsub.Errorf(pubsub.CodeSlowConsumer, "%s", strings.Repeat("é", 100))
	if r := closeReason(long); len(r) > 123 || !strings.HasPrefix(r, "SLOW_CONSUMER: ") {
		t.Errorf("closeReason = %q (%d bytes), want at most 123 bytes starting with the code", r, len(r))
	}
}
