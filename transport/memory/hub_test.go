package memory

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
)

func TestNewRejectsBadOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
	}{
		{"node below 0", Options{NodeID: -1}},
		{"node above 1023", Options{NodeID: 1024}},
		{"negative rate", Options{PublishRate: -1}},
		{"negative burst", Options{PublishRate: 1, PublishBurst: -1}},
		{"negative queue", Options{QueueBytes: -1}},
		{"negative dedup window", Options{DedupWindow: -1}},
		{"negative max subscriptions", Options{MaxSubscriptions: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if h, err := New(tt.opts); err == nil {
				h.Close()
				t.Errorf("New(%+v) = nil error, want one", tt.opts)
			}
		})
	}
}

func TestConnectValidates(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{})
	tests := []struct {
		name string
		req  pubsub.ConnectRequest
		want pubsub.Code // "" means success
	}{
		{"ok", pubsub.ConnectRequest{Room: "lobby", ClientID: "alice"}, ""},
		{"room with colon", pubsub.ConnectRequest{Room: "org:1.lobby_2", ClientID: "alice"}, ""},
		{"empty room", pubsub.ConnectRequest{Room: "", ClientID: "alice"}, pubsub.CodeInvalidRequest},
		{"room with space", pubsub.ConnectRequest{Room: "the lobby", ClientID: "alice"}, pubsub.CodeInvalidRequest},
		{"client id with control char", pubsub.ConnectRequest{Room: "lobby", ClientID: "al\nice"}, pubsub.CodeInvalidRequest},
		{"client id too long", pubsub.ConnectRequest{Room: "lobby", ClientID: string(make([]byte, 129))}, pubsub.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := h.Connect(context.Background(), tt.req)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Connect(%+v) = %v, want success", tt.req, err)
				}
				if got := c.ClientID(); got != tt.req.ClientID {
					t.Errorf("ClientID() = %q, want %q", got, tt.req.ClientID)
				}
				c.Close()
				return
			}
			wantCode(t, "Connect", err, tt.want)
		})
	}
}

func TestConnectAnonymous(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{})
	a := connect(t, h, "lobby", "")
	b := connect(t, h, "lobby", "")
	re := regexp.MustCompile(`^anon-[0-9a-f]{16}$`)
	for _, c := range []pubsub.Conn{a, b} {
		if !re.MatchString(c.ClientID()) {
			t.Errorf("ClientID() = %q, want anon- and 16 hex digits", c.ClientID())
		}
	}
	if a.ClientID() == b.ClientID() {
		t.Errorf("two anonymous conns share ClientID %q", a.ClientID())
	}
}

// TestQueueBytes fills a connection that does not read and checks that it
// holds, and is dropped at, the bound of its hub or of its ConnectRequest.
func TestQueueBytes(t *testing.T) {
	t.Parallel()
	body := []byte(`"` + strings.Repeat("x", 998) + `"`)
	size := queuedSize(&pubsub.Message{Topic: "chat", From: "pub", Payload: body})
	tests := []struct {
		name    string
		hub     int // Options.QueueBytes
		request int // ConnectRequest.QueueBytes
		want    int // the bound
	}{
		{"default", 0, 0, DefaultQueueBytes},
		{"hub", 100 * size, 0, 100 * size},
		{"request", 0, 10*size + 1, 10*size + 1},
		{"request over hub", 100 * size, 10 * size, 10 * size},
		{"below one message", 0, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, _ := newHub(t, Options{QueueBytes: tt.hub})
			ctx := context.Background()
			pub := connect(t, h, "lobby", "pub")
			c, err := h.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "sub", QueueBytes: tt.request})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			subscribe(t, c, "chat", 0)
			// The channel's slots, then a message always fits an empty
			// backlog; then as many as the bound holds.
			wantFit := ChannelSlots + max(1, tt.want/size)
			for i := 1; i <= wantFit+1; i++ {
				publish(t, pub, pubsub.PublishRequest{Topic: "chat", Payload: body})
				dropped := c.Err() != nil
				if dropped != (i > wantFit) {
					t.Fatalf("after %d messages of %d bytes with a bound of %d: Err() = %v", i, size, tt.want, c.Err())
				}
			}
			wantCode(t, "Err()", c.Err(), pubsub.CodeSlowConsumer)
			// The backlog is let go with the connection; what its channel
			// held stays.
			if got, want := len(received(c)), ChannelSlots; got != want {
				t.Errorf("the dropped connection's channel holds %d messages, want %d", got, want)
			}
		})
	}
}

// TestBacklogOrder lets a connection fall far behind its channel and checks
// that it then receives everything, in order, and keeps no backlog once it
// has caught up.
func TestBacklogOrder(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{})
	pub := connect(t, h, "lobby", "pub")
	c := connect(t, h, "lobby", "sub")
	subscribe(t, c, "chat", 0)
	const n = 20 * ChannelSlots
	for i := range n {
		publish(t, pub, pubsub.PublishRequest{Topic: "chat", Payload: payload(i)})
	}
	ms := make([]*pubsub.Message, 0, n)
	for len(ms) < n {
		select {
		case m := <-c.Messages():
			ms = append(ms, m)
		case <-time.After(waitTimeout):
			t.Fatalf("received %d of %d messages", len(ms), n)
		}
	}
	if got, want := numbers(t, ms), seq(0, n); !cmp.Equal(got, want) {
		t.Errorf("received (-want +got):\n%s", cmp.Diff(want, got))
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v after a backlog within the bound", err)
	}
	hc := c.(*conn)
	waitFor(t, "the backlog's hand-over to end", func() bool { return !hc.pumping() })
	hc.qmu.Lock()
	bytes, backlog, spare := hc.q.bytes.Load(), cap(hc.q.backlog), cap(hc.q.spare)
	hc.qmu.Unlock()
	if bytes != 0 || backlog != 0 || spare != 0 {
		t.Errorf("caught up: queue counts %d bytes and keeps buffers of %d and %d messages, want none", bytes, backlog, spare)
	}
}

func TestDisconnect(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{})
	a1 := connect(t, h, "lobby", "alice")
	a2 := connect(t, h, "lobby", "alice")
	other := connect(t, h, "other", "alice")
	bob := connect(t, h, "lobby", "bob")
	subscribe(t, a1, "chat", 0)

	if n := h.Disconnect("lobby", "alice"); n != 2 {
		t.Errorf("Disconnect(lobby, alice) = %d, want 2", n)
	}
	for _, c := range []pubsub.Conn{a1, a2} {
		select {
		case <-c.Done():
		default:
			t.Fatal("Done() not closed after Disconnect")
		}
		wantCode(t, "Err()", c.Err(), pubsub.CodeNetworkError)
		_, err := c.Publish(context.Background(), pubsub.PublishRequest{Topic: "chat", Payload: payload(1)})
		wantCode(t, "Publish after Disconnect", err, pubsub.CodeNetworkError)
	}
	for _, c := range []pubsub.Conn{other, bob} {
		if err := c.Err(); err != nil {
			t.Errorf("Err() of an unaffected conn = %v, want nil", err)
		}
	}
	publish(t, bob, pubsub.PublishRequest{Topic: "chat"})
	if ms := received(a1); len(ms) != 0 {
		t.Errorf("disconnected conn received %d messages", len(ms))
	}
	if n := h.Disconnect("lobby", "alice"); n != 0 {
		t.Errorf("second Disconnect(lobby, alice) = %d, want 0", n)
	}
	if got := h.Stats().Connections; got != 2 {
		t.Errorf("Stats().Connections = %d, want 2", got)
	}
}

// closeCounter is a store that counts Close calls.
type closeCounter struct {
	history.Store
	closes int
}

func (s *closeCounter) Close() error { s.closes++; return s.Store.Close() }

func TestClose(t *testing.T) {
	t.Parallel()
	store := &closeCounter{Store: history.NewMemory(history.Options{})}
	clock := fakeclock.New(t0)
	h, err := New(Options{Store: store, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	a := connect(t, h, "lobby", "alice")
	b := connect(t, h, "lobby", "bob")
	subscribe(t, b, "chat", 1)
	for i := range 3 {
		publish(t, a, pubsub.PublishRequest{Topic: "chat", Payload: payload(i)})
	}
	if clock.Pending() == 0 {
		t.Fatal("no release timer armed for held messages")
	}

	if err := h.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close() = %v", err)
	}
	for _, c := range []pubsub.Conn{a, b} {
		select {
		case <-c.Done():
		default:
			t.Fatal("Done() not closed after hub Close")
		}
		wantCode(t, "Err() after hub Close", c.Err(), pubsub.CodeNetworkError)
		err := c.Subscribe(context.Background(), pubsub.SubscribeRequest{Topic: "x"})
		wantCode(t, "Subscribe after hub Close", err, pubsub.CodeNetworkError)
	}
	if n := clock.Pending(); n != 0 {
		t.Errorf("%d timers pending after Close, want 0", n)
	}
	_, err = h.Connect(context.Background(), pubsub.ConnectRequest{Room: "lobby", ClientID: "carol"})
	wantCode(t, "Connect after Close", err, pubsub.CodeNetworkError)
	if store.closes != 0 {
		t.Errorf("hub closed a store it did not create")
	}
	if got := h.Stats().Connections; got != 0 {
		t.Errorf("Stats().Connections after Close = %d, want 0", got)
	}
	store.Close()
}

func TestCloseOwnStore(t *testing.T) {
	t.Parallel()
	h, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := h.store
	if err := h.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if _, err := store.MaxID(context.Background()); err == nil {
		t.Errorf("MaxID on the hub's own store after Close = nil error, want the store closed")
	}
}

// failingStore fails the operations it is told to.
type failingStore struct {
	history.Store
	appendErr, queryErr, maxIDErr error
}

func (s *failingStore) Append(ctx context.Context, room string, m pubsub.Message) error {
	if s.appendErr != nil {
		return s.appendErr
	}
	return s.Store.Append(ctx, room, m)
}

func (s *failingStore) Query(ctx context.Context, room string, q history.Query) (pubsub.HistoryPage, error) {
	if s.queryErr != nil {
		return pubsub.HistoryPage{}, s.queryErr
	}
	return s.Store.Query(ctx, room, q)
}

func (s *failingStore) MaxID(ctx context.Context) (pubsub.ID, error) {
	if s.maxIDErr != nil {
		return 0, s.maxIDErr
	}
	return s.Store.MaxID(ctx)
}

func TestNewFailsWhenMaxIDFails(t *testing.T) {
	t.Parallel()
	boom := errors.New("disk on fire")
	_, err := New(Options{Store: &failingStore{Store: history.NewMemory(history.Options{}), maxIDErr: boom}})
	if !errors.Is(err, boom) {
		t.Errorf("New with a failing MaxID = %v, want it to wrap %v", err, boom)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, Options{})
	a := connect(t, h, "lobby", "alice")
	b := connect(t, h, "lobby", "bob")
	c := connect(t, h, "lobby", "carol")
	subscribe(t, b, "chat", 0)
	subscribe(t, c, "chat", 0)
	publish(t, a, pubsub.PublishRequest{Topic: "chat", IdempotencyKey: "k"})
	publish(t, a, pubsub.PublishRequest{Topic: "chat", IdempotencyKey: "k"})
	publish(t, a, pubsub.PublishRequest{Topic: "chat", To: []string{"bob"}})
	c.Close()
	want := Stats{Connections: 2, Published: 2, Delivered: 3, Deduplicated: 1}
	if diff := cmp.Diff(want, h.Stats()); diff != "" {
		t.Errorf("Stats() (-want +got):\n%s", diff)
	}
}

func TestEmptyRoomIsForgotten(t *testing.T) {
	t.Parallel()
	h, clock := newHub(t, Options{DedupWindow: time.Minute})
	a := connect(t, h, "lobby", "alice")
	subscribe(t, a, "chat", 0)
	publish(t, a, pubsub.PublishRequest{Topic: "chat", IdempotencyKey: "k"})
	a.Close()

	// Within the window the room, and the idempotency key, stay.
	clock.Advance(30 * time.Second)
	a = connect(t, h, "lobby", "alice")
	publish(t, a, pubsub.PublishRequest{Topic: "chat", IdempotencyKey: "k"})
	if got := h.Stats().Deduplicated; got != 1 {
		t.Errorf("Deduplicated after reconnecting within the window = %d, want 1", got)
	}
	a.Close()

	clock.Advance(time.Minute)
	connect(t, h, "other", "bob")
	h.mu.Lock()
	_, ok := h.rooms["lobby"]
	n := len(h.rooms)
	h.mu.Unlock()
	if ok || n != 1 {
		t.Errorf("rooms after lobby was empty for a window: lobby kept = %v, %d rooms; want false, 1", ok, n)
	}
}
