package socketio

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// fixture is a memory hub and a registry behind a Server, on an httptest
// server on 127.0.0.1.
type fixture struct {
	hub   *memory.Hub
	reg   *Registry
	srv   *Server
	ts    *httptest.Server
	clock *fakeclock.Clock // the hub's and the Server's
}

// newFixture starts a fixture with opts, on a fake clock unless opts has a
// Clock. Everything stops when the test ends.
func newFixture(tb testing.TB, opts Options) *fixture {
	tb.Helper()
	return newFixtureWith(tb, opts, memory.Options{}, nil)
}

// newFixtureWith is newFixture with hub options ho and, when wrap is set,
// the Server on wrap(hub) instead of the hub.
func newFixtureWith(tb testing.TB, opts Options, ho memory.Options, wrap func(pubsub.Transport) pubsub.Transport) *fixture {
	tb.Helper()
	f := &fixture{reg: openRegistry(tb)}
	if opts.Clock == nil {
		f.clock = fakeclock.New(t0)
		opts.Clock = f.clock
	}
	if ho.Clock == nil {
		ho.Clock = opts.Clock
	}
	hub, err := memory.New(ho)
	if err != nil {
		tb.Fatalf("memory.New() = %v", err)
	}
	f.hub = hub
	var t pubsub.Transport = hub
	if wrap != nil {
		t = wrap(hub)
	}
	f.srv, err = New(t, f.reg, opts)
	if err != nil {
		tb.Fatalf("New() = %v", err)
	}
	f.ts = httptest.NewServer(f.srv)
	tb.Cleanup(func() {
		if err := f.srv.Close(); err != nil {
			tb.Errorf("Close() = %v", err)
		}
		f.ts.Close()
		if err := hub.Close(); err != nil {
			tb.Errorf("hub.Close() = %v", err)
		}
	})
	return f
}

// app creates an app and returns its credentials.
func (f *fixture) app(tb testing.TB) Credentials {
	tb.Helper()
	return createApp(tb, f.reg, AppOptions{Name: tb.Name()})
}

// seedBody is the body of the seed's curl line.
const seedBody = `{"channel":"orders.42","event":"order.updated","data":{"id":42}}`

// publish POSTs body to /publish as the seed's curl line does, with appID in
// X-App-Id and key as the bearer token (headers left out when empty), and
// returns the status, the decoded answer and the response.
func (f *fixture) publish(tb testing.TB, appID, key, body string) (int, answer, *http.Response) {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctxT(tb), http.MethodPost, f.ts.URL+PublishPath, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if appID != "" {
		req.Header.Set("X-App-Id", appID)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("POST /publish: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("reading the answer of POST /publish: %v", err)
	}
	var a answer
	if err := json.Unmarshal(raw, &a); err != nil {
		tb.Fatalf("POST /publish answered %d with %q, not JSON: %v", resp.StatusCode, raw, err)
	}
	a.raw = string(raw)
	return resp.StatusCode, a, resp
}

// answer is a decoded JSON answer: {"data": …} or {"error": …}.
type answer struct {
	Data  json.RawMessage `json:"data"`
	Error *wireError      `json:"error"`
	raw   string
}

// mustPublish publishes body with the publish key of app and returns the
// answer's data.
func (f *fixture) mustPublish(tb testing.TB, app Credentials, body string) publishAnswer {
	tb.Helper()
	status, a, _ := f.publish(tb, app.AppID, app.PublishKey, body)
	if status != http.StatusOK {
		tb.Fatalf("POST /publish %s = %d %s, want 200", body, status, a.raw)
	}
	var pa publishAnswer
	if err := json.Unmarshal(a.Data, &pa); err != nil {
		tb.Fatalf("POST /publish answered %s: %v", a.raw, err)
	}
	return pa
}

// join joins app's room on the fixture's hub as a Plaza client.
func (f *fixture) join(tb testing.TB, app, clientID string) *pubsub.Room {
	tb.Helper()
	room, err := pubsub.Join(ctxT(tb), f.hub, app, &pubsub.JoinOptions{ClientID: clientID})
	if err != nil {
		tb.Fatalf("Join(%q) = %v", app, err)
	}
	tb.Cleanup(func() { room.Leave(context.Background()) })
	return room
}

// ctxT returns a context that ends with the test or after waitTimeout.
func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// waitFor waits until cond holds, polling; it fails the test after
// waitTimeout. It synchronizes with background work and measures nothing.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
