package socketio

import (
	"fmt"
	"testing"
)

// The two transport lists of the tests: the seed's, and polling alone (the
// fallback when WebSockets are blocked).
var transportLists = [][]string{{"websocket", "polling"}, {"polling"}}

func TestSeedFlow(t *testing.T) {
	f := newFixture(t, Options{})
	app := f.app(t)
	n := startNode(t, f.ts.URL)
	for i, transports := range transportLists {
		t.Run(fmt.Sprint(transports), func(t *testing.T) {
			id := fmt.Sprint("c", i)
			n.connect(id, transports, app.AppID, app.SubscribeKey)
			n.connected(id)
			n.subscribe(id, "orders.42")
			f.mustPublish(t, app, seedBody)
			got := n.event(id, "order.updated")
			if data := firstArg(got); len(data) != 1 || data["id"] != float64(42) {
				t.Errorf("order.updated data = %v, want {id: 42}", got["args"])
			}
			n.send(map[string]any{"op": "close", "id": id})
		})
	}
}
