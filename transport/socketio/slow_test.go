package socketio

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// pollingClient speaks the Engine.IO polling transport by hand, so that a
// test controls when it polls.
type pollingClient struct {
	tb  testing.TB
	url string // with the sid
}

// dialPolling opens a polling session and connects to the default
// namespace with auth.
func dialPolling(tb testing.TB, base string, auth map[string]any) *pollingClient {
	tb.Helper()
	resp, body := handshake(tb, base, "")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "0") {
		tb.Fatalf("handshake = %d %q", resp.StatusCode, body)
	}
	var open struct{ Sid string }
	if err := json.Unmarshal([]byte(body[1:]), &open); err != nil {
		tb.Fatalf("open packet %q: %v", body, err)
	}
	c := &pollingClient{tb: tb, url: base + Path + "?EIO=4&transport=polling&sid=" + open.Sid}
	a, _ := json.Marshal(auth)
	c.post("40" + string(a))
	if p := c.poll(); !strings.HasPrefix(p, "40{") {
		tb.Fatalf("connect answered %q", p)
	}
	return c
}

// post sends packets, separated by the record separator.
func (c *pollingClient) post(packets ...string) {
	c.tb.Helper()
	req, _ := http.NewRequestWithContext(ctxT(c.tb), http.MethodPost, c.url, strings.NewReader(strings.Join(packets, "\x1e")))
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.tb.Fatalf("POST: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.tb.Fatalf("POST %q = %d %q", packets, resp.StatusCode, body)
	}
}

// poll returns what the server has queued, waiting for something.
func (c *pollingClient) poll() string {
	c.tb.Helper()
	req, _ := http.NewRequestWithContext(ctxT(c.tb), http.MethodGet, c.url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.tb.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func TestSlowConsumerIsDisconnected(t *testing.T) {
	t.Parallel()
	const queue = 8
	f := newFixture(t, Options{SendQueue: queue, PublishPerMinute: -1})
	app := f.app(t)
	auth := map[string]any{"appId": app.AppID, "subscribeKey": app.SubscribeKey}
	slow, fast := dialPolling(t, f.ts.URL, auth), dialPolling(t, f.ts.URL, auth)
	for _, c := range []*pollingClient{slow, fast} {
		c.post(`42["subscribe","orders.42"]`)
		if p := c.poll(); !strings.Contains(p, `"subscribed"`) {
			t.Fatalf("subscribe answered %q", p)
		}
	}
	// The slow client stops polling; the fast one keeps up.
	got := 0
	for i := range 3 * queue {
		f.mustPublish(t, app, seqBody(i))
		for got <= i {
			got += strings.Count(fast.poll(), "order.updated")
		}
	}
	waitFor(t, "the slow client to be dropped", func() bool { return f.srv.Stats().SlowConsumers == 1 })
	waitFor(t, "the slow client to be gone", func() bool { return f.srv.Stats().Connected == 1 })
	if p := slow.poll(); !strings.Contains(p, "Session ID unknown") {
		t.Errorf("the dropped client's next poll = %q, want its session closed", p)
	}
	f.mustPublish(t, app, seqBody(3*queue))
	if p := fast.poll(); !strings.Contains(p, "order.updated") {
		t.Errorf("after the drop, the other client polled %q", p)
	}
}

// TestFastConsumerIsKept sends a WebSocket client that keeps up many times
// its SendQueue: what was written no longer counts against it.
func TestFastConsumerIsKept(t *testing.T) {
	t.Parallel()
	const queue = 4
	f := newFixture(t, Options{SendQueue: queue, PublishPerMinute: -1})
	app := f.app(t)
	ctx := ctxT(t)
	ws, err := dialSocketIO(ctx, strings.TrimPrefix(f.ts.URL, "http://"), app.AppID, app.SubscribeKey, "orders.42")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	for i := range 25 * queue {
		f.mustPublish(t, app, seqBody(i))
		_, data, err := ws.Read(ctx)
		if err != nil || !strings.Contains(string(data), fmt.Sprintf(`{"seq":%d}`, i)) {
			t.Fatalf("event %d: %q, %v", i, data, err)
		}
	}
	if got := f.srv.Stats().SlowConsumers; got != 0 {
		t.Errorf("Stats().SlowConsumers = %d for a client that kept up", got)
	}
}
