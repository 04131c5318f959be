package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// Two servers started with -redis on one Redis act as one: a message
// published over HTTP on A reaches a subscriber of B, both answer the
// same history, the HTTP publish cap counts both nodes' publishes, a
// temporary client socket made on A opens on B and is then used up on A
// too, and both are ready with Redis.
func TestRedisNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cfg := config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", redis: srv.URL(), publishPerMinute: 3}
	a, b := "http://"+start(t, cfg), "http://"+start(t, cfg)

	client, err := network.NewClient("ws"+strings.TrimPrefix(b, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{Token: "sk:bob"})
	if err != nil {
		t.Fatalf("Join on B = %v", err)
	}
	defer bob.Leave(ctx)
	got := make(chan pubsub.Message, 4)
	if _, err := bob.Subscribe(ctx, "alerts", func(m pubsub.Message) { got <- m }); err != nil {
		t.Fatalf("Subscribe on B = %v", err)
	}
	if status := httpPublish(t, a, "lobby", "alerts", "pk", `{"message":{"n":1}}`); status != http.StatusOK {
		t.Fatalf("POST publish on A = %d, want 200", status)
	}
	select {
	case m := <-got:
		if string(m.Payload) != `{"n":1}` {
			t.Errorf("B's subscriber received %s, want {\"n\":1}", m.Payload)
		}
	case <-time.After(waitTimeout):
		t.Fatal("B's subscriber did not receive the message published on A")
	}

	// The cap: 3 a minute for the room, whichever node takes them.
	for i, node := range []string{b, a} {
		if status := httpPublish(t, node, "lobby", "alerts", "pk", `{"message":{"n":2}}`); status != http.StatusOK {
			t.Fatalf("publish %d within the cap = %d, want 200", i+2, status)
		}
	}
	if status := httpPublish(t, b, "lobby", "alerts", "pk", `{"message":{"n":4}}`); status != http.StatusTooManyRequests {
		t.Errorf("a 4th publish in the minute, on B = %d, want 429", status)
	}

	history := func(base string) []string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/lobby/pubsub/alerts/history", nil)
		req.Header.Set("Authorization", "Bearer sk")
		resp, err := plainClient.Do(req)
		if err != nil {
			t.Fatalf("GET history = %v", err)
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				Messages []struct{ ID string } `json:"messages"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("GET history: %v", err)
		}
		var ids []string
		for _, m := range body.Data.Messages {
			ids = append(ids, m.ID)
		}
		return ids
	}
	ha, hb := history(a), history(b)
	if len(ha) != 3 {
		t.Errorf("history on A holds %d messages, want the 3 published", len(ha))
	}
	if diff := cmp.Diff(ha, hb); diff != "" {
		t.Errorf("history on A and B differ (-A +B):\n%s", diff)
	}

	// A client socket made on A, used on B, then used up for A too.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a+"/lobby/pubsub/alerts/client?max_uses=1", nil)
	req.Header.Set("Authorization", "Bearer sk")
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("GET client socket on A = %v", err)
	}
	var sock struct {
		Data struct{ Path string } `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&sock)
	resp.Body.Close()
	if err != nil || sock.Data.Path == "" {
		t.Fatalf("GET client socket on A: %d, %v, path %q", resp.StatusCode, err, sock.Data.Path)
	}
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(b, "http")+sock.Data.Path, nil)
	if err != nil {
		t.Fatalf("dialing A's client socket on B = %v", err)
	}
	ws.CloseNow()
	if _, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(a, "http")+sock.Data.Path, nil); err == nil || resp == nil || resp.StatusCode != http.StatusGone {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Errorf("dialing the used-up socket on A = %d, %v; want 410", status, err)
	}

	for _, node := range []string{a, b} {
		if status, body := getJSON(t, node+"/readyz"); status != http.StatusOK {
			t.Errorf("%s/readyz = %d %v, want 200", node, status, body)
		}
		if n := metricValue(scrape(t, node+"/metrics"), "plaza_redis_commands_total"); n < 2 {
			t.Errorf("%s/metrics: plaza_redis_commands_total = %v, want at least the 2 of the key secret", node, n)
		}
	}
}

// -redis stops the server at start when Redis does not answer or cannot
// serve, naming the setting.
func TestRedisRefused(t *testing.T) {
	cases := []struct {
		name string
		cfg  config
		want string
	}{
		{"with -memory", config{memory: true, redis: "redis://127.0.0.1:1"}, "-memory and -redis"},
		{"nothing listening", config{redis: "redis://127.0.0.1:1"}, "-redis redis://127.0.0.1:1"},
		{"not a URL", config{redis: "http://nope"}, "-redis http://nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.addr, cfg.publishKey, cfg.subscribeKey = "127.0.0.1:0", "pk", "sk"
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			err := run(ctx, testConfig(cfg), nil, nil, func(listening) { t.Error("the server started") })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("run(%s) = %v, want an error naming %q", c.name, err, c.want)
			}
		})
	}
}
