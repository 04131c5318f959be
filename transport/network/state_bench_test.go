package network

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/plazahq/plaza/transport/memory"
)

// benchServer is a Server over a fresh hub, called through its handler
// without a socket, so that what is measured is the Server's own work.
func benchServer(b *testing.B, opts Options) *Server {
	b.Helper()
	hub, err := memory.New(memory.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hub.Close() })
	opts.Authenticate = testAuthenticate
	return NewServer(hub, opts)
}

func serve(b *testing.B, s *Server, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testTokenPrefix+"alice")
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		b.Fatalf("%s %s = %d %s", method, path, w.Code, w.Body)
	}
	return w
}

// BenchmarkHTTPPublishCapped: an HTTP publish that passes the room's
// per-minute cap (Options.PublishWindow).
func BenchmarkHTTPPublishCapped(b *testing.B) {
	s := benchServer(b, Options{PublishPerMinute: 1 << 30})
	b.ReportAllocs()
	for b.Loop() {
		serve(b, s, http.MethodPost, "/lobby/pubsub/news/publish", `{"message":1,"persist":false}`)
	}
}

// BenchmarkClientSocketDescribe: a plain GET of a temporary client
// socket's path, which looks it up in Options.Sockets without using it.
func BenchmarkClientSocketDescribe(b *testing.B) {
	s := benchServer(b, Options{})
	w := serve(b, s, http.MethodGet, "/lobby/pubsub/alerts/client?max_uses=0&ttl=600000", "")
	var env struct {
		Data struct {
			Path string `json:"path"`
		} `json:"data"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Data.Path == "" {
		b.Fatalf("creating a client socket: %s, %v", w.Body, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		serve(b, s, http.MethodGet, env.Data.Path, "")
	}
}

// BenchmarkClientSocketCreate: GET …/client, which stores a new socket.
func BenchmarkClientSocketCreate(b *testing.B) {
	s := benchServer(b, Options{MaxClientSocketsPerRoom: 1 << 30, MaxClientSockets: 1 << 30})
	b.ReportAllocs()
	for b.Loop() {
		serve(b, s, http.MethodGet, "/lobby/pubsub/alerts/client", "")
	}
}
