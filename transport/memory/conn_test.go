package memory

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
)

// calls are every Conn method that takes a context, as closures.
func calls(c pubsub.Conn) []struct {
	name string
	call func(context.Context) error
} {
	return []struct {
		name string
		call func(context.Context) error
	}{
		{"Publish", func(ctx context.Context) error {
			_, err := c.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: payload(1)})
			return err
		}},
		{"Subscribe", func(ctx context.Context) error {
			return c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "chat"})
		}},
		{"Unsubscribe", func(ctx context.Context) error {
			return c.Unsubscribe(ctx, "chat")
		}},
		{"History", func(ctx context.Context) error {
			_, err := c.History(ctx, pubsub.HistoryRequest{Topic: "chat"})
			return err
		}},
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Connect(ctx, pubsub.ConnectRequest{Room: "lobby"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Connect with a canceled context = %v, want context.Canceled", err)
	}
	c := connect(t, h, "lobby", "alice")
	for _, tt := range calls(c) {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a canceled context = %v, want context.Canceled", tt.name, err)
			}
		})
	}
	if s := h.Stats(); s.Published != 0 {
		t.Errorf("Stats().Published = %d, want 0", s.Published)
	}
}

func TestAfterEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		end  func(*Hub, pubsub.Conn)
		want pubsub.Code // of Err and of every call after
	}{
		{"closed", func(_ *Hub, c pubsub.Conn) { c.Close() }, pubsub.CodeNotConnected},
		{"disconnected", func(h *Hub, c pubsub.Conn) { h.Disconnect("lobby", c.ClientID()) }, pubsub.CodeNetworkError},
		{"hub closed", func(h *Hub, c pubsub.Conn) { h.Close() }, pubsub.CodeNetworkError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, _ := newHub(t, Options{})
			c := connect(t, h, "lobby", "alice")
			if err := c.Err(); err != nil {
				t.Fatalf("Err() of a live conn = %v, want nil", err)
			}
			subscribe(t, c, "chat", 0)
			tt.end(h, c)
			select {
			case <-c.Done():
			default:
				t.Fatal("Done() not closed")
			}
			wantCode(t, "Err()", c.Err(), tt.want)
			for _, call := range calls(c) {
				wantCode(t, call.name, call.call(context.Background()), tt.want)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close() after the end = %v, want nil", err)
			}
			wantCode(t, "Err() after Close", c.Err(), tt.want)
		})
	}
}

func TestHistory(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{})
	a := connect(t, h, "lobby", "alice")
	b := connect(t, h, "lobby", "bob")
	c := connect(t, h, "lobby", "carol")
	var all []pubsub.ID
	for i := range 30 {
		req := pubsub.PublishRequest{Topic: "chat", Payload: payload(i)}
		if i == 29 {
			req.To = []string{"bob"}
		}
		all = append(all, publish(t, a, req).ID)
	}
	ctx := context.Background()

	page, err := c.History(ctx, pubsub.HistoryRequest{Topic: "chat"})
	if err != nil {
		t.Fatalf("History(chat) = %v", err)
	}
	if got, want := ids(page), all[4:29]; !cmp.Equal(got, want) || !page.HasMore {
		t.Errorf("carol's History(chat) = %v, HasMore %v; want the %d before the message to bob, true", got, page.HasMore, pubsub.DefaultHistoryLimit)
	}
	page, err = b.History(ctx, pubsub.HistoryRequest{Topic: "chat", After: all[26]})
	if err != nil {
		t.Fatalf("History(chat, After) = %v", err)
	}
	if got, want := ids(page), all[27:]; !cmp.Equal(got, want) {
		t.Errorf("bob's History(chat, After) = %v, want %v (the message to him included)", got, want)
	}

	page, err = c.History(ctx, pubsub.HistoryRequest{Topic: "empty"})
	if err != nil || page.Messages == nil || len(page.Messages) != 0 || page.HasMore {
		t.Errorf("History(empty) = %+v, %v; want an empty non-nil page", page, err)
	}
	_, err = c.History(ctx, pubsub.HistoryRequest{Topic: "chat", Before: all[1], After: all[0]})
	wantCode(t, "History(Before and After)", err, pubsub.CodeInvalidHistoryOpts)
	_, err = c.History(ctx, pubsub.HistoryRequest{Topic: "chat", Limit: pubsub.MaxHistoryLimit + 1})
	wantCode(t, "History(Limit 51)", err, pubsub.CodeInvalidLimit)
}

func ids(p pubsub.HistoryPage) []pubsub.ID {
	out := make([]pubsub.ID, len(p.Messages))
	for i, m := range p.Messages {
		out[i] = m.ID
	}
	return out
}

func TestHistoryStoreFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk gone")
	store := &failingStore{Store: history.NewMemory(history.Options{}), queryErr: boom}
	defer store.Store.Close()
	h, _ := newHub(t, Options{Store: store})
	c := connect(t, h, "lobby", "alice")
	_, err := c.History(context.Background(), pubsub.HistoryRequest{Topic: "chat"})
	wantCode(t, "History with a failing store", err, pubsub.CodeInternal)
	if !errors.Is(err, boom) {
		t.Errorf("History = %v, want it to wrap %v", err, boom)
	}
}
