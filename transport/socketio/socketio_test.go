package socketio

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
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

func TestConnectRefusesBadCredentials(t *testing.T) {
	f := newFixture(t, Options{})
	app, other := f.app(t), f.app(t)
	n := startNode(t, f.ts.URL)
	tests := []struct {
		name       string
		appID, key string
		code       string
		says       string
	}{
		{"wrong key", app.AppID, "sub_live_wrong", "UNAUTHENTICATED", "wrong subscribeKey"},
		{"other app's key", app.AppID, other.SubscribeKey, "UNAUTHENTICATED", "wrong subscribeKey"},
		{"unknown app", "app_nosuchapp", app.SubscribeKey, "UNAUTHENTICATED", "unknown appId"},
		{"publish key", app.AppID, app.PublishKey, "PERMISSION_DENIED", "publish key"},
		{"no key", app.AppID, "", "UNAUTHENTICATED", "missing credentials"},
	}
	for i, tt := range tests {
		for j, transports := range transportLists {
			t.Run(fmt.Sprint(tt.name, transports), func(t *testing.T) {
				id := fmt.Sprint("c", i, j)
				n.connect(id, transports, tt.appID, tt.key)
				msg, code := n.refused(id)
				if code != tt.code || !strings.Contains(msg, tt.says) {
					t.Errorf("connect_error %q, data.code %q; want %s saying %q", msg, code, tt.code, tt.says)
				}
			})
		}
	}
	if got, want := f.srv.Stats().Refused, uint64(len(tests)*len(transportLists)); got != want {
		t.Errorf("Stats().Refused = %d, want %d", got, want)
	}
}

func TestRotatedSubscribeKeyIsRefused(t *testing.T) {
	f := newFixture(t, Options{})
	app := f.app(t)
	n := startNode(t, f.ts.URL)
	n.connect("old", []string{"websocket"}, app.AppID, app.SubscribeKey)
	n.connected("old")
	n.subscribe("old", "orders.42")

	creds, err := f.reg.Rotate(ctxT(t), app.AppID, KeySubscribe)
	if err != nil {
		t.Fatal(err)
	}
	// The connected client is cut off; reconnecting with the old key fails.
	n.wait("the old client to be disconnected", func(r report) bool {
		return r["id"] == "old" && r.str("type") == "disconnect"
	})
	if msg, code := n.refused("old"); code != "UNAUTHENTICATED" {
		t.Errorf("reconnecting with the rotated key: connect_error %q, %q; want UNAUTHENTICATED", msg, code)
	}
	n.connect("again", []string{"websocket"}, app.AppID, app.SubscribeKey)
	if _, code := n.refused("again"); code != "UNAUTHENTICATED" {
		t.Errorf("a new connection with the rotated key: %q, want UNAUTHENTICATED", code)
	}
	n.connect("new", []string{"websocket"}, app.AppID, creds.SubscribeKey)
	n.connected("new")
	n.subscribe("new", "orders.42")
	f.mustPublish(t, app, seedBody)
	n.event("new", "order.updated")
}

func TestDeletedAppIsRefused(t *testing.T) {
	f := newFixture(t, Options{})
	app := f.app(t)
	n := startNode(t, f.ts.URL)
	n.connect("c", []string{"websocket"}, app.AppID, app.SubscribeKey)
	n.connected("c")
	n.subscribe("c", "orders.42")
	if err := f.reg.Delete(ctxT(t), app.AppID); err != nil {
		t.Fatal(err)
	}
	n.wait("the client to be disconnected", func(r report) bool { return r["id"] == "c" && r.str("type") == "disconnect" })
	if _, code := n.refused("c"); code != "UNAUTHENTICATED" {
		t.Errorf("reconnecting to a deleted app: %q, want UNAUTHENTICATED", code)
	}
	if status, a, _ := f.publish(t, app.AppID, app.PublishKey, seedBody); status != http.StatusUnauthorized {
		t.Errorf("publishing to a deleted app = %d %s, want 401", status, a.raw)
	}
}

// TestPlazaPublishReachesSocketIO checks that a message published by a
// Plaza client reaches Socket.IO clients under its metadata "event", or
// DefaultEvent without one, with its payload as the argument.
func TestPlazaPublishReachesSocketIO(t *testing.T) {
	f := newFixture(t, Options{})
	app := f.app(t)
	n := startNode(t, f.ts.URL)
	n.connect("c", []string{"websocket"}, app.AppID, app.SubscribeKey)
	n.connected("c")
	n.subscribe("c", "orders.42")
	room := f.join(t, app.AppID, "go-backend")
	ctx := ctxT(t)
	publishes := []struct {
		payload any
		md      map[string]string
		event   string
	}{
		{map[string]int{"id": 42}, map[string]string{"event": "order.updated"}, "order.updated"},
		{"plain text", nil, DefaultEvent},
		{7, map[string]string{"event": "connect"}, DefaultEvent}, // a name no client can listen for
		{[]int{1, 2}, map[string]string{"other": "x"}, DefaultEvent},
	}
	for _, p := range publishes {
		if _, err := room.Publish(ctx, "orders.42", p.payload, pubsub.Metadata(p.md)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range publishes {
		r := n.event("c", p.event)
		args, _ := r["args"].([]any)
		want, _ := json.Marshal(p.payload)
		if got, _ := json.Marshal(args[0]); len(args) == 0 || string(got) != string(want) {
			t.Errorf("event %q args %v, want first %s", p.event, args, want)
		}
	}
}

// TestSSESeesWhatPublishSent serves the same hub over transport/network:
// an event stream on room = App ID, topic = channel receives what POST
// /publish sent.
func TestSSESeesWhatPublishSent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	app := f.app(t)
	native := network.NewServer(f.hub, network.Options{})
	ts := httptest.NewServer(native)
	defer ts.Close()
	defer native.Shutdown(context.Background())

	ctx := ctxT(t)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/"+app.AppID+"/pubsub/orders.42/subscribe", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body) // the headers come once the stream is subscribed
	pa := f.mustPublish(t, app, seedBody)
	for lines.Scan() {
		data, ok := strings.CutPrefix(lines.Text(), "data: ")
		if !ok {
			continue
		}
		var m pubsub.Message
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("event data %q: %v", data, err)
		}
		if m.ID != pa.ID || string(m.Payload) != `{"id":42}` || m.Metadata["event"] != "order.updated" || m.Topic != "orders.42" {
			t.Errorf("the event stream got %s, want the publish %+v as payload {\"id\":42}, metadata event", data, pa)
		}
		return
	}
	t.Fatalf("the event stream ended: %v", lines.Err())
}

// TestSwarm has 200 socket.io clients receive every one of 500 events
// published with POST /publish exactly once, in order.
func TestSwarm(t *testing.T) {
	const clients, events = 200, 500
	f := newFixture(t, Options{PublishPerMinute: -1})
	app := f.app(t)
	n := startNode(t, f.ts.URL)
	n.send(map[string]any{
		"op": "swarm", "id": "s", "url": f.ts.URL, "n": clients, "channel": "orders.42", "event": "order.updated", "expect": events,
		"opts": map[string]any{"transports": []string{"websocket", "polling"}, "auth": map[string]any{"appId": app.AppID, "subscribeKey": app.SubscribeKey}},
	})
	n.waitFor(time.Minute, "200 clients to subscribe", func(r report) bool { return r["id"] == "s" && r.str("type") == "ready" })
	for i := range events {
		f.mustPublish(t, app, fmt.Sprintf(`{"channel":"orders.42","event":"order.updated","data":{"seq":%d}}`, i))
	}
	r := n.waitFor(time.Minute, "every client to receive 500 events", func(r report) bool { return r["id"] == "s" && r.str("type") == "report" })
	if r["complete"] != float64(clients) || r["received"] != float64(clients*events) {
		t.Errorf("swarm report %v: want all %d clients complete with %d events each, no duplicates, in order", r, clients, events)
	}
	if got := f.srv.Stats().Delivered; got != clients*events {
		t.Errorf("Stats().Delivered = %d, want %d", got, clients*events)
	}
}

// seqBody is a publish of order.updated on orders.42 with data {seq: i}.
func seqBody(i int) string {
	return fmt.Sprintf(`{"channel":"orders.42","event":"order.updated","data":{"seq":%d}}`, i)
}

// seqs waits for client id to receive the order.updated events of seq
// from, from+1, …, to-1, and fails on any other.
func (n *nodeClients) seqs(id string, from, to int) {
	n.tb.Helper()
	for want := from; want < to; want++ {
		r := n.event(id, "order.updated")
		if got := firstArg(r)["seq"]; got != float64(want) {
			n.tb.Fatalf("%s received seq %v, want %d", id, got, want)
		}
	}
}

func TestReconnectingClientIsResubscribed(t *testing.T) {
	f := newFixture(t, Options{PublishPerMinute: -1})
	app := f.app(t)
	n := startNode(t, f.ts.URL)
	fast := map[string]any{"reconnectionDelay": 50, "reconnectionDelayMax": 100}
	for i, transports := range transportLists {
		t.Run(fmt.Sprint(transports), func(t *testing.T) {
			id := fmt.Sprint("c", i)
			n.connect(id, transports, app.AppID, app.SubscribeKey, fast)
			n.connected(id)
			n.subscribe(id, "orders.42")
			f.mustPublish(t, app, seqBody(0))
			n.seqs(id, 0, 1)

			n.send(map[string]any{"op": "drop", "id": id})
			waitFor(t, "the server to see the client go", func() bool { return f.srv.Stats().Connected == 0 })
			f.mustPublish(t, app, seqBody(1)) // while it is away, or just back
			f.mustPublish(t, app, seqBody(2))
			if r := n.connected(id); r["recovered"] != true {
				t.Errorf("reconnect: recovered = %v, want true", r["recovered"])
			}
			f.mustPublish(t, app, seqBody(3)) // without a new "subscribe"
			n.seqs(id, 1, 4)
			n.send(map[string]any{"op": "close", "id": id})
			waitFor(t, "the client to go", func() bool { return f.srv.Stats().Connected == 0 })
		})
	}
	if got := f.srv.Stats().Recovered; got != uint64(len(transportLists)) {
		t.Errorf("Stats().Recovered = %d, want %d", got, len(transportLists))
	}
}

// TestRecoveryReplaysFromHistory checks that a client away for longer than
// any in-memory buffer would allow, on a channel quiet since it subscribed,
// gets back exactly what it missed, then live messages.
func TestRecoveryReplaysFromHistory(t *testing.T) {
	f := newFixture(t, Options{PublishPerMinute: -1, RecoveryLimit: 30})
	app := f.app(t)
	n := startNode(t, f.ts.URL)
	manual := map[string]any{"reconnection": false}
	n.connect("c", []string{"websocket"}, app.AppID, app.SubscribeKey, manual)
	n.connected("c")
	n.subscribe("c", "orders.42")
	n.subscribe("c", "orders.43")
	f.clock.Advance(90 * time.Second) // quiet since the subscription

	n.send(map[string]any{"op": "drop", "id": "c"})
	n.wait("the disconnect", func(r report) bool { return r["id"] == "c" && r.str("type") == "disconnect" })
	waitFor(t, "the server to see the client go", func() bool { return f.srv.Stats().Connected == 0 })
	for i := range 3 {
		f.mustPublish(t, app, seqBody(i))
	}
	f.mustPublish(t, app, `{"channel":"orders.43","event":"order.updated","data":{"seq":-1}}`)
	f.mustPublish(t, app, `{"channel":"orders.44","event":"order.updated","data":{"seq":-2}}`) // not subscribed
	f.clock.Advance(time.Minute)

	n.send(map[string]any{"op": "reconnect", "id": "c"})
	if r := n.connected("c"); r["recovered"] != true {
		t.Fatalf("reconnect: recovered = %v, want true", r["recovered"])
	}
	n.seqs("c", 0, 3)
	if r := n.event("c", "order.updated"); firstArg(r)["seq"] != float64(-1) {
		t.Errorf("after orders.42, got %v; want the missed orders.43 message", r["args"])
	}
	f.mustPublish(t, app, seqBody(3))
	n.seqs("c", 3, 4)
}

func TestRecoveryWindowExpires(t *testing.T) {
	f := newFixture(t, Options{PublishPerMinute: -1})
	app := f.app(t)
	n := startNode(t, f.ts.URL)
	n.connect("c", []string{"websocket"}, app.AppID, app.SubscribeKey, map[string]any{"reconnection": false})
	n.connected("c")
	n.subscribe("c", "orders.42")
	n.send(map[string]any{"op": "drop", "id": "c"})
	waitFor(t, "the server to see the client go", func() bool { return f.srv.Stats().Connected == 0 })
	f.mustPublish(t, app, seqBody(0))
	f.clock.Advance(DefaultRecoveryWindow)

	n.send(map[string]any{"op": "reconnect", "id": "c"})
	if r := n.connected("c"); r["recovered"] != false {
		t.Fatalf("reconnect after the window: recovered = %v, want false", r["recovered"])
	}
	f.mustPublish(t, app, seqBody(1))
	n.subscribe("c", "orders.42") // a new session: the client subscribes again
	f.mustPublish(t, app, seqBody(2))
	n.seqs("c", 2, 3)
	n.none("events from before the new subscription", func(r report) bool {
		return r["id"] == "c" && r.str("event") == "order.updated" && firstArg(r)["seq"] != float64(2)
	})
}

func TestSubscribeProtocol(t *testing.T) {
	f := newFixture(t, Options{PublishPerMinute: -1, MaxSubscriptions: 2})
	app := f.app(t)
	n := startNode(t, f.ts.URL)
	n.connect("c", []string{"websocket"}, app.AppID, app.SubscribeKey)
	n.connected("c")

	emit := func(event string, arg any, ack bool) {
		n.send(map[string]any{"op": "emit", "id": "c", "event": event, "args": []any{arg}, "ack": ack})
	}
	subscribeError := func(what, code string) {
		t.Helper()
		r := n.event("c", "subscribe_error")
		if e := firstArg(r); e["code"] != code || e["message"] == "" {
			t.Errorf("%s: subscribe_error %v, want code %s and a message", what, r["args"], code)
		}
	}
	emit("subscribe", "orders 42", false)
	subscribeError("a bad channel name", "INVALID_TOPIC_NAME")
	emit("subscribe", 42, false)
	subscribeError("a number", "INVALID_TOPIC_NAME")

	// {channel} works as well as a string; an acknowledgement gets the answer too.
	emit("subscribe", map[string]any{"channel": "orders.42"}, true)
	n.event("c", "subscribed")
	if r := n.wait("the ack", func(r report) bool { return r.str("type") == "ack" }); firstArg(r)["channel"] != "orders.42" {
		t.Errorf("ack of subscribe = %v, want {channel: orders.42}", r["args"])
	}
	n.subscribe("c", "orders.42") // again: still one subscription
	n.subscribe("c", "orders.43")
	emit("subscribe", "orders.44", true)
	subscribeError("a third channel", "TOO_MANY_SUBSCRIPTIONS")
	if r := n.wait("the ack", func(r report) bool { return r.str("type") == "ack" }); r["args"] == nil || firstArg(r)["error"] == nil {
		t.Errorf("ack of a refused subscribe = %v, want {channel, error}", r["args"])
	}

	f.mustPublish(t, app, seqBody(0))
	n.seqs("c", 0, 1) // once, though subscribed twice
	emit("unsubscribe", "orders.42", false)
	if r := n.event("c", "unsubscribed"); firstArg(r)["channel"] != "orders.42" {
		t.Errorf("unsubscribed %v", r["args"])
	}
	emit("unsubscribe", "never.subscribed", false)
	n.event("c", "unsubscribed")
	f.mustPublish(t, app, seqBody(1))                                                         // not delivered
	f.mustPublish(t, app, `{"channel":"orders.43","event":"order.updated","data":{"seq":2}}`) // delivered
	n.seqs("c", 2, 3)
	waitFor(t, "the hub subscription of orders.42 to end", func() bool {
		b, _ := f.srv.bridge(app.AppID)
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.channels["orders.42"] == nil && b.channels["orders.43"] != nil
	})
}
