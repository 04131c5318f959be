package network

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/plazahq/plaza/transport/memory"
)

// Shutdown(ctx) returns once ctx ends even while an event stream is stuck
// replaying history.
func TestShutdownDeadlineCutsReplayingStream(t *testing.T) {
	t.Parallel()
	hub, err := memory.New(memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	entered := make(chan struct{}, 1)
	g := &historyHook{t: hub, before: func(ctx context.Context) error {
		select { // a store so slow it answers only when ctx ends
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}}
	srv := NewServer(g, Options{Keys: testKeys})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	req, _ := http.NewRequestWithContext(cctx, "GET", ts.URL+"/lobby/pubsub/alerts/subscribe?token="+lobbySub, nil)
	req.Header.Set("Last-Event-ID", "1")
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			defer resp.Body.Close()
			buf := make([]byte, 1024)
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					return
				}
			}
		}
	}()
	recv(t, entered, "the resumed stream's replay to read history")
	sctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(sctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want its context's deadline error", err)
		}
	case <-time.After(waitTimeout):
		t.Errorf("Shutdown with a 200ms context still blocked after %v (a replaying event stream holds it)", waitTimeout)
		ccancel() // let it go
		recv(t, done, "Shutdown to return once the stream's client is gone")
	}
}
