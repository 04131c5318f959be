package socketio

import (
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestEmitRightAfterConnect sends "subscribe" the moment the CONNECT answer
// arrives, as socket.io-client does with what it buffered, while the
// library, slowed down here, has yet to register the socket: the subscribe
// must wait for it, not close the connection.
func TestEmitRightAfterConnect(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	slow := func() { time.Sleep(50 * time.Millisecond) }
	f.srv.testHookDrain.Store(&slow)
	app := f.app(t)
	ctx := ctxT(t)
	addr := strings.TrimPrefix(f.ts.URL, "http://")
	ws, err := dialSocketIO(ctx, addr, app.AppID, app.SubscribeKey, "orders.42")
	if err != nil {
		t.Fatalf("subscribing right after connecting: %v", err)
	}
	ws.Close(websocket.StatusNormalClosure, "")
}
