package socketio

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/pubsub"
)

func TestPublishRefusesBadCredentials(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	app, other := f.app(t), f.app(t)
	rotated := f.app(t)
	if _, err := f.reg.Rotate(context.Background(), rotated.AppID, KeyPublish); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		appID, key string
		status     int
		code       pubsub.Code
		says       string // in the message
	}{
		{"no X-App-Id", "", app.PublishKey, 401, pubsub.CodeUnauthenticated, "X-App-Id"},
		{"no key", app.AppID, "", 401, pubsub.CodeUnauthenticated, "Authorization: Bearer"},
		{"unknown app", "app_nosuchapp", app.PublishKey, 401, pubsub.CodeUnauthenticated, "unknown App ID"},
		{"wrong key", app.AppID, "pk_live_wrong", 401, pubsub.CodeUnauthenticated, "wrong publish key"},
		{"other app's publish key", app.AppID, other.PublishKey, 401, pubsub.CodeUnauthenticated, "wrong publish key"},
		{"other app's subscribe key", app.AppID, other.SubscribeKey, 401, pubsub.CodeUnauthenticated, "subscribe key (sub_live_…) never publishes"},
		{"subscribe key", app.AppID, app.SubscribeKey, 403, pubsub.CodePermissionDenied, "not the subscribe key"},
		{"rotated publish key", rotated.AppID, rotated.PublishKey, 401, pubsub.CodeUnauthenticated, "wrong publish key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, a, resp := f.publish(t, tt.appID, tt.key, seedBody)
			if status != tt.status || a.Error == nil || a.Error.Code != tt.code || !strings.Contains(a.Error.Message, tt.says) {
				t.Errorf("POST /publish = %d %s; want %d %s saying %q", status, a.raw, tt.status, tt.code, tt.says)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if status == 401 && resp.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
		})
	}
	if got := f.hub.Stats().Published; got != 0 {
		t.Errorf("the hub published %d messages from refused requests", got)
	}
}

func TestPublishRefusesBadBodies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	app := f.app(t)
	big := `{"channel":"c","event":"e","data":"` + strings.Repeat("x", pubsub.MaxPayloadBytes) + `"}`
	tests := []struct {
		name, body string
		status     int
		code       pubsub.Code
	}{
		{"empty", ``, 400, pubsub.CodeInvalidRequest},
		{"not JSON", `channel=orders.42`, 400, pubsub.CodeInvalidRequest},
		{"an array", `[1,2]`, 400, pubsub.CodeInvalidRequest},
		{"truncated", `{"channel":"orders.42"`, 400, pubsub.CodeInvalidRequest},
		{"no channel", `{"event":"e"}`, 400, pubsub.CodeInvalidTopicName},
		{"channel not a string", `{"channel":42,"event":"e"}`, 400, pubsub.CodeInvalidTopicName},
		{"bad channel", `{"channel":"orders 42","event":"e"}`, 400, pubsub.CodeInvalidTopicName},
		{"no event", `{"channel":"orders.42"}`, 400, pubsub.CodeInvalidRequest},
		{"empty event", `{"channel":"orders.42","event":""}`, 400, pubsub.CodeInvalidRequest},
		{"reserved event", `{"channel":"orders.42","event":"connect"}`, 400, pubsub.CodeInvalidRequest},
		{"protocol event", `{"channel":"orders.42","event":"subscribed"}`, 400, pubsub.CodeInvalidRequest},
		{"control character in event", `{"channel":"orders.42","event":"a\nb"}`, 400, pubsub.CodeInvalidRequest},
		{"invalid UTF-8", "{\"channel\":\"orders.42\",\"event\":\"e\",\"data\":\"\xff\"}", 400, pubsub.CodeInvalidPayload},
		{"data too large", big, 413, pubsub.CodePayloadTooLarge},
		{"data nested too deeply", nestedBody(pubsub.MaxPayloadDepth + 1), 400, pubsub.CodeInvalidPayload},
		{"data nested deeper than encoding/json decodes", nestedBody(10001), 400, pubsub.CodeInvalidPayload},
		{"body too large", `{"pad":"` + strings.Repeat("x", maxPublishBody) + `"}`, 413, pubsub.CodePayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, a, _ := f.publish(t, app.AppID, app.PublishKey, tt.body)
			if status != tt.status || a.Error == nil || a.Error.Code != tt.code || a.Error.Message == "" {
				t.Errorf("POST /publish %.60q = %d %.200s; want %d %s with a message", tt.body, status, a.raw, tt.status, tt.code)
			}
		})
	}
	if got := f.hub.Stats().Published; got != 0 {
		t.Errorf("the hub published %d messages from refused requests", got)
	}
}

func TestPublishMethodAndRoutes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	resp, err := client.Get(f.ts.URL + PublishPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET /publish = %d, Allow %q; want 405, POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp, err = client.Get(f.ts.URL + "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /elsewhere = %d, want 404", resp.StatusCode)
	}
}

// TestPublishReachesPlazaClients checks the mapping of POST /publish onto
// Plaza messages: room = App ID, topic = channel, payload = data, metadata
// event = event, from = Options.PublisherID.
func TestPublishReachesPlazaClients(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	app := f.app(t)
	room := f.join(t, app.AppID, "go-client")
	got := make(chan pubsub.Message, 2)
	if _, err := room.Subscribe(ctxT(t), "orders.42", func(m pubsub.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	pa := f.mustPublish(t, app, seedBody)
	f.mustPublish(t, app, `{"channel":"orders.42","event":"order.created"}`)
	want := []pubsub.Message{
		{ID: pa.ID, Topic: "orders.42", From: DefaultPublisherID, Payload: json.RawMessage(`{"id":42}`), Metadata: map[string]string{"event": "order.updated"}, Timestamp: pa.Timestamp, Persisted: true},
		{Topic: "orders.42", From: DefaultPublisherID, Payload: json.RawMessage(`null`), Metadata: map[string]string{"event": "order.created"}, Persisted: true},
	}
	for i, w := range want {
		select {
		case m := <-got:
			if i == 1 {
				w.ID, w.Timestamp = m.ID, m.Timestamp
			}
			if diff := cmp.Diff(w, m); diff != "" {
				t.Errorf("message %d (-want +got):\n%s", i, diff)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("the Plaza client did not receive message %d", i)
		}
	}
	if pa.Channel != "orders.42" || pa.Event != "order.updated" || !pa.Timestamp.Equal(t0) {
		t.Errorf("POST /publish answered %+v", pa)
	}
	page, err := room.GetHistory(ctxT(t), "orders.42")
	if err != nil || len(page.Messages) != 2 {
		t.Errorf("history of orders.42 = %+v, %v; want both publishes", page, err)
	}
}

func TestPublishPerMinuteCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, Options{PublishPerMinute: 3})
	app, other := f.app(t), f.app(t)
	_, own, err := f.reg.Create(ctx, AppOptions{PublishPerMinute: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, uncapped, err := f.reg.Create(ctx, AppOptions{PublishPerMinute: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		f.clock.Advance(10 * time.Second)
		f.mustPublish(t, app, seedBody) // at +10s, +20s, +30s
		_ = i
	}
	status, a, resp := f.publish(t, app.AppID, app.PublishKey, seedBody)
	if status != http.StatusTooManyRequests || a.Error == nil || a.Error.Code != pubsub.CodeRateLimitExceeded {
		t.Fatalf("fourth publish in a minute = %d %s, want 429 RATE_LIMIT_EXCEEDED", status, a.raw)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "40" || a.Error.RetryAfterMs != 40000 {
		t.Errorf("Retry-After = %q, retryAfterMs %d; want 40 (the first publish leaves the window at +70s)", ra, a.Error.RetryAfterMs)
	}
	f.mustPublish(t, other, seedBody) // another app has its own window
	f.clock.Advance(40 * time.Second)
	f.mustPublish(t, app, seedBody) // the first publish left the window
	if status, _, _ := f.publish(t, app.AppID, app.PublishKey, seedBody); status != http.StatusTooManyRequests {
		t.Errorf("publish at +70s = %d, want 429: three publishes remain in the window", status)
	}

	f.mustPublish(t, own, seedBody)
	if status, _, _ := f.publish(t, own.AppID, own.PublishKey, seedBody); status != http.StatusTooManyRequests {
		t.Errorf("second publish of an app capped at 1 = %d, want 429", status)
	}
	for range 10 {
		f.mustPublish(t, uncapped, seedBody)
	}
	if got := f.srv.Stats().RateLimited; got != 3 {
		t.Errorf("Stats().RateLimited = %d, want 3", got)
	}
}

// nestedBody is a publish body whose data nests depth arrays.
func nestedBody(depth int) string {
	return `{"channel":"c","event":"e","data":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
}
