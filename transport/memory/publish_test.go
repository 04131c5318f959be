package memory

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
)

func TestPublishValidates(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{})
	c := connect(t, h, "lobby", "alice")
	tests := []struct {
		name string
		req  pubsub.PublishRequest
		want pubsub.Code
	}{
		{"empty topic", pubsub.PublishRequest{Topic: "", Payload: payload(1)}, pubsub.CodeInvalidTopicName},
		{"topic with space", pubsub.PublishRequest{Topic: "chat room", Payload: payload(1)}, pubsub.CodeInvalidTopicName},
		{"pattern", pubsub.PublishRequest{Topic: "user:*", Payload: payload(1)}, pubsub.CodeInvalidTopicName},
		{"no payload", pubsub.PublishRequest{Topic: "chat"}, pubsub.CodeInvalidPayload},
		{"payload not JSON", pubsub.PublishRequest{Topic: "chat", Payload: []byte("{")}, pubsub.CodeInvalidPayload},
		{"payload too large", pubsub.PublishRequest{Topic: "chat", Payload: []byte(`"` + strings.Repeat("x", pubsub.MaxPayloadBytes) + `"`)}, pubsub.CodePayloadTooLarge},
		{"bad recipient", pubsub.PublishRequest{Topic: "chat", Payload: payload(1), To: []string{""}}, pubsub.CodeInvalidRequest},
		{"long idempotency key", pubsub.PublishRequest{Topic: "chat", Payload: payload(1), IdempotencyKey: strings.Repeat("k", 129)}, pubsub.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := c.Publish(context.Background(), tt.req)
			wantCode(t, "Publish("+tt.req.Topic+")", err, tt.want)
		})
	}
	if got := h.Stats().Published; got != 0 {
		t.Errorf("Stats().Published = %d after invalid publishes, want 0", got)
	}
}

func TestPublishConfirms(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{NodeID: 9})
	a := connect(t, h, "lobby", "alice")
	req := pubsub.PublishRequest{
		Topic:    "chat",
		Payload:  []byte(`{"text":"hi"}`),
		To:       []string{"bob"},
		Metadata: map[string]string{"priority": "high"},
	}
	m := publish(t, a, req)
	want := pubsub.Message{
		ID:        m.ID,
		Topic:     "chat",
		From:      "alice",
		To:        []string{"bob"},
		Payload:   []byte(`{"text":"hi"}`),
		Metadata:  map[string]string{"priority": "high"},
		Timestamp: t0,
		Persisted: true,
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("Publish(%q) (-want +got):\n%s", req.Topic, diff)
	}
	if m.Timestamp.Location() != time.UTC {
		t.Errorf("Timestamp %v is not in UTC", m.Timestamp)
	}
	if m.ID.Node() != 9 || m.ID.Time() != t0.UnixMilli() {
		t.Errorf("ID %d has node %d and time %d, want 9 and %d", m.ID, m.ID.Node(), m.ID.Time(), t0.UnixMilli())
	}
}

func TestPersist(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		noPersist bool
		wantN     int
	}{
		{"persisted", false, 1},
		{"not persisted", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, _ := newHub(t, Options{})
			a := connect(t, h, "lobby", "alice")
			b := connect(t, h, "lobby", "bob")
			subscribe(t, b, "cursor", 0)
			m := publish(t, a, pubsub.PublishRequest{Topic: "cursor", NoPersist: tt.noPersist})
			if m.Persisted == tt.noPersist {
				t.Errorf("Publish(NoPersist: %v).Persisted = %v", tt.noPersist, m.Persisted)
			}
			if got := len(received(b)); got != 1 {
				t.Errorf("subscriber received %d messages, want 1", got)
			}
			page, err := b.History(context.Background(), pubsub.HistoryRequest{Topic: "cursor"})
			if err != nil {
				t.Fatalf("History(cursor) = %v", err)
			}
			if len(page.Messages) != tt.wantN {
				t.Errorf("History(cursor) has %d messages, want %d", len(page.Messages), tt.wantN)
			}
		})
	}
}

func TestAppendFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk full")
	store := &failingStore{Store: history.NewMemory(history.Options{}), appendErr: boom}
	h, _ := newHub(t, Options{Store: store})
	a := connect(t, h, "lobby", "alice")
	b := connect(t, h, "lobby", "bob")
	subscribe(t, b, "chat", 0)
	_, err := a.Publish(context.Background(), pubsub.PublishRequest{Topic: "chat", Payload: payload(1)})
	wantCode(t, "Publish(chat) with a failing store", err, pubsub.CodeInternal)
	if !errors.Is(err, boom) {
		t.Errorf("Publish(chat) = %v, want it to wrap %v", err, boom)
	}
	if ms := received(b); len(ms) != 0 {
		t.Errorf("subscriber received %d messages of a failed publish", len(ms))
	}
	// Not persisted: the store is not involved.
	publish(t, a, pubsub.PublishRequest{Topic: "chat", NoPersist: true})
	if ms := received(b); len(ms) != 1 {
		t.Errorf("subscriber received %d messages of a NoPersist publish, want 1", len(ms))
	}
	store.Store.Close()
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	custom := &pubsub.Error{Code: pubsub.CodeUnauthenticated, Message: "who are you"}
	denied := errors.New("mods only")
	var mu sync.Mutex
	var asked []pubsub.Access
	auth := func(ctx context.Context, a pubsub.Access) error {
		mu.Lock()
		asked = append(asked, a)
		mu.Unlock()
		switch a.Topic {
		case "mods":
			return denied
		case "secret":
			return custom
		}
		return nil
	}
	h, _ := newHub(t, Options{Authorize: auth})
	c := connect(t, h, "lobby", "alice")
	ctx := context.Background()

	tests := []struct {
		name   string
		call   func(topic string) error
		action pubsub.Action
	}{
		{"publish", func(tp string) error {
			_, err := c.Publish(ctx, pubsub.PublishRequest{Topic: tp, Payload: payload(1)})
			return err
		}, pubsub.ActionPublish},
		{"subscribe", func(tp string) error {
			return c.Subscribe(ctx, pubsub.SubscribeRequest{Topic: tp})
		}, pubsub.ActionSubscribe},
		{"history", func(tp string) error {
			_, err := c.History(ctx, pubsub.HistoryRequest{Topic: tp})
			return err
		}, pubsub.ActionHistory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			asked = nil
			mu.Unlock()
			if err := tt.call("chat"); err != nil {
				t.Errorf("%s(chat) = %v, want nil", tt.name, err)
			}
			err := tt.call("mods")
			wantCode(t, tt.name+"(mods)", err, pubsub.CodePermissionDenied)
			if !errors.Is(err, denied) {
				t.Errorf("%s(mods) = %v, want it to wrap %v", tt.name, err, denied)
			}
			if err := tt.call("secret"); err != custom {
				t.Errorf("%s(secret) = %v, want the hook's own error %v", tt.name, err, custom)
			}
			want := []pubsub.Access{
				{Action: tt.action, Room: "lobby", Topic: "chat", ClientID: "alice"},
				{Action: tt.action, Room: "lobby", Topic: "mods", ClientID: "alice"},
				{Action: tt.action, Room: "lobby", Topic: "secret", ClientID: "alice"},
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff(want, asked); diff != "" {
				t.Errorf("Authorize calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPublishRateLimit(t *testing.T) {
	t.Parallel()
	h, clock := newHub(t, Options{PublishRate: 2, PublishBurst: 3})
	a := connect(t, h, "lobby", "alice")
	b := connect(t, h, "lobby", "bob")
	try := func(who pubsub.Conn, topic string) error {
		_, err := who.Publish(context.Background(), pubsub.PublishRequest{Topic: topic, Payload: payload(1)})
		return err
	}
	for i := range 3 {
		if err := try(a, "chat"); err != nil {
			t.Fatalf("Publish #%d of a burst of 3 = %v", i+1, err)
		}
	}
	// The cap is per topic, for all clients together.
	err := try(b, "chat")
	wantCode(t, "Publish(chat) over the burst", err, pubsub.CodeRateLimitExceeded)
	var perr *pubsub.Error
	if errors.As(err, &perr) && perr.RetryAfter != 500*time.Millisecond {
		t.Errorf("RetryAfter = %v, want 500ms", perr.RetryAfter)
	}
	if err := try(a, "other"); err != nil {
		t.Errorf("Publish(other) = %v; another topic has its own cap", err)
	}
	clock.Advance(500 * time.Millisecond)
	if err := try(b, "chat"); err != nil {
		t.Errorf("Publish(chat) after RetryAfter = %v", err)
	}
	if got := h.Stats().RateLimited; got != 1 {
		t.Errorf("Stats().RateLimited = %d, want 1", got)
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	h, clock := newHub(t, Options{DedupWindow: time.Minute})
	a := connect(t, h, "lobby", "alice")
	a2 := connect(t, h, "lobby", "alice") // the same client on a new connection
	b := connect(t, h, "lobby", "bob")
	sub := connect(t, h, "lobby", "sub")
	subscribe(t, sub, "chat", 0)
	subscribe(t, sub, "news", 0)

	first := publish(t, a, pubsub.PublishRequest{Topic: "chat", Payload: payload(1), IdempotencyKey: "k1"})
	tests := []struct {
		name    string
		c       pubsub.Conn
		req     pubsub.PublishRequest
		advance time.Duration
		same    bool
	}{
		{"retry on a new conn", a2, pubsub.PublishRequest{Topic: "chat", Payload: payload(2), IdempotencyKey: "k1"}, 0, true},
		{"retry late in the window", a, pubsub.PublishRequest{Topic: "chat", Payload: payload(3), IdempotencyKey: "k1"}, 59 * time.Second, true},
		{"other client, same key", b, pubsub.PublishRequest{Topic: "chat", Payload: payload(4), IdempotencyKey: "k1"}, 0, false},
		{"other topic, same key", a, pubsub.PublishRequest{Topic: "news", Payload: payload(5), IdempotencyKey: "k1"}, 0, false},
		{"other key", a, pubsub.PublishRequest{Topic: "chat", Payload: payload(6), IdempotencyKey: "k2"}, 0, false},
		{"no key", a, pubsub.PublishRequest{Topic: "chat", Payload: payload(7)}, 0, false},
		{"after the window", a, pubsub.PublishRequest{Topic: "chat", Payload: payload(8), IdempotencyKey: "k1"}, time.Second, false},
	}
	for _, tt := range tests {
		clock.Advance(tt.advance)
		got, err := tt.c.Publish(context.Background(), tt.req)
		if err != nil {
			t.Fatalf("%s: Publish(%q) = %v", tt.name, tt.req.Topic, err)
		}
		if tt.same {
			if diff := cmp.Diff(first, got); diff != "" {
				t.Errorf("%s: Publish(%q) (-first +got):\n%s", tt.name, tt.req.Topic, diff)
			}
		} else if got.ID == first.ID {
			t.Errorf("%s: Publish(%q) = the first message %d, want a new one", tt.name, tt.req.Topic, got.ID)
		}
	}
	if got, want := numbers(t, received(sub)), []int{1, 4, 5, 6, 7, 8}; !cmp.Equal(got, want) {
		t.Errorf("subscriber received %v, want %v", got, want)
	}
	if got := h.Stats().Deduplicated; got != 2 {
		t.Errorf("Stats().Deduplicated = %d, want 2", got)
	}
}

// A retry of a confirmed publish is answered from the idempotency index
// before the rate cap: it neither fails nor spends a token.
func TestRetryOfConfirmedPublishIgnoresRateCap(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	hub, err := New(Options{Clock: clock, PublishRate: 1, PublishBurst: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	ctx := context.Background()
	c, err := hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	req := pubsub.PublishRequest{Topic: "chat", Payload: []byte(`1`), IdempotencyKey: "k1"}
	first, err := c.Publish(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Publish(ctx, req) // the retry after a lost reply, with no token left
	if err != nil || again.ID != first.ID {
		t.Errorf("retry with the same key = %v, %v; want the confirmed message %v", again.ID, err, first.ID)
	}
	_, err = c.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`2`), IdempotencyKey: "k2"})
	if !errors.Is(err, pubsub.ErrRateLimitExceeded) {
		t.Errorf("a new publish with no token left = %v, want RATE_LIMIT_EXCEEDED", err)
	}
}
