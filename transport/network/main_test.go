package network

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for something that should happen; it guards
// against deadlocks, generous enough for a loaded machine, and measures
// nothing.
const waitTimeout = 20 * time.Second

// t0 is where fake clocks start.
var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// testTokenPrefix marks the credentials testAuthenticate accepts: the rest of
// the token is the client id. Tests use it where they need a known identity.
const testTokenPrefix = "test-token:"

// testAuthenticate accepts "test-token:<id>" as client id, and refuses
// anything else.
func testAuthenticate(_ context.Context, _ *http.Request, cred string) (Identity, error) {
	id, ok := strings.CutPrefix(cred, testTokenPrefix)
	if !ok || id == "" {
		return Identity{}, errors.New("unknown credential")
	}
	return Identity{ClientID: id}, nil
}

// fixture is a hub served over loopback.
type fixture struct {
	hub    *memory.Hub
	srv    *Server
	ts     *httptest.Server
	client *Client
	clock  *fakeclock.Clock // nil when the fixture runs on the system clock
}

// newFixture starts a memory hub (with hopts) behind a Server (with opts)
// on an httptest server on 127.0.0.1, and a Client for it. Unless opts has an
// Authenticate it uses testAuthenticate; unless opts has a Clock, the server
// and hub share a fake clock. wrap, if given, wraps the listener. Everything
// stops when the test ends.
func newFixture(tb testing.TB, hopts memory.Options, opts Options, wrap ...func(net.Listener) net.Listener) *fixture {
	tb.Helper()
	f := &fixture{}
	if opts.Clock == nil {
		f.clock = fakeclock.New(t0)
		opts.Clock = f.clock
	}
	if hopts.Clock == nil {
		hopts.Clock = opts.Clock
	}
	if opts.Authenticate == nil {
		opts.Authenticate = testAuthenticate
	}
	hub, err := memory.New(hopts)
	if err != nil {
		tb.Fatalf("memory.New() = %v", err)
	}
	f.hub = hub
	f.srv = NewServer(hub, opts)
	f.ts = httptest.NewUnstartedServer(f.srv)
	for _, w := range wrap {
		f.ts.Listener = w(f.ts.Listener)
	}
	f.ts.Start()
	f.client, err = NewClient(f.ts.URL, nil)
	if err != nil {
		tb.Fatalf("NewClient(%q) = %v", f.ts.URL, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := f.srv.Shutdown(ctx); err != nil {
			tb.Errorf("Shutdown() = %v", err)
		}
		f.ts.Close()
		if err := hub.Close(); err != nil {
			tb.Errorf("hub.Close() = %v", err)
		}
	})
	return f
}

// wsURL is the WebSocket URL of room.
func (f *fixture) wsURL(room string) string {
	return "ws" + strings.TrimPrefix(f.ts.URL, "http") + "/" + room + "/ws"
}

// connect opens a Go client Conn as id.
func (f *fixture) connect(tb testing.TB, room, id string) pubsub.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := f.client.Connect(ctx, pubsub.ConnectRequest{Room: room, Token: testTokenPrefix + id})
	if err != nil {
		tb.Fatalf("Connect(%q) as %q = %v", room, id, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// ctxT returns a context that ends with the test or after waitTimeout.
func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// recv returns the next value from ch; it fails the test, naming what it
// waited for, when none comes within waitTimeout.
func recv[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		tb.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
	var zero T
	return zero
}

// shutdown shuts srv down within waitTimeout; it fails the test when that
// is not enough.
func shutdown(tb testing.TB, srv *Server) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		tb.Errorf("Shutdown() = %v", err)
	}
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
