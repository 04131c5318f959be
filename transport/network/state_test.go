package network

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// TestServersShareSockets: two Servers that share a SocketStore act as one
// for temporary client sockets: one created on A opens on B, and its uses
// are counted once for both.
func TestServersShareSockets(t *testing.T) {
	t.Parallel()
	shared := NewMemorySocketStore(0)
	a := newKeyFixture(t, memory.Options{}, Options{Sockets: shared})
	b := newKeyFixture(t, memory.Options{}, Options{Sockets: shared})
	alone := newKeyFixture(t, memory.Options{}, Options{})

	info := a.mint(t, "lobby", "alerts", "?max_uses=2")
	alone.dialRefused(t, info.Path, http.StatusNotFound, CodeInvalidClientSocket)
	b.openBound(t, info.Path, nil, "")
	a.openBound(t, info.Path, nil, "")
	b.dialRefused(t, info.Path, http.StatusGone, CodeExhaustedClientSocket)
	a.dialRefused(t, info.Path, http.StatusGone, CodeExhaustedClientSocket)
	if got := a.srv.Stats().ClientSockets; got != 1 {
		t.Errorf("Stats().ClientSockets = %d, want the shared store's 1", got)
	}
}

// TestServersSharePublishWindow: two Servers that share a PublishWindow cap
// a room's HTTP publishes on both together.
func TestServersSharePublishWindow(t *testing.T) {
	t.Parallel()
	shared := new(MemoryPublishWindow)
	a := newKeyFixture(t, memory.Options{}, Options{PublishPerMinute: 3, PublishWindow: shared})
	b := newKeyFixture(t, memory.Options{}, Options{PublishPerMinute: 3, PublishWindow: shared})
	a.publish(t, "lobby", "news", lobbyPub, `{"message":1}`)
	b.publish(t, "lobby", "news", lobbyPub, `{"message":2}`)
	a.publish(t, "lobby", "news", lobbyPub, `{"message":3}`)
	for name, f := range map[string]*fixture{"A": a, "B": b} {
		r := f.do(t, http.MethodPost, "/lobby/pubsub/news/publish", lobbyPub, "application/json", `{"message":4}`)
		if r.status != http.StatusTooManyRequests || r.env.Error.Code != pubsub.CodeRateLimitExceeded {
			t.Errorf("4th publish of the minute on %s = %d %s, want 429 RATE_LIMIT_EXCEEDED", name, r.status, r.raw)
		}
	}
	b.publish(t, "other", "news", otherPub, `{"message":1}`) // another room
}

// brokenState is a SocketStore and PublishWindow whose backend is down.
type brokenState struct{ err error }

func (s brokenState) Create(context.Context, ClientSocket, time.Time, int) (string, error) {
	return "", s.err
}

func (s brokenState) Use(context.Context, string, string, time.Time) (ClientSocket, func(context.Context) error, error) {
	return ClientSocket{}, nil, s.err
}

func (s brokenState) Peek(context.Context, string, string, time.Time) (ClientSocket, error) {
	return ClientSocket{}, s.err
}

func (s brokenState) Allow(context.Context, string, int, time.Time) (bool, time.Duration, error) {
	return false, 0, s.err
}

// TestStateStoreDown: when a store fails, the request it serves fails with
// a retriable NETWORK_ERROR (HTTP 503), or the store's own *pubsub.Error,
// and nothing is published past a cap that could not be counted.
func TestStateStoreDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		status int
		code   pubsub.Code
	}{
		{"plain error", errors.New("connection refused"), http.StatusServiceUnavailable, pubsub.CodeNetworkError},
		{"pubsub error", pubsub.Errorf(pubsub.CodeInternal, "bad reply"), http.StatusInternalServerError, pubsub.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			down := brokenState{tt.err}
			f := newKeyFixture(t, memory.Options{}, Options{PublishPerMinute: 10, PublishWindow: down, Sockets: down})
			for _, req := range []struct{ method, path string }{
				{http.MethodPost, "/lobby/pubsub/news/publish"},
				{http.MethodGet, "/lobby/pubsub/news/client"},
				{http.MethodGet, "/lobby/s/sometoken"},
			} {
				r := f.do(t, req.method, req.path, lobbyPub, "application/json", `{"message":1}`)
				if r.status != tt.status || r.env.Error.Code != tt.code {
					t.Errorf("%s %s = %d %s, want %d %s", req.method, req.path, r.status, r.raw, tt.status, tt.code)
				}
			}
			f.dialRefused(t, "/lobby/s/sometoken", tt.status, tt.code)
			conn, err := f.hub.Connect(ctxT(t), pubsub.ConnectRequest{Room: "lobby", ClientID: "probe"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			page, err := conn.History(ctxT(t), pubsub.HistoryRequest{Topic: "news"})
			if err != nil || len(page.Messages) != 0 {
				t.Errorf("history after refused publishes = %v, %v; want none", page.Messages, err)
			}
		})
	}
}
