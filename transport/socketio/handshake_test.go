package socketio

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestWebSocketHandshakeOutlivingItsBudget drives the engine's refusal of
// WebSocket handshakes that outlast its UpgradeTimeout, as they can on a
// loaded machine: with budgets from 1µs to 4ms, the engine's timer fires
// at every stage of the handshake, including after the socket queued its
// OPEN packet, when the engine writes its close frame on the same
// connection (see handshake.go). Every client must get either the OPEN
// packet or a closed connection; under -race, the two writes must never be
// concurrent.
func TestWebSocketHandshakeOutlivingItsBudget(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	var opened, refused int
	for i := range 200 {
		// A Server per budget: the engine reads its options unsynchronized.
		srv, err := New(f.hub, f.reg, Options{Clock: f.clock})
		if err != nil {
			t.Fatalf("New() = %v", err)
		}
		srv.io.Engine().Opts().SetUpgradeTimeout(time.Duration(1+i*20) * time.Microsecond)
		ts := httptest.NewServer(srv)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		ws, _, err := websocket.Dial(ctx, "ws://"+strings.TrimPrefix(ts.URL, "http://")+Path+"?EIO=4&transport=websocket", nil)
		if err != nil {
			t.Fatalf("dialing with an UpgradeTimeout of %v: %v", srv.io.Engine().Opts().UpgradeTimeout(), err)
		}
		switch _, data, err := ws.Read(ctx); {
		case err == nil && strings.HasPrefix(string(data), "0{"):
			opened++
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			refused++
		default:
			t.Errorf("after the handshake: %q, %v; want the OPEN packet or a closed connection", data, err)
		}
		ws.CloseNow()
		cancel()
		ts.Close()
		// Close waits for a handshake still waiting for its OPEN packet.
		if err := srv.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		if n := srv.openWaits.Load(); n > 0 {
			t.Fatalf("after Close, %d handshakes still wait for their OPEN packet", n)
		}
	}
	t.Logf("%d handshakes opened, %d refused", opened, refused)
	if refused == 0 {
		t.Errorf("no handshake outlived its budget: the test exercised nothing")
	}
}
