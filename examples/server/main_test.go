package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
)

func TestMain(m *testing.M) {
	// rueidis refreshes its view of a Redis (Cluster) topology after a
	// connection error on a goroutine that first sleeps up to about a
	// second, and Close does not cut that sleep short; the goroutine ends
	// by itself when it wakes up to a closed client.
	goleak.VerifyTestMain(removingBinary{m}, goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"))
}

// removingBinary runs the tests, then removes the server binary that the
// process tests built, if any.
type removingBinary struct{ m *testing.M }

func (r removingBinary) Run() int {
	defer func() {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
	}()
	return r.m.Run()
}

// waitTimeout bounds every wait for something that should happen: a
// deadlock guard, generous enough for a loaded machine, not a measurement.
const waitTimeout = 20 * time.Second

// plainClient is for plain requests: each must be answered within waitTimeout.
var plainClient = &http.Client{Timeout: waitTimeout}

// start runs the server on a free loopback port until the test ends and
// returns its address.
func start(t *testing.T, cfg config) string {
	t.Helper()
	return startWith(t, cfg, io.Discard, io.Discard).addr
}

// startWith is start with the server's output and logs going to out and
// logs, and both addresses returned.
func startWith(t *testing.T, cfg config, out, logs io.Writer) listening {
	t.Helper()
	at, _ := startStoppable(t, cfg, out, logs)
	return at
}

// startStoppable is startWith that returns too a stop, which begins the
// shutdown at once (as SIGTERM does); the test's end waits for it.
func startStoppable(t *testing.T, cfg config, out, logs io.Writer) (listening, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, testConfig(cfg), out, logs, func(a listening) { addrc <- a }) }()
	var addr listening
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run() = %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run() after shutdown = %v", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("run() still running %v after its context ended", waitTimeout)
		}
	})
	return addr, cancel
}

// testConfig fills the settings cfg leaves zero that every test shares
// with the defaults: logging and the shutdown timeout.
func testConfig(cfg config) config {
	if cfg.logFormat == "" {
		cfg.logFormat = "text"
	}
	if cfg.logLevel == "" {
		cfg.logLevel = "info"
	}
	if cfg.shutdownTimeout == 0 {
		cfg.shutdownTimeout = waitTimeout
	}
	return cfg
}

func TestServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cfg := config{addr: "127.0.0.1:0", publishKey: "pk-test", subscribeKey: "sk-test", data: t.TempDir()}

	var first pubsub.ID
	t.Run("keys", func(t *testing.T) {
		addr := start(t, cfg)
		client, err := network.NewClient("ws://"+addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		join := func(token string) (*pubsub.Room, error) {
			r, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{Token: token})
			if err == nil {
				t.Cleanup(func() { r.Leave(ctx) })
			}
			return r, err
		}
		alice, err := join("pk-test:alice")
		if err != nil {
			t.Fatalf("Join(publish key) = %v", err)
		}
		bob, err := join("sk-test:bob")
		if err != nil {
			t.Fatalf("Join(subscribe key) = %v", err)
		}
		if _, err := join("nope:mallory"); !errors.Is(err, pubsub.ErrUnauthenticated) {
			t.Errorf("Join(unknown key) = %v, want UNAUTHENTICATED", err)
		}
		got := make(chan pubsub.Message, 1)
		if _, err := bob.Subscribe(ctx, "chat", func(m pubsub.Message) { got <- m }); err != nil {
			t.Fatal(err)
		}
		m, err := alice.Publish(ctx, "chat", "hello")
		if err != nil {
			t.Fatalf("Publish(publish key) = %v", err)
		}
		first = m.ID
		select {
		case r := <-got:
			if r.From != "alice" || string(r.Payload) != `"hello"` {
				t.Errorf("bob received %s from %q", r.Payload, r.From)
			}
		case <-time.After(waitTimeout):
			t.Fatal("bob received nothing")
		}
		if _, err := bob.Publish(ctx, "chat", "hi"); !errors.Is(err, pubsub.ErrPermissionDenied) {
			t.Errorf("Publish(subscribe key) = %v, want PERMISSION_DENIED", err)
		}
	})
	t.Run("history survives a restart", func(t *testing.T) {
		addr := start(t, cfg)
		client, _ := network.NewClient("ws://"+addr, nil)
		r, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{Token: "sk-test:carol"})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Leave(ctx)
		p, err := r.GetHistory(ctx, "chat")
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Messages) != 1 || p.Messages[0].ID != first {
			t.Errorf("history after restart = %+v, want the message %v", p.Messages, first)
		}
	})
}

// TestRunRefusesBadConfig: a config that cannot serve stops the server at
// start with an error that names the setting.
func TestRunRefusesBadConfig(t *testing.T) {
	// A config run accepted would serve until the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, tt := range []struct {
		cfg  config
		want string
	}{
		{config{addr: "127.0.0.1:0", subscribeKey: "sk", memory: true}, "-publish-key"},
		{config{addr: "127.0.0.1:0", publishKey: "same", subscribeKey: "same", memory: true}, "-subscribe-key"},
		{config{addr: "127.0.0.1:0", publishKey: "pk:x", subscribeKey: "sk", memory: true}, "-publish-key"},
		{config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk"}, "-data"}, // no -data, no -memory
		{config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true, logFormat: "xml"}, "-log-format"},
		{config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true, logLevel: "loud"}, "-log-level"},
		{config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true, tlsCert: "cert.pem"}, "-tls-key"},
		{config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true, publishPerMinute: -1}, "-publish-per-minute"},
		{config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true, shutdownTimeout: -time.Second}, "-shutdown-timeout"},
		{config{addr: "256.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true}, "-addr"},
		{config{addr: "", publishKey: "pk", subscribeKey: "sk", memory: true}, "-addr"}, // not every interface on a random port
		{config{addr: "127.0.0.1:0", metricsAddr: "256.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true}, "-metrics-addr"},
	} {
		if err := run(ctx, testConfig(tt.cfg), io.Discard, io.Discard, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%+v) = %v, want an error naming %s", tt.cfg, err, tt.want)
		}
	}
}

// TestDataFolderInUse starts a second server on the folder of a running one:
// it must fail at once, saying the folder is in use.
func TestDataFolderInUse(t *testing.T) {
	cfg := config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", data: t.TempDir()}
	start(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, testConfig(cfg), io.Discard, io.Discard, nil) }()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "in use by another Plaza server") {
			t.Errorf("second server on the same folder: %v, want an error saying it is in use", err)
		}
	case <-time.After(waitTimeout):
		cancel() // stop it, so that it does not outlive the test
		t.Fatal("the second server hangs")
	}
	cancel()
}

// TestHTTP drives the example over plain HTTP, as its printed help does:
// the page, an SSE stream, a curl-style publish, history, and the memory
// flag.
func TestHTTP(t *testing.T) {
	addr := start(t, config{addr: "127.0.0.1:0", publishKey: defaultPublishKey, subscribeKey: defaultSubscribeKey, memory: true})
	base := "http://" + addr
	resp, err := plainClient.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "window.plaza") {
		t.Fatalf("GET / = %d, %d bytes; want the page", resp.StatusCode, len(body))
	}

	// The page's icon, which browsers ask for by themselves: no 404.
	resp, err = plainClient.Get(base + "/favicon.ico")
	if err != nil {
		t.Fatal(err)
	}
	icon, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "image/svg+xml" || !strings.Contains(string(icon), "<svg") {
		t.Errorf("GET /favicon.ico = %d %s, %d bytes; want 200 and an SVG image", resp.StatusCode, ct, len(icon))
	}

	// The stream is read until the event arrives, within waitTimeout.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	sreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/lobby/pubsub/alerts/subscribe?token="+defaultSubscribeKey, nil)
	stream, err := http.DefaultClient.Do(sreq)
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("subscribe = %v, %v", stream, err)
	}
	defer stream.Body.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/lobby/pubsub/alerts/publish", strings.NewReader(`{"message": "Server restarted"}`))
	req.Header.Set("Authorization", "Bearer "+defaultPublishKey)
	req.Header.Set("Content-Type", "application/json")
	pr, err := plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var env struct{ Data pubsub.Message }
	json.NewDecoder(pr.Body).Decode(&env)
	pr.Body.Close()
	if pr.StatusCode != 200 || env.Data.ID == 0 {
		t.Fatalf("publish = %d %+v", pr.StatusCode, env)
	}
	lines := bufio.NewScanner(stream.Body)
	want := "id: " + env.Data.ID.String()
	for lines.Scan() {
		if lines.Text() == want {
			break
		}
	}
	if !lines.Scan() || !strings.Contains(lines.Text(), `"payload":"Server restarted"`) {
		t.Errorf("the event after %q is %q, want the message", want, lines.Text())
	}

	req, _ = http.NewRequest(http.MethodPost, base+"/lobby/pubsub/alerts/publish", strings.NewReader(`{"message": 1}`))
	req.Header.Set("Authorization", "Bearer "+defaultSubscribeKey)
	pr, err = plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pr.Body.Close()
	if pr.StatusCode != http.StatusForbidden {
		t.Errorf("publish with the subscribe key = %d, want 403", pr.StatusCode)
	}
}
