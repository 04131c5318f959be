package network

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// TestPlazaJS runs the test suite of plaza.js (js/test/*.test.mjs) under
// node --test against a real Server on a loopback port. The suite gets the
// server's address in PLAZA_URL and a control address in PLAZA_CONTROL,
// whose routes stop and start the Server on the same port (a restart, as
// clients see it: every connection drops, then the port refuses them until
// it listens again), publish from a Go Room while the server is away, and
// make the next publish on topic "flaky" fail with NETWORK_ERROR after the
// hub has published it (a lost reply), so that the suite can check that
// retries are not duplicated.
//
// Credentials are the client id itself; "bad" is refused. Publishing to
// "mods-only" is PERMISSION_DENIED, and to "limited" RATE_LIMIT_EXCEEDED.
//
// It skips when node is missing, unless CI is "true", where it fails.
func TestPlazaJS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node; skipped with -short")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and node is not installed (apt-get install nodejs, as .ci/run does)")
		}
		t.Skip("skipping the plaza.js suite: node is not installed")
	}
	js := newJSServer(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-concurrency=1", "--test-timeout=30000", "--test-reporter=spec")
	if pat := os.Getenv("PLAZA_JS_TESTS"); pat != "" {
		cmd.Args = append(cmd.Args, "--test-name-pattern="+pat)
	}
	files, err := filepath.Glob("js/test/*.test.mjs")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in js/test: %v", err)
	}
	for _, f := range files {
		cmd.Args = append(cmd.Args, strings.TrimPrefix(f, "js/"))
	}
	cmd.Dir = "js"
	cmd.Env = append(os.Environ(), "PLAZA_URL="+js.url(), "PLAZA_CONTROL="+js.control.URL,
		// Node 20 has WebSocket only behind this flag; Node 22 and later
		// have it anyway. NODE_OPTIONS reaches the runner's child processes.
		"NODE_OPTIONS=--experimental-websocket --no-warnings")
	out, err := cmd.CombinedOutput()
	t.Logf("node --test js/test/:\n%s", out)
	if err != nil {
		t.Fatalf("the plaza.js suite failed: %v", err)
	}
}

// jsServer is a hub behind a Server that can be stopped and started again
// on the same loopback address, with a control server to do so.
type jsServer struct {
	tb      testing.TB
	hub     *memory.Hub
	faults  atomic.Int32 // publishes on "flaky" still to fail after publishing
	addr    string
	control *httptest.Server

	mu   sync.Mutex
	srv  *Server
	http *http.Server
	done chan struct{}
}

func newJSServer(tb testing.TB) *jsServer {
	tb.Helper()
	hub, err := memory.New(memory.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	j := &jsServer{tb: tb, hub: hub}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	j.addr = ln.Addr().String()
	j.serve(ln)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, r *http.Request) {
		j.stop()
	})
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) {
		if err := j.start(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("POST /fault", func(w http.ResponseWriter, r *http.Request) {
		j.faults.Add(1)
	})
	// POST /publish?room=&topic=&from= publishes the body, JSON, as from
	// ("gopher" when empty), straight into the hub.
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		var payload json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&payload); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		from := r.URL.Query().Get("from")
		if from == "" {
			from = "gopher"
		}
		room, err := pubsub.Join(r.Context(), hub, r.URL.Query().Get("room"), &pubsub.JoinOptions{ClientID: from})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer room.Leave(context.Background())
		m, err := room.Publish(r.Context(), r.URL.Query().Get("topic"), payload)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(m)
	})
	j.control = httptest.NewServer(mux)
	tb.Cleanup(func() {
		j.control.Close()
		j.stop()
		_ = hub.Close()
	})
	return j
}

func (j *jsServer) url() string { return "ws://" + j.addr }

// serve starts a fresh Server on ln.
func (j *jsServer) serve(ln net.Listener) {
	srv := NewServer(faultyTransport{j}, Options{
		Authenticate: func(_ context.Context, _ *http.Request, cred string) (Identity, error) {
			if cred == "" || cred == "bad" {
				return Identity{}, errors.New("unknown credential")
			}
			return Identity{ClientID: cred}, nil
		},
		Authorize: func(_ context.Context, _ Identity, a pubsub.Access) error {
			if a.Action != pubsub.ActionPublish {
				return nil
			}
			switch a.Topic {
			case "mods-only":
				return pubsub.Errorf(pubsub.CodePermissionDenied, "publish to mods-only: not a moderator")
			case "limited":
				return &pubsub.Error{Code: pubsub.CodeRateLimitExceeded, Message: "limited is over its cap", RetryAfter: time.Second}
			}
			return nil
		},
	})
	hs := &http.Server{Handler: srv}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	j.mu.Lock()
	j.srv, j.http, j.done = srv, hs, done
	j.mu.Unlock()
}

// stop shuts the Server down and closes its port.
func (j *jsServer) stop() {
	j.mu.Lock()
	srv, hs, done := j.srv, j.http, j.done
	j.srv, j.http, j.done = nil, nil, nil
	j.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = hs.Shutdown(ctx)
	<-done
}

// start listens on the same address again with a new Server.
func (j *jsServer) start() error {
	j.mu.Lock()
	running := j.srv != nil
	j.mu.Unlock()
	if running {
		return nil
	}
	var ln net.Listener
	var err error
	deadline := time.Now().Add(waitTimeout)
	for {
		if ln, err = net.Listen("tcp", j.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old socket is still closing
	}
	if err != nil {
		return err
	}
	j.serve(ln)
	return nil
}

// faultyTransport is the hub, whose Conns fail a publish on "flaky" with
// NETWORK_ERROR, after publishing it, while faults are armed.
type faultyTransport struct{ j *jsServer }

func (f faultyTransport) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	c, err := f.j.hub.Connect(ctx, req)
	if err != nil {
		return nil, err
	}
	return faultyConn{c, f.j}, nil
}

type faultyConn struct {
	pubsub.Conn
	j *jsServer
}

func (c faultyConn) Publish(ctx context.Context, req pubsub.PublishRequest) (pubsub.Message, error) {
	m, err := c.Conn.Publish(ctx, req)
	if err != nil || req.Topic != "flaky" {
		return m, err
	}
	for n := c.j.faults.Load(); n > 0; n = c.j.faults.Load() {
		if c.j.faults.CompareAndSwap(n, n-1) {
			return pubsub.Message{}, pubsub.Errorf(pubsub.CodeNetworkError, "the reply to publish %s was lost", req.IdempotencyKey)
		}
	}
	return m, nil
}

// TestScriptRoutes checks that a Server serves plaza.js and plaza.d.ts at
// their fixed paths, and that a room of the same name keeps its routes.
func TestScriptRoutes(t *testing.T) {
	f := newFixture(t, memory.Options{}, Options{})
	for _, tc := range []struct {
		path, contentType string
		body              []byte
	}{
		{ScriptPath, "text/javascript; charset=utf-8", plazaJS},
		{TypesPath, "application/typescript; charset=utf-8", plazaDTS},
	} {
		resp, err := http.Get(f.ts.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.contentType || !bytes.Equal(body, tc.body) {
			t.Errorf("GET %s = %d %q, %d bytes; want 200 %q, the embedded %d bytes", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), tc.contentType, len(tc.body))
		}
	}
	if !bytes.Contains(plazaJS, []byte("export async function join(")) {
		t.Error("the embedded plaza.js has no join")
	}
	// A room named plaza.js is still a room.
	resp, err := http.Get(f.ts.URL + "/plaza.js/pubsub/chat/history?token=" + testTokenPrefix + "alice")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /plaza.js/pubsub/chat/history = %d, want 200: the script route shadows a room", resp.StatusCode)
	}
}

// TestPlazaJSBrowser runs plaza.js in headless Chromium
// (testdata/browser/plazajs.mjs, with playwright-core): two pages import it
// from the Server's /plaza.js, publish to each other without self-echo,
// get PlazaErrors before any I/O, page history, and ride out a server
// restart with the gap filled. It skips as TestBrowser does, and fails
// with CI=true when Chromium, node or playwright-core is missing.
func TestPlazaJSBrowser(t *testing.T) {
	node := browserTools(t)
	js := newJSServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "plazajs.mjs", "http://"+js.addr, js.control.URL, filepath.Join(t.TempDir(), "profile"))
	cmd.Dir = "testdata/browser"
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromiumPath)
	out, err := cmd.CombinedOutput()
	t.Logf("plazajs.mjs against %s:\n%s", js.addr, out)
	if err != nil {
		t.Fatalf("plaza.js in Chromium failed: %v", err)
	}
}

// TestChatBrowser builds examples/server and has two browser contexts,
// alice and bob, use its chat demo at /chat (testdata/browser/chat.mjs):
// history on entry and "load older", a live message shown once to its
// sender, the people list, the typing indicator, live cursors and a private
// message that only its recipient sees, and, with alice's WebSocket cut by
// the test while bob writes, the reconnect status and the catch-up of the
// two messages she missed. SCREENSHOTS=<dir> saves both
// windows there. It skips and fails as TestBrowser does.
func TestChatBrowser(t *testing.T) {
	node := browserTools(t)
	base := startExample(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "chat.mjs", base, "pk-dev", "sk-dev", os.Getenv("SCREENSHOTS"))
	cmd.Dir = "testdata/browser"
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromiumPath)
	out, err := cmd.CombinedOutput()
	t.Logf("chat.mjs against %s:\n%s", base, out)
	if err != nil {
		t.Fatalf("the chat page checks failed: %v", err)
	}
}
