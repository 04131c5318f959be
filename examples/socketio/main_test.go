package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
	"github.com/plazahq/plaza/transport/socketio"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testAdminKey = "admin-key-of-the-tests"

// start runs the server on a free loopback port until the test ends and
// returns its address.
func start(t *testing.T, cfg config) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, io.Discard, func(a string) { addrc <- a }) }()
	stopped := false
	t.Cleanup(func() {
		cancel()
		if stopped {
			return
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run() after shutdown = %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("run() still running 20 s after its context was canceled")
		}
	})
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		stopped = true
		t.Fatalf("run() = %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start within 10 s")
	}
	return addr
}

// call sends an HTTP request and returns the status and body.
func call(t *testing.T, method, url, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var credLine = regexp.MustCompile(`(?m)^(App ID|Publish key|Subscribe key): +(\S+)`)

// credentials reads the values the apps commands print.
func credentials(out string) map[string]string {
	m := map[string]string{}
	for _, l := range credLine.FindAllStringSubmatch(out, -1) {
		m[l[1]] = l[2]
	}
	return m
}

func TestAppsCommands(t *testing.T) {
	data := t.TempDir()
	var out bytes.Buffer
	if err := apps([]string{"create", "-data", data, "-name", "My shop"}, &out); err != nil {
		t.Fatalf("apps create: %v", err)
	}
	c := credentials(out.String())
	if !strings.HasPrefix(c["App ID"], "app_") || !strings.HasPrefix(c["Publish key"], "pk_live_") || !strings.HasPrefix(c["Subscribe key"], "sub_live_") {
		t.Fatalf("apps create printed:\n%s", out.String())
	}
	out.Reset()
	if err := apps([]string{"list", "-data", data}, &out); err != nil || !strings.Contains(out.String(), c["App ID"]) || !strings.Contains(out.String(), "My shop") || strings.Contains(out.String(), c["Publish key"]) {
		t.Errorf("apps list = %v:\n%s", err, out.String())
	}
	out.Reset()
	if err := apps([]string{"rotate", "-data", data, "-key", "subscribe", c["App ID"]}, &out); err != nil {
		t.Fatalf("apps rotate: %v", err)
	}
	r := credentials(out.String())
	if !strings.HasPrefix(r["Subscribe key"], "sub_live_") || r["Subscribe key"] == c["Subscribe key"] || r["Publish key"] != "" {
		t.Errorf("apps rotate printed:\n%s", out.String())
	}

	// The server sees what the commands did; the old subscribe key is refused.
	addr := start(t, config{addr: "127.0.0.1:0", data: data, adminKey: testAdminKey})
	client, err := network.NewClient("ws://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := pubsub.Join(ctx, client, c["App ID"], &pubsub.JoinOptions{Token: c["Subscribe key"]}); !errors.Is(err, pubsub.ErrUnauthenticated) {
		t.Errorf("Join with the rotated subscribe key = %v, want UNAUTHENTICATED", err)
	}
	room, err := pubsub.Join(ctx, client, c["App ID"], &pubsub.JoinOptions{Token: r["Subscribe key"]})
	if err != nil {
		t.Fatalf("Join with the new subscribe key = %v", err)
	}
	defer room.Leave(ctx)

	// While the server runs, the commands point at the admin API.
	err = apps([]string{"create", "-data", data}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "admin API") {
		t.Errorf("apps create while the server runs = %v, want a pointer to the admin API", err)
	}

	for _, args := range [][]string{{}, {"frobnicate"}, {"delete", "-data", data}, {"rotate", "-data", data, "-key", "admin", c["App ID"]}} {
		if err := apps(args, io.Discard); err == nil {
			t.Errorf("apps %q = nil error", args)
		}
	}
}

func TestAppsDelete(t *testing.T) {
	data := t.TempDir()
	var out bytes.Buffer
	if err := apps([]string{"create", "-data", data}, &out); err != nil {
		t.Fatal(err)
	}
	id := credentials(out.String())["App ID"]
	if err := apps([]string{"delete", "-data", data, id}, io.Discard); err != nil {
		t.Fatalf("apps delete: %v", err)
	}
	if err := apps([]string{"delete", "-data", data, id}, io.Discard); err == nil {
		t.Error("deleting twice = nil error")
	}
	out.Reset()
	apps([]string{"list", "-data", data}, &out)
	if strings.Contains(out.String(), id) {
		t.Errorf("apps list after delete:\n%s", out.String())
	}
}

// TestSeedFlow runs the README's flow against the server: create an app
// through the admin API, publish with the seed's curl line, and receive it
// as a Plaza client on room = App ID, topic = channel; then restart and
// find the app, its keys and the history.
func TestSeedFlow(t *testing.T) {
	data := t.TempDir()
	cfg := config{addr: "127.0.0.1:0", data: data, publishPerMinute: 2}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var app map[string]any
	var first pubsub.ID
	t.Run("first run", func(t *testing.T) {
		addr := start(t, cfg)
		key, err := os.ReadFile(filepath.Join(data, "admin.key"))
		if err != nil {
			t.Fatalf("no admin key was made: %v", err)
		}
		status, body := call(t, "POST", "http://"+addr+"/admin/apps", `{"name":"My shop"}`, "Authorization", "Bearer "+strings.TrimSpace(string(key)))
		var created struct{ Data map[string]any }
		if status != http.StatusCreated || json.Unmarshal([]byte(body), &created) != nil {
			t.Fatalf("POST /admin/apps = %d %s", status, body)
		}
		app = created.Data
		id, pk, sk := app["appId"].(string), app["publishKey"].(string), app["subscribeKey"].(string)

		client, err := network.NewClient("ws://"+addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		room, err := pubsub.Join(ctx, client, id, &pubsub.JoinOptions{Token: sk + ":plaza-client"})
		if err != nil {
			t.Fatalf("Join(App ID, subscribe key) = %v", err)
		}
		defer room.Leave(context.Background())
		got := make(chan pubsub.Message, 1)
		if _, err := room.Subscribe(ctx, "orders.42", func(m pubsub.Message) { got <- m }); err != nil {
			t.Fatal(err)
		}
		if _, err := room.Publish(ctx, "orders.42", 1); !errors.Is(err, pubsub.ErrPermissionDenied) {
			t.Errorf("Publish with the subscribe key = %v, want PERMISSION_DENIED", err)
		}
		publish := func() (int, string) {
			return call(t, "POST", "http://"+addr+"/publish", `{"channel":"orders.42","event":"order.updated","data":{"id":42}}`,
				"Content-Type", "application/json", "X-App-Id", id, "Authorization", "Bearer "+pk)
		}
		if status, body := publish(); status != http.StatusOK {
			t.Fatalf("the seed's curl line = %d %s", status, body)
		}
		select {
		case m := <-got:
			first = m.ID
			if string(m.Payload) != `{"id":42}` || m.Metadata["event"] != "order.updated" {
				t.Errorf("the Plaza client received %s %v", m.Payload, m.Metadata)
			}
		case <-ctx.Done():
			t.Fatal("the Plaza client received nothing")
		}
		publish()
		if status, body := publish(); status != http.StatusTooManyRequests {
			t.Errorf("third publish under -publish-per-minute 2 = %d %s, want 429", status, body)
		}
		if status, _ := call(t, "GET", "http://"+addr+"/", ""); status != http.StatusOK {
			t.Errorf("GET / = %d", status)
		}
		if status, body := call(t, "GET", "http://"+addr+"/socket.io/socket.io.js", ""); status != http.StatusOK || !strings.Contains(body[:200], "Socket.IO v"+socketio.ClientVersion) {
			t.Errorf("GET /socket.io/socket.io.js = %d %.80q", status, body)
		}
	})
	t.Run("after a restart", func(t *testing.T) {
		addr := start(t, cfg)
		client, _ := network.NewClient("ws://"+addr, nil)
		room, err := pubsub.Join(ctx, client, app["appId"].(string), &pubsub.JoinOptions{Token: app["subscribeKey"].(string)})
		if err != nil {
			t.Fatalf("Join after a restart = %v", err)
		}
		defer room.Leave(context.Background())
		page, err := room.GetHistory(ctx, "orders.42")
		if err != nil || len(page.Messages) != 2 || page.Messages[0].ID != first {
			t.Errorf("history after a restart = %+v, %v; want the two publishes from %v", page.Messages, err, first)
		}
	})
}

func TestDataFolderInUse(t *testing.T) {
	cfg := config{addr: "127.0.0.1:0", data: t.TempDir(), adminKey: testAdminKey}
	start(t, cfg)
	err := run(context.Background(), cfg, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second server on the folder = %v, want an error saying it is in use", err)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	for _, cfg := range []config{
		{addr: "127.0.0.1:0"}, // no -data
		{addr: "127.0.0.1:0", data: t.TempDir(), adminKey: "short"},
	} {
		if err := run(context.Background(), cfg, io.Discard, nil); err == nil {
			t.Errorf("run(%+v) = nil, want an error", cfg)
		}
	}
}
