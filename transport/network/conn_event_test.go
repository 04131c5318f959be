package network

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/transport/memory"
)

// lockedBuffer is a log sink that connection goroutines may write to while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// nextEvent waits for the next connection event.
func nextEvent(tb testing.TB, events <-chan ConnEvent, what string) ConnEvent {
	tb.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(waitTimeout):
		tb.Fatalf("no connection event within %v, waiting for %s", waitTimeout, what)
		return ConnEvent{}
	}
}

// Every connection that authenticated has an open and a close event, with
// its room, client id, remote address and close code, logged and handed to
// OnConnEvent: the client's code when it closed, the server's when the
// server did.
func TestConnEvents(t *testing.T) {
	events := make(chan ConnEvent, 16)
	var logs lockedBuffer
	f := newFixture(t, memory.Options{}, Options{
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
		OnConnEvent: func(ev ConnEvent) { events <- ev },
	})

	c := f.authed(t, "lobby", "alice")
	open := nextEvent(t, events, "alice's connection to open")
	if open.Closed || open.Protocol != "websocket" || open.Room != "lobby" || open.ClientID != "alice" || !strings.HasPrefix(open.Remote, "127.0.0.1:") {
		t.Errorf("open event = %+v, want websocket lobby alice from 127.0.0.1", open)
	}
	c.ws.Close(websocket.StatusNormalClosure, "bye")
	closed := nextEvent(t, events, "alice's connection to close")
	if !closed.Closed || closed.ClientID != "alice" || closed.Code != websocket.StatusNormalClosure {
		t.Errorf("close event = %+v, want alice closed with %d", closed, websocket.StatusNormalClosure)
	}

	// The server closes a connection whose hub side ended.
	c = f.authed(t, "lobby", "bob")
	nextEvent(t, events, "bob's connection to open")
	if n := f.hub.Disconnect("lobby", "bob"); n != 1 {
		t.Fatalf("Disconnect(lobby, bob) = %d, want 1", n)
	}
	c.readUntilClosed() // answering the close handshake
	closed = nextEvent(t, events, "bob's connection to close")
	if !closed.Closed || closed.ClientID != "bob" || closed.Code != CloseHubEnded {
		t.Errorf("close event = %+v, want bob closed with CloseHubEnded (%d)", closed, CloseHubEnded)
	}

	// A refused credential is no connection: no event.
	f.dialRefusedAuth(t)
	select {
	case ev := <-events:
		t.Errorf("event %+v for a connection that never authenticated", ev)
	default:
	}

	// An event stream has its events too, without a close code.
	sse := f.openSSE(t, "/lobby/pubsub/alerts/subscribe", http.Header{"Authorization": {"Bearer " + testTokenPrefix + "carol"}})
	open = nextEvent(t, events, "carol's event stream to open")
	if open.Closed || open.Protocol != "sse" || open.Room != "lobby" || open.ClientID != "carol" || open.Remote == "" {
		t.Errorf("open event = %+v, want sse lobby carol with a remote address", open)
	}
	sse.close()
	closed = nextEvent(t, events, "carol's event stream to end")
	if !closed.Closed || closed.Protocol != "sse" || closed.ClientID != "carol" || closed.Code != 0 {
		t.Errorf("close event = %+v, want carol's stream closed without a code", closed)
	}

	log := logs.String()
	for _, want := range []string{
		`msg="network: connection opened" protocol=websocket room=lobby client=alice remote=127.0.0.1:`,
		`msg="network: connection closed" protocol=websocket room=lobby client=alice remote=127.0.0.1:`,
		" code=1000",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log has no %q:\n%s", want, log)
		}
	}
}

// dialRefusedAuth opens a connection whose credential the server refuses
// and waits for the server to close it.
func (f *fixture) dialRefusedAuth(tb testing.TB) {
	tb.Helper()
	c := dialRaw(tb, f.wsURL("lobby"), &websocket.DialOptions{})
	c.send(`{"v":1,"type":"auth","auth":"not a test token"}`)
	c.readUntilClosed()
}

// readUntilClosed reads frames until the connection ends, each read bounded
// by waitTimeout.
func (c *rawConn) readUntilClosed() {
	for {
		if _, err := c.read(); err != nil {
			return
		}
	}
}
