package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
)

// syncBuffer collects what the server writes from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogs runs a whole session, every route with every kind of
// credential, a refused one included, and a shutdown; then it reads the
// JSON log. Connection events name the room, client, remote address and
// close code; no line holds a key, a client socket token or a payload.
func TestLogs(t *testing.T) {
	const (
		pk      = "pk-Secret-7f3a9c"
		sk      = "sk-Secret-91bc2e"
		wrong   = "pk-Wrong-55aa01"
		payload = "payload-marker-4242"
	)
	var out, logs syncBuffer
	var socketToken string
	t.Run("session", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		addr := startWith(t, config{addr: "127.0.0.1:0", publishKey: pk, subscribeKey: sk, data: t.TempDir(), logFormat: "json", logLevel: "debug"}, &out, &logs).addr
		base := "http://" + addr
		client, err := network.NewClient("ws://"+addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		alice, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{Token: pk + ":alice"})
		if err != nil {
			t.Fatal(err)
		}
		bob, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{Token: sk})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{Token: wrong + ":mallory"}); err == nil {
			t.Fatal("Join with a wrong key succeeded")
		}
		got := make(chan pubsub.Message, 4)
		if _, err := bob.Subscribe(ctx, "chat", func(m pubsub.Message) { got <- m }); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Publish(ctx, "chat", payload); err != nil {
			t.Fatal(err)
		}
		if status := httpPublish(t, base, "lobby", "chat", pk, `{"message": "`+payload+`"}`); status != 200 {
			t.Fatalf("HTTP publish = %d", status)
		}
		if status := httpPublish(t, base, "lobby", "chat", wrong, `{"message": "`+payload+`"}`); status != http.StatusUnauthorized {
			t.Fatalf("HTTP publish with a wrong key = %d, want 401", status)
		}
		for range 2 {
			select {
			case <-got:
			case <-ctx.Done():
				t.Fatal("bob did not receive both messages")
			}
		}
		// An event stream, history and a temporary client socket, with the
		// key in the query.
		sreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/lobby/pubsub/chat/subscribe?token="+sk, nil)
		stream, err := http.DefaultClient.Do(sreq)
		if err != nil || stream.StatusCode != 200 {
			t.Fatalf("SSE subscribe = %v, %v", stream, err)
		}
		bufio.NewReader(stream.Body).ReadString('\n') // the stream has begun
		stream.Body.Close()
		resp, err := plainClient.Get(base + "/lobby/pubsub/chat/history?token=" + sk)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		resp, err = plainClient.Get(base + "/lobby/pubsub/chat/client?token=" + sk)
		if err != nil {
			t.Fatal(err)
		}
		var env struct{ Data struct{ Path string } }
		json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		socketToken = env.Data.Path[strings.LastIndexByte(env.Data.Path, '/')+1:]
		if socketToken == "" {
			t.Fatalf("no client socket path in %+v", env)
		}
		ws, _, err := websocket.Dial(ctx, "ws://"+addr+env.Data.Path, nil)
		if err != nil {
			t.Fatalf("dialing the client socket: %v", err)
		}
		ws.Close(websocket.StatusNormalClosure, "")
		bob.Leave(ctx)
		alice.Leave(ctx)
	}) // the server has shut down

	text := logs.String()
	for _, secret := range []string{pk, sk, wrong, socketToken, payload} {
		if strings.Contains(text, secret) {
			t.Errorf("the log holds %q:\n%s", secret, text)
		}
	}
	for _, secret := range []string{pk, sk, wrong, socketToken} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("the output holds %q:\n%s", secret, out.String())
		}
	}
	var opened, closed int
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %v\n%s", err, line)
		}
		switch rec["msg"] {
		case "network: connection opened", "network: connection closed":
			for _, k := range []string{"protocol", "room", "client", "remote"} {
				if s, _ := rec[k].(string); s == "" {
					t.Errorf("%s has no %s: %s", rec["msg"], k, line)
				}
			}
			if rec["msg"] == "network: connection opened" {
				opened++
				break
			}
			closed++
			if _, ok := rec["code"].(float64); rec["protocol"] == "websocket" && !ok {
				t.Errorf("a closed WebSocket has no close code: %s", line)
			}
		}
	}
	if opened != 4 || closed != 4 { // alice, bob, the stream and the client socket
		t.Errorf("%d connections opened and %d closed in the log, want 4 and 4:\n%s", opened, closed, text)
	}
}
