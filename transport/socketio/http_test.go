package socketio

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// handshake GETs the first polling request of a Socket.IO client with
// origin (none when empty) and returns the response.
func handshake(tb testing.TB, base, origin string) (*http.Response, string) {
	tb.Helper()
	req, _ := http.NewRequestWithContext(ctxT(tb), http.MethodGet, base+Path+"?EIO=4&transport=polling", nil)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{OriginPatterns: []string{"localhost:*", "https://*.example.com"}})
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser
		{f.ts.URL, true},
		{"http://localhost:3000", true},
		{"https://app.example.com", true},
		{"http://app.example.com", false}, // the pattern names https
		{"http://evil.test", false},
		{"http://localhost.evil.test:3000", false},
		{"null", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			resp, body := handshake(t, f.ts.URL, tt.origin)
			if tt.ok {
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "0{") {
					t.Errorf("handshake from %q = %d %q, want 200 and an open packet", tt.origin, resp.StatusCode, body)
				}
				if acao := resp.Header.Get("Access-Control-Allow-Origin"); tt.origin != "" && acao != tt.origin {
					t.Errorf("handshake from %q: Access-Control-Allow-Origin %q", tt.origin, acao)
				}
				return
			}
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "PERMISSION_DENIED") {
				t.Errorf("handshake from %q = %d %q, want 403 PERMISSION_DENIED", tt.origin, resp.StatusCode, body)
			}
			if acao := resp.Header.Get("Access-Control-Allow-Origin"); acao != "" {
				t.Errorf("refused origin %q got Access-Control-Allow-Origin %q", tt.origin, acao)
			}
		})
	}
	t.Run("websocket", func(t *testing.T) {
		url := "ws" + strings.TrimPrefix(f.ts.URL, "http") + Path + "?EIO=4&transport=websocket"
		_, resp, err := websocket.Dial(ctxT(t), url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://evil.test"}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("WebSocket from another origin: %v, %v; want 403", resp, err)
		}
		ws, _, err := websocket.Dial(ctxT(t), url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://localhost:3000"}}})
		if err != nil {
			t.Fatalf("WebSocket from an allowed origin: %v", err)
		}
		ws.CloseNow()
	})
}

func TestSameOriginOnlyByDefault(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	if resp, _ := handshake(t, f.ts.URL, "http://localhost:3000"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("handshake from another origin without OriginPatterns = %d, want 403", resp.StatusCode)
	}
	if resp, _ := handshake(t, f.ts.URL, f.ts.URL); resp.StatusCode != http.StatusOK {
		t.Errorf("same-origin handshake = %d, want 200", resp.StatusCode)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	reg := openRegistry(t)
	f := newFixture(t, Options{})
	for _, opts := range []Options{
		{PublisherID: "same", ListenerID: "same"},
		{ListenerID: "bad\nid"},
		{DefaultEvent: "connect"},
		{OriginPatterns: []string{"[bad"}},
	} {
		if s, err := New(f.hub, reg, opts); err == nil {
			s.Close()
			t.Errorf("New(%+v) = nil error", opts)
		}
	}
	if _, err := New(nil, reg, Options{}); err == nil {
		t.Error("New(nil Transport) = nil error")
	}
}

func TestServesTheClientBundle(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	for _, path := range []string{"socket.io.js", "socket.io.min.js"} {
		resp, err := client.Get(f.ts.URL + Path + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, clientBundle) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/javascript") {
			t.Errorf("GET %s%s = %d %s, %d bytes; want the bundle", Path, path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
		}
		if etag := resp.Header.Get("ETag"); etag != `"`+ClientVersion+`"` {
			t.Errorf("ETag = %q", etag)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, f.ts.URL+Path+"socket.io.js", nil)
	req.Header.Set("If-None-Match", `"`+ClientVersion+`"`)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET with If-None-Match = %v, %v; want 304", resp, err)
	} else {
		resp.Body.Close()
	}
	if !bytes.Contains(clientBundle[:200], []byte("Socket.IO v"+ClientVersion)) {
		t.Errorf("the embedded bundle is not socket.io-client %s: %.100s", ClientVersion, clientBundle)
	}
}

// TestClientBundleMatchesLockfile checks that the embedded bundle is the one
// of the socket.io-client that npm ci installs for the tests.
func TestClientBundleMatchesLockfile(t *testing.T) {
	t.Parallel()
	dist, err := os.ReadFile(nodeDir + "/node_modules/socket.io-client/dist/socket.io.min.js")
	if errors.Is(err, os.ErrNotExist) {
		needNode(t) // skips, or fails under CI
		t.Skip("socket.io-client is not installed")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dist, clientBundle) {
		t.Errorf("client/socket.io.min.js differs from %s/node_modules/socket.io-client/dist/socket.io.min.js: copy it again after changing the lockfile", nodeDir)
	}
}
