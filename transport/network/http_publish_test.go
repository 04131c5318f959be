package network

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

func TestHTTPPublish(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	sub, err := f.hub.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby", ClientID: "watcher"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Subscribe(ctxT(t), pubsub.SubscribeRequest{Topic: "alerts"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		path        string
		key         string
		contentType string
		body        string
		want        pubsub.Message // ID and Timestamp are not compared
	}{
		{
			name: "string message", path: "/lobby/pubsub/alerts/publish", key: lobbyPub,
			body: `{"message": "Server restarted"}`,
			want: pubsub.Message{Topic: "alerts", Payload: json.RawMessage(`"Server restarted"`), Persisted: true},
		},
		{
			name: "structured message", path: "/lobby/pubsub/alerts/publish", key: lobbyPub,
			body: `{"message": {"type": "login", "userId": "123"}}`,
			want: pubsub.Message{Topic: "alerts", Payload: json.RawMessage(`{"type": "login", "userId": "123"}`), Persisted: true},
		},
		{
			name: "every option", path: "/lobby/pubsub/alerts/publish", key: lobbyPub + ":ops",
			body: `{"message": 42, "to": ["watcher"], "metadata": {"lang": "en"}, "persist": false, "idempotencyKey": "k1"}`,
			want: pubsub.Message{Topic: "alerts", From: "ops", To: []string{"watcher"}, Payload: json.RawMessage(`42`), Metadata: map[string]string{"lang": "en"}},
		},
		{
			name: "plain text body", path: "/lobby/pubsub/alerts/publish", key: lobbyPub, contentType: "text/plain; charset=utf-8",
			body: "disk \"almost\" full\n",
			want: pubsub.Message{Topic: "alerts", Payload: json.RawMessage(`"disk \"almost\" full\n"`), Persisted: true},
		},
		{
			name: "legacy alias", path: "/lobby/publish/alerts", key: lobbyPub,
			body: `{"message": null}`,
			want: pubsub.Message{Topic: "alerts", Payload: json.RawMessage(`null`), Persisted: true},
		},
		{
			name: "raw Authorization header", path: "/lobby/pubsub/alerts/publish", key: "raw:" + lobbyPub,
			body: `{"message": [1, 2]}`,
			want: pubsub.Message{Topic: "alerts", Payload: json.RawMessage(`[1, 2]`), Persisted: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.contentType
			if ct == "" {
				ct = "application/json"
			}
			req, _ := http.NewRequestWithContext(ctxT(t), http.MethodPost, f.ts.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", ct)
			if key, ok := strings.CutPrefix(tt.key, "raw:"); ok {
				req.Header.Set("Authorization", key) // as the seed's examples send it
			} else {
				req.Header.Set("Authorization", "Bearer "+tt.key)
			}
			resp, err := f.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var env envelope
			if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || resp.StatusCode != http.StatusOK || env.Data == nil {
				t.Fatalf("POST %s = %d, %+v, %v; want 200 with data", tt.path, resp.StatusCode, env.Error, err)
			}
			var got pubsub.Message
			if err := json.Unmarshal(env.Data, &got); err != nil {
				t.Fatal(err)
			}
			if got.ID == 0 || got.Timestamp.IsZero() || got.From == "" {
				t.Errorf("confirmed message %+v lacks id, timestamp or sender", got)
			}
			want := tt.want
			want.ID, want.Timestamp = got.ID, got.Timestamp
			if want.From == "" {
				want.From = got.From
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("confirmed message (-want +got):\n%s", diff)
			}
			select {
			case m := <-sub.Messages():
				if m.ID != got.ID || string(m.Payload) != string(want.Payload) {
					t.Errorf("subscriber received %v %s, want %v %s", m.ID, m.Payload, got.ID, want.Payload)
				}
			case <-time.After(waitTimeout):
				t.Fatal("the subscriber received nothing")
			}
		})
	}
}

func TestHTTPPublishRefused(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	big := `{"message":"` + strings.Repeat("x", pubsub.MaxPayloadBytes) + `"}`
	huge := `{"message":"` + strings.Repeat("x", DefaultMaxFrameBytes) + `"}`
	tests := []struct {
		name   string
		path   string
		key    string
		body   string
		status int
		code   pubsub.Code
	}{
		{"no key", "/lobby/pubsub/alerts/publish", "", `{"message":1}`, 401, pubsub.CodeUnauthenticated},
		{"unknown key", "/lobby/pubsub/alerts/publish", "nope", `{"message":1}`, 401, pubsub.CodeUnauthenticated},
		{"key of another room", "/lobby/pubsub/alerts/publish", otherPub, `{"message":1}`, 401, pubsub.CodeUnauthenticated},
		{"unknown room", "/attic/pubsub/alerts/publish", lobbyPub, `{"message":1}`, 401, pubsub.CodeUnauthenticated},
		{"subscribe key", "/lobby/pubsub/alerts/publish", lobbySub, `{"message":1}`, 403, pubsub.CodePermissionDenied},
		{"subscribe key with a name", "/lobby/pubsub/alerts/publish", lobbySub + ":bob", `{"message":1}`, 403, pubsub.CodePermissionDenied},
		{"pattern", "/lobby/pubsub/user:*/publish", lobbyPub, `{"message":1}`, 400, pubsub.CodeInvalidTopicName},
		{"'>'", "/lobby/pubsub/user:%3E/publish", lobbyPub, `{"message":1}`, 400, pubsub.CodeInvalidTopicName},
		{"bad topic", "/lobby/pubsub/a%20b/publish", lobbyPub, `{"message":1}`, 400, pubsub.CodeInvalidTopicName},
		{"no message", "/lobby/pubsub/alerts/publish", lobbyPub, `{"payload":1}`, 400, pubsub.CodeInvalidPayload},
		{"malformed JSON", "/lobby/pubsub/alerts/publish", lobbyPub, `{"message":`, 400, pubsub.CodeInvalidRequest},
		{"not an object", "/lobby/pubsub/alerts/publish", lobbyPub, `[1]`, 400, pubsub.CodeInvalidRequest},
		{"bad to", "/lobby/pubsub/alerts/publish", lobbyPub, `{"message":1,"to":"bob"}`, 400, pubsub.CodeInvalidRequest},
		{"bad metadata", "/lobby/pubsub/alerts/publish", lobbyPub, `{"message":1,"metadata":{"a":1}}`, 400, pubsub.CodeInvalidPayload},
		{"bad persist", "/lobby/pubsub/alerts/publish", lobbyPub, `{"message":1,"persist":"no"}`, 400, pubsub.CodeInvalidRequest},
		{"message too large", "/lobby/pubsub/alerts/publish", lobbyPub, big, 413, pubsub.CodePayloadTooLarge},
		{"body too large", "/lobby/pubsub/alerts/publish", lobbyPub, huge, 413, pubsub.CodePayloadTooLarge},
		{"invalid UTF-8", "/lobby/pubsub/alerts/publish", lobbyPub, "{\"message\":\"\xff\"}", 400, pubsub.CodeInvalidPayload},
		{"invalid room name", "/a%20b/pubsub/alerts/publish", lobbyPub, `{"message":1}`, 401, pubsub.CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(t, http.MethodPost, tt.path, tt.key, "application/json", tt.body)
			if r.status != tt.status || r.env.Error == nil || r.env.Error.Code != tt.code {
				t.Errorf("POST %s %s = %d %s, want %d %s", tt.path, clip(tt.body, 40), r.status, clip(r.raw, 200), tt.status, tt.code)
			}
		})
	}
}

func TestHTTPPublishIdempotent(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	body := `{"message":"once","idempotencyKey":"order-42"}`
	first := f.publish(t, "lobby", "orders", lobbyPub, body)
	again := f.publish(t, "lobby", "orders", lobbyPub, body)
	if again.ID != first.ID {
		t.Errorf("a repeated idempotency key published %v again after %v, want the same message", again.ID, first.ID)
	}
	r := f.do(t, http.MethodGet, "/lobby/pubsub/orders/history", lobbySub, "", "")
	var page pubsub.HistoryPage
	if err := json.Unmarshal(r.env.Data, &page); err != nil || len(page.Messages) != 1 {
		t.Errorf("history after two publishes with one key = %s, %v; want one message", r.raw, err)
	}
}

// TestHTTPPublishRateLimit shows the per-room cap over a rolling minute: the
// publishes of the last 60 seconds count, not those of the current
// calendar minute, and Retry-After says when the oldest leaves the window.
func TestHTTPPublishRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, memory.Options{}, Options{
		PublishPerMinute: 3,
		Keys: func(room string) (RoomKeys, bool) {
			k, ok := testKeys(room)
			if room == "other" {
				k.PublishPerMinute = -1 // no cap
			}
			return k, ok
		},
	})
	step := func(t *testing.T, room, key string, wantStatus int, wantRetry string) {
		t.Helper()
		r := f.do(t, http.MethodPost, "/"+room+"/pubsub/news/publish", key, "application/json", `{"message":1}`)
		if r.status != wantStatus || r.header.Get("Retry-After") != wantRetry {
			t.Fatalf("publish at +%v = %d (Retry-After %q) %s, want %d (Retry-After %q)",
				f.clock.Now().Sub(t0), r.status, r.header.Get("Retry-After"), r.raw, wantStatus, wantRetry)
		}
		if wantStatus == http.StatusTooManyRequests && r.env.Error.Code != pubsub.CodeRateLimitExceeded {
			t.Fatalf("refused publish has code %s, want RATE_LIMIT_EXCEEDED", r.env.Error.Code)
		}
	}
	step(t, "lobby", lobbyPub, 200, "")
	step(t, "lobby", lobbyPub+":another-sender", 200, "")
	f.clock.Advance(30 * time.Second)
	step(t, "lobby", lobbyPub, 200, "")
	step(t, "lobby", lobbyPub, 429, "30") // the two of t0 leave at t0+60s
	for range 5 {
		step(t, "other", otherPub, 200, "") // another room, uncapped
	}
	f.clock.Advance(29*time.Second + 500*time.Millisecond)
	step(t, "lobby", lobbyPub, 429, "1")
	f.clock.Advance(500 * time.Millisecond) // t0+60s
	step(t, "lobby", lobbyPub, 200, "")
	step(t, "lobby", lobbyPub, 200, "")
	step(t, "lobby", lobbyPub, 429, "30") // a fixed minute would have let a third through
	f.clock.Advance(30 * time.Second)
	step(t, "lobby", lobbyPub, 200, "")
}

func FuzzDecodePublishBody(f *testing.F) {
	for _, seed := range []struct{ ct, body string }{
		{"application/json", `{"message":"Server restarted"}`},
		{"application/json", `{"message":{"type":"login","userId":"123"},"to":["bob"],"metadata":{"a":"b"},"persist":false,"idempotencyKey":"k"}`},
		{"", `{"message":null}`},
		{"text/plain; charset=utf-8", "hello\nworld"},
		{"text/plain", "\xff"},
		{"application/json", `{"message":1,"to":"bob"}`},
		{"application/json", `{"message":`},
		{"application/json", `[]`},
		{"multipart/form-data; boundary=x", `{"message":1}`},
		{"application/json", `{"message":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`},
	} {
		f.Add(seed.ct, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		p, perr := decodePublishBody(ct, body)
		if perr != nil {
			if perr.Code == "" || perr.Message == "" {
				t.Fatalf("decodePublishBody error without code or message: %+v", perr)
			}
			if httpStatus(perr.Code) >= 500 {
				t.Fatalf("decodePublishBody(%q) = %v: a client error must not be a 5xx", body, perr)
			}
			return
		}
		if !json.Valid(p.Message) {
			t.Fatalf("decodePublishBody(%q) accepted the message %q, which is not JSON", body, p.Message)
		}
	})
}
