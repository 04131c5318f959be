package collections_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/collections"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/network"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for something that should happen.
const waitTimeout = 10 * time.Second

var t0 = time.Date(2026, 1, 17, 12, 0, 0, 0, time.UTC)

// testAuthenticate accepts any token but "bad" and "expired" as the client id,
// valid for an hour from t0.
func testAuthenticate(_ context.Context, _ *http.Request, token string) (network.Identity, error) {
	switch token {
	case "", "bad":
		return network.Identity{}, pubsub.Errorf(pubsub.CodeUnauthenticated, "bad token")
	case "expired":
		return network.Identity{ClientID: "late", Expires: t0.Add(-time.Second)}, nil
	}
	return network.Identity{ClientID: token, Expires: t0.Add(time.Hour)}, nil
}

type fixture struct {
	clock *fakeclock.Clock
	hub   *memory.Hub
	srv   *collections.Server
	ts    *httptest.Server
	room  *pubsub.Room // publishes the events
}

func newFixture(tb testing.TB, o collections.Options) *fixture {
	tb.Helper()
	f := &fixture{clock: fakeclock.New(t0)}
	hub, err := memory.New(memory.Options{Clock: f.clock})
	if err != nil {
		tb.Fatal(err)
	}
	f.hub = hub
	if o.Authenticate == nil {
		o.Authenticate = testAuthenticate
	}
	if o.Clock == nil {
		o.Clock = f.clock
	}
	f.srv, err = collections.NewServer(hub, o)
	if err != nil {
		tb.Fatalf("NewServer() = %v", err)
	}
	f.ts = httptest.NewServer(f.srv)
	f.room, err = pubsub.Join(ctxT(tb), hub, collections.DefaultRoom, &pubsub.JoinOptions{ClientID: "store"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		f.room.Leave(context.Background())
		f.srv.Close()
		f.ts.Close()
		hub.Close()
	})
	return f
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	tb.Cleanup(cancel)
	return ctx
}

func (f *fixture) url(token string) string {
	return "ws" + strings.TrimPrefix(f.ts.URL, "http") + "/api/v1/realtime/ws?token=" + token
}

// client is one WebSocket client of the fixture.
type client struct {
	tb testing.TB
	ws *websocket.Conn
}

func (f *fixture) dial(tb testing.TB, token string) *client {
	tb.Helper()
	ws, _, err := websocket.Dial(ctxT(tb), f.url(token), nil)
	if err != nil {
		tb.Fatalf("Dial(token %q) = %v", token, err)
	}
	tb.Cleanup(func() { ws.CloseNow() })
	return &client{tb: tb, ws: ws}
}

func (c *client) send(s string) {
	c.tb.Helper()
	if err := c.ws.Write(ctxT(c.tb), websocket.MessageText, []byte(s)); err != nil {
		c.tb.Fatalf("Write(%s) = %v", s, err)
	}
}

// next returns the next frame, decoded.
func (c *client) next(what string) map[string]any {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		c.tb.Fatalf("waiting for %s: Read() = %v", what, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.tb.Fatalf("waiting for %s: frame %s is not a JSON object: %v", what, b, err)
	}
	return m
}

// expectClose reads until the connection closes and returns the close error.
func (c *client) expectClose(what string) websocket.CloseError {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		_, _, err := c.ws.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			c.tb.Fatalf("waiting for %s: Read() = %v, want a close frame", what, err)
		}
		return ce
	}
}

func (c *client) subscribe(collection string, ops ...string) {
	c.tb.Helper()
	frame := map[string]any{"action": "subscribe", "collection": collection}
	if ops != nil {
		frame["operations"] = ops
	}
	b, _ := json.Marshal(frame)
	c.send(string(b))
	got := c.next("the subscribe reply")
	if got["status"] != "subscribed" || got["collection"] != collection {
		c.tb.Fatalf("subscribe %s: reply %v, want subscribed", collection, got)
	}
}

func (f *fixture) publish(tb testing.TB, collection string, op collections.Operation, rec map[string]any) {
	tb.Helper()
	if _, err := collections.Publish(ctxT(tb), f.room, collection, op, rec); err != nil {
		tb.Fatalf("Publish(%s, %s) = %v", collection, op, err)
	}
}
