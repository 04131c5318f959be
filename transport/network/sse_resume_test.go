package network

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// historyHook wraps a transport: every History call of its Conns first
// runs before(ctx), and fails with ctx's error if before returns one.
type historyHook struct {
	t      pubsub.Transport
	before func(ctx context.Context) error
}

type historyHookConn struct {
	pubsub.Conn
	h *historyHook
}

func (h *historyHook) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	c, err := h.t.Connect(ctx, req)
	if err != nil {
		return nil, err
	}
	return &historyHookConn{c, h}, nil
}

func (c *historyHookConn) History(ctx context.Context, req pubsub.HistoryRequest) (pubsub.HistoryPage, error) {
	if err := c.h.before(ctx); err != nil {
		return pubsub.HistoryPage{}, err
	}
	return c.Conn.History(ctx, req)
}

// A stream resumed with Last-Event-ID delivers a live non-persisted message
// published while its replay runs, even when the replay then sends a newer
// persisted one: history never held the former.
func TestSSEResumeKeepsLiveNonPersisted(t *testing.T) {
	hub, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	// The first History call closes entered and waits for release. A closed
	// channel keeps its signal however late the test looks at it: the
	// handler may well get there first.
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	g := &historyHook{t: hub, before: func(ctx context.Context) error {
		if calls.Add(1) != 1 {
			return nil
		}
		close(entered)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	srv := NewServer(g, Options{Keys: testKeys})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer shutdown(t, srv)
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // a test that fails early must not leave the handler waiting

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	pc, err := hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "pub"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	first, err := pc.Publish(ctx, pubsub.PublishRequest{Topic: "alerts", Payload: json.RawMessage(`"first"`)})
	if err != nil {
		t.Fatal(err)
	}

	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/lobby/pubsub/alerts/subscribe?token="+lobbySub, nil)
	req.Header.Set("Last-Event-ID", first.ID.String())
	respc := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(respc)
			return
		}
		respc <- resp
	}()
	recv(t, entered, "the resumed stream's replay to read history") // subscribed; replay about to read history
	n, err := pc.Publish(ctx, pubsub.PublishRequest{Topic: "alerts", Payload: json.RawMessage(`"live-only"`), NoPersist: true})
	if err != nil {
		t.Fatal(err)
	}
	x, err := pc.Publish(ctx, pubsub.PublishRequest{Topic: "alerts", Payload: json.RawMessage(`"persisted"`)})
	if err != nil {
		t.Fatal(err)
	}
	releaseOnce()
	resp := recv(t, respc, "the answer to the resumed stream's request")
	if resp == nil {
		return
	}
	c := readSSE(t, resp)
	got := map[pubsub.ID]bool{}
	deadline := time.After(waitTimeout)
loop:
	for len(got) < 2 {
		select {
		case ev := <-c.events:
			if ev.comment || ev.id == "" {
				continue
			}
			var m pubsub.Message
			_ = json.Unmarshal([]byte(ev.data), &m)
			got[m.ID] = true
		case <-deadline:
			break loop
		}
	}
	if !got[x.ID] {
		t.Errorf("persisted message %v missing", x.ID)
	}
	if !got[n.ID] {
		t.Errorf("non-persisted live message %v (published after the stream subscribed) was never delivered; got %v", n.ID, got)
	}
}
