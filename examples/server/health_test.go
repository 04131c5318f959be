package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/history"
)

// getJSON gets url and decodes its JSON body.
func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := plainClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s = %v", url, err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", url, ct)
	}
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: the body is not JSON: %v", url, err)
	}
	return resp.StatusCode, body
}

func TestHealth(t *testing.T) {
	data := t.TempDir()
	base := "http://" + start(t, config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", data: data})
	if status, body := getJSON(t, base+"/healthz"); status != 200 || body["status"] != "ok" {
		t.Errorf("/healthz = %d %v, want 200 ok", status, body)
	}
	if status, body := getJSON(t, base+"/readyz"); status != 200 || body["status"] != "ok" {
		t.Errorf("/readyz = %d %v, want 200 ok", status, body)
	}
	entries, err := os.ReadDir(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Name() {
		case "history.db", "history.db-wal0", "history.db-wal1", "key-secret": // the store's and the server's own
		default:
			t.Errorf("the readiness probe left %s in the data folder", e.Name())
		}
	}

	// The data folder goes away under the server: it still serves, but it is
	// no longer ready, and says why.
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout) // past the probe's one-second cache
	for {
		status, body := getJSON(t, base+"/readyz")
		if status == http.StatusServiceUnavailable {
			checks, _ := body["checks"].(map[string]any)
			why, _ := checks["history"].(string)
			if body["status"] != "unavailable" || !strings.Contains(why, data) {
				t.Errorf("/readyz = %v, want status unavailable and a history check naming %s", body, data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %v %v after the data folder was removed", status, body, waitTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, _ := getJSON(t, base+"/healthz"); status != 200 {
		t.Errorf("/healthz = %d with the data folder gone, want 200: the process still serves", status)
	}
}

// With history in memory there is nothing to probe: ready at once.
func TestHealthMemory(t *testing.T) {
	base := "http://" + start(t, config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true})
	if status, body := getJSON(t, base+"/readyz"); status != 200 || body["status"] != "ok" {
		t.Errorf("/readyz = %d %v, want 200 ok", status, body)
	}
}

// A commit that failed makes the server unready until one succeeds.
func TestReadyAfterFailedCommit(t *testing.T) {
	data := t.TempDir()
	store, err := history.OpenBolt(filepath.Join(data, "history.db"), history.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m := newServerMetrics()
	h := &historyProbe{store: store, data: data, metrics: m}
	ctx := context.Background()
	if p := h.probe(ctx); p != "" {
		t.Fatalf("probe() = %q on a fresh store, want ready", p)
	}
	m.commitDone(time.Now(), errors.New("disk full"))
	if p := h.probe(ctx); !strings.Contains(p, "disk full") {
		t.Errorf("probe() after a failed commit = %q, want it to say the commit failed", p)
	}
	m.commitDone(time.Now(), nil)
	if p := h.probe(ctx); p != "" {
		t.Errorf("probe() after a commit succeeded again = %q, want ready", p)
	}
	store.Close()
	if p := h.probe(ctx); !strings.Contains(p, "does not answer") {
		t.Errorf("probe() on a closed store = %q, want it to say the store does not answer", p)
	}
}

// Once the server shuts down, /readyz answers 503 for as long as it still
// answers (on -metrics-addr that is until the very end), so that a load
// balancer stops sending clients before the listener goes.
func TestReadyzDuringShutdown(t *testing.T) {
	at, stop := startStoppable(t, config{addr: "127.0.0.1:0", metricsAddr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true}, io.Discard, io.Discard)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	// A WebSocket that never reads, so never answers the going-away close:
	// the shutdown waits for it, which keeps the metrics listener up.
	ws, _, err := websocket.Dial(ctx, "ws://"+at.addr+"/lobby/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer pk"}}})
	if err != nil {
		t.Fatalf("Dial() = %v", err)
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx); err != nil { // the welcome: the server holds the connection
		t.Fatalf("reading the welcome: %v", err)
	}
	if status, body := getJSON(t, "http://"+at.metrics+"/readyz"); status != 200 {
		t.Fatalf("/readyz before the shutdown = %d %v, want 200", status, body)
	}
	stop()
	for {
		resp, err := plainClient.Get("http://" + at.metrics + "/readyz")
		if err != nil {
			t.Fatalf("/readyz went away (%v) without answering 503 during the shutdown", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			return
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/readyz during the shutdown = %d, want 503", resp.StatusCode)
		}
		if ctx.Err() != nil {
			t.Fatalf("/readyz still answers 200 %v after the shutdown began", waitTimeout)
		}
	}
}
