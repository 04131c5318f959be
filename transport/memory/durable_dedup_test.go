package memory_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// retryReq is the publish that the tests below make, and then retry on a
// hub opened after the first one stopped.
var retryReq = pubsub.PublishRequest{Topic: "chat", Payload: []byte(`{"text":"once"}`), IdempotencyKey: "c3f1a2b4d5e6f708:1"}

// openHub opens a hub on store, closed when the test ends.
func openHub(t *testing.T, opts memory.Options) *memory.Hub {
	t.Helper()
	h, err := memory.New(opts)
	if err != nil {
		t.Fatalf("memory.New = %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connectTo(t *testing.T, h *memory.Hub, id string) pubsub.Conn {
	t.Helper()
	c, err := h.Connect(context.Background(), pubsub.ConnectRequest{Room: "lobby", ClientID: id})
	if err != nil {
		t.Fatalf("Connect(lobby, %s) = %v", id, err)
	}
	return c
}

func publishOn(t *testing.T, c pubsub.Conn, req pubsub.PublishRequest) pubsub.Message {
	t.Helper()
	m, err := c.Publish(context.Background(), req)
	if err != nil {
		t.Fatalf("Publish(key %q) = %v", req.IdempotencyKey, err)
	}
	return m
}

// storedIDs returns the ids of the newest page of topic in s.
func storedIDs(t *testing.T, s history.Store, topic string) []pubsub.ID {
	t.Helper()
	p, err := s.Query(context.Background(), "lobby", history.Query{Topic: topic, Limit: pubsub.MaxHistoryLimit, Viewer: "alice"})
	if err != nil {
		t.Fatalf("Query(%s) = %v", topic, err)
	}
	ids := make([]pubsub.ID, len(p.Messages))
	for i, m := range p.Messages {
		ids[i] = m.ID
	}
	return ids
}

// TestRetryAfterCrashReturnsOriginal runs a hub on a durable store in a
// child process and kills it with SIGKILL after a publish's commit and
// before its reply. A hub restarted on the same file answers the retry
// (same client, same idempotency key) with the first message: one id, one
// message in history.
func TestRetryAfterCrashReturnsOriginal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "history.db")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRetryAfterCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PLAZA_RETRY_CRASH_FILE="+path)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the child hub did not kill itself within 30s; it printed:\n%s", out.String())
	}
	var exit *exec.ExitError
	if ws, ok := exitStatus(err, &exit); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child hub ended with %v, want killed by SIGKILL; it printed:\n%s", err, out.String())
	}
	var first pubsub.ID
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
			if first, err = pubsub.ParseID(s); err != nil {
				t.Fatal(err)
			}
		}
		if strings.HasPrefix(sc.Text(), "replied ") {
			t.Fatalf("the child hub replied before it was killed: %s", sc.Text())
		}
	}
	if first == 0 {
		t.Fatalf("the child hub printed no committed id:\n%s", out.String())
	}

	store, err := history.OpenBolt(path, history.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h := openHub(t, memory.Options{Store: store})
	got := publishOn(t, connectTo(t, h, "alice"), retryReq)
	if got.ID != first {
		t.Errorf("retry after the crash confirmed %v, want the first id %v", got.ID, first)
	}
	if got.From != "alice" || got.Topic != retryReq.Topic || string(got.Payload) != string(retryReq.Payload) || !got.Persisted {
		t.Errorf("retry after the crash confirmed %+v, want alice's stored message", got)
	}
	if ids := storedIDs(t, store, "chat"); !cmp.Equal(ids, []pubsub.ID{first}) {
		t.Errorf("history holds %v, want only %v", ids, first)
	}
	if s := h.Stats(); s.Published != 0 || s.Deduplicated != 1 {
		t.Errorf("Stats() = Published %d, Deduplicated %d; want 0, 1", s.Published, s.Deduplicated)
	}
}

func exitStatus(err error, exit **exec.ExitError) (syscall.WaitStatus, bool) {
	if !errors.As(err, exit) {
		return 0, false
	}
	ws, ok := (*exit).Sys().(syscall.WaitStatus)
	return ws, ok
}

// TestRetryAfterCrashChild is the child of
// TestRetryAfterCrashReturnsOriginal: it publishes retryReq once and kills
// itself as soon as the store has committed it.
func TestRetryAfterCrashChild(t *testing.T) {
	path := os.Getenv("PLAZA_RETRY_CRASH_FILE")
	if path == "" {
		t.Skip("run by TestRetryAfterCrashReturnsOriginal")
	}
	store, err := history.OpenBolt(path, history.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := memory.New(memory.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	memory.SetAfterCommit(h, func(m *pubsub.Message) {
		fmt.Printf("committed %d\n", m.ID)
		p, err := os.FindProcess(os.Getpid())
		if err == nil {
			err = p.Kill()
		}
		if err != nil {
			fmt.Println("kill:", err)
			os.Exit(3)
		}
		select {} // SIGKILL ends the process before this is reached
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := h.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Publish(ctx, retryReq)
	fmt.Printf("replied %d %v\n", m.ID, err)
	t.Error("Publish returned: the hook did not end the process")
}

// reopenable is a store that a test can close and open again, as a process
// restart would.
type reopenable struct {
	name   string
	open   func(t *testing.T, clock pubsub.Clock) history.Store
	reopen bool // close and open the store between hubs; else share it
}

func reopenables(t *testing.T) []reopenable {
	path := filepath.Join(t.TempDir(), "history.db")
	return []reopenable{
		{"bolt", func(t *testing.T, clock pubsub.Clock) history.Store {
			s, err := history.OpenBolt(path, history.BoltOptions{Options: history.Options{Clock: clock, MaxAge: -1}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}, true},
		{"memory", func(t *testing.T, clock pubsub.Clock) history.Store {
			s := history.NewMemory(history.Options{Clock: clock, MaxAge: -1})
			t.Cleanup(func() { s.Close() })
			return s
		}, false},
	}
}

// restart closes h and returns a hub on the same store (the same file
// opened again for bolt), with opts.
func (r reopenable) restart(t *testing.T, h *memory.Hub, store history.Store, opts memory.Options) (*memory.Hub, history.Store) {
	t.Helper()
	if err := h.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if r.reopen {
		if err := store.Close(); err != nil {
			t.Fatalf("store Close() = %v", err)
		}
		store = r.open(t, opts.Clock)
	}
	opts.Store = store
	return openHub(t, opts), store
}

// TestRetryAfterReopenReturnsOriginal closes a hub after a keyed publish
// and opens another on the same store: a retry of the publish is confirmed
// with the first message, not published again, while the same key from
// another client and a new key are new publishes.
func TestRetryAfterReopenReturnsOriginal(t *testing.T) {
	t.Parallel()
	for _, r := range reopenables(t) {
		t.Run(r.name, func(t *testing.T) {
			clock := fakeclock.New(time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC))
			store := r.open(t, clock)
			h := openHub(t, memory.Options{Store: store, Clock: clock})
			first := publishOn(t, connectTo(t, h, "alice"), retryReq)
			clock.Advance(time.Second)

			h, store = r.restart(t, h, store, memory.Options{Clock: clock})
			bob := connectTo(t, h, "bob")
			if err := bob.Subscribe(context.Background(), pubsub.SubscribeRequest{Topic: "chat"}); err != nil {
				t.Fatal(err)
			}
			alice := connectTo(t, h, "alice")
			got := publishOn(t, alice, retryReq)
			if diff := cmp.Diff(first, got); diff != "" {
				t.Errorf("retry on the reopened hub (-first +got):\n%s", diff)
			}
			select {
			case m := <-bob.Messages():
				t.Errorf("a subscriber received the retried message again: %v", m.ID)
			default:
			}
			other := retryReq
			other.IdempotencyKey = "another"
			fromBob := publishOn(t, bob, retryReq)
			fresh := publishOn(t, alice, other)
			if fromBob.ID == first.ID || fresh.ID == first.ID {
				t.Errorf("bob's publish with alice's key = %v, alice's with a new key = %v; want new messages, not %v", fromBob.ID, fresh.ID, first.ID)
			}
			if ids, want := storedIDs(t, store, "chat"), []pubsub.ID{first.ID, fromBob.ID, fresh.ID}; !cmp.Equal(ids, want) {
				t.Errorf("history holds %v, want %v", ids, want)
			}
			if s := h.Stats(); s.Published != 2 || s.Deduplicated != 1 {
				t.Errorf("Stats() = Published %d, Deduplicated %d; want 2, 1", s.Published, s.Deduplicated)
			}
		})
	}
}

// TestReopenedKeysWindow checks that a reopened hub remembers the keys of
// the earlier one for what is left of their window, and no longer.
func TestReopenedKeysWindow(t *testing.T) {
	t.Parallel()
	const window = 2 * time.Minute
	for _, r := range reopenables(t) {
		t.Run(r.name, func(t *testing.T) {
			clock := fakeclock.New(time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC))
			store := r.open(t, clock)
			opts := memory.Options{Clock: clock, DedupWindow: window}
			opts.Store = store
			h := openHub(t, opts)
			c := connectTo(t, h, "alice")
			early, late := retryReq, retryReq
			early.IdempotencyKey, late.IdempotencyKey = "early", "late"
			earlyMsg := publishOn(t, c, early)
			clock.Advance(30 * time.Second)
			lateMsg := publishOn(t, c, late)
			unkeyed := publishOn(t, c, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`1`)})

			// A window after the first publish: the early key has expired,
			// the late one has 30 seconds left.
			clock.Advance(window - 30*time.Second)
			h, _ = r.restart(t, h, store, opts)
			c = connectTo(t, h, "alice")
			if got := publishOn(t, c, late); got.ID != lateMsg.ID {
				t.Errorf("retry of a key 90s old = %v, want the stored %v", got.ID, lateMsg.ID)
			}
			if got := publishOn(t, c, early); got.ID == earlyMsg.ID || got.ID <= unkeyed.ID {
				t.Errorf("retry of a key a window old = %v, want a new message after %v", got.ID, unkeyed.ID)
			}
			clock.Advance(30 * time.Second)
			if got := publishOn(t, c, late); got.ID == lateMsg.ID {
				t.Errorf("retry of a key a window old = %v, the stored message; want a new one", got.ID)
			}
		})
	}
}

// TestReopenedKeysLimit checks that a reopened hub reads back at most
// DedupKeys keys per topic, the newest.
func TestReopenedKeysLimit(t *testing.T) {
	t.Parallel()
	for _, r := range reopenables(t) {
		t.Run(r.name, func(t *testing.T) {
			clock := fakeclock.New(time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC))
			store := r.open(t, clock)
			opts := memory.Options{Clock: clock, DedupKeys: 2}
			opts.Store = store
			h := openHub(t, opts)
			c := connectTo(t, h, "alice")
			var first []pubsub.Message
			for i := range 3 {
				req := retryReq
				req.IdempotencyKey = fmt.Sprint("k", i)
				first = append(first, publishOn(t, c, req))
				clock.Advance(time.Millisecond)
			}
			h, _ = r.restart(t, h, store, opts)
			c = connectTo(t, h, "alice")
			for _, i := range []int{2, 1, 0} {
				req := retryReq
				req.IdempotencyKey = fmt.Sprint("k", i)
				got := publishOn(t, c, req)
				if remembered := i > 0; (got.ID == first[i].ID) != remembered {
					t.Errorf("retry of key k%d = %v (stored %v); want the stored one: %t", i, got.ID, first[i].ID, remembered)
				}
			}
		})
	}
}

// TestReopenedRetryBeforeRateCap checks that a retry answered from the keys
// of an earlier hub costs no token of the publish rate cap.
func TestReopenedRetryBeforeRateCap(t *testing.T) {
	t.Parallel()
	r := reopenables(t)[0]
	clock := fakeclock.New(time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC))
	store := r.open(t, clock)
	opts := memory.Options{Clock: clock, PublishRate: 1, PublishBurst: 1}
	opts.Store = store
	h := openHub(t, opts)
	first := publishOn(t, connectTo(t, h, "alice"), retryReq)
	h, _ = r.restart(t, h, store, opts)
	c := connectTo(t, h, "alice")
	for range 3 {
		if got := publishOn(t, c, retryReq); got.ID != first.ID {
			t.Fatalf("retry = %v, want the stored %v", got.ID, first.ID)
		}
	}
	publishOn(t, c, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`2`)}) // the one token
	_, err := c.Publish(context.Background(), pubsub.PublishRequest{Topic: "chat", Payload: []byte(`3`)})
	if !errors.Is(err, pubsub.ErrRateLimitExceeded) {
		t.Errorf("second new publish within the cap = %v, want RATE_LIMIT_EXCEEDED", err)
	}
}

// keysFailing is a KeyStore whose Keys fails while err is set.
type keysFailing struct {
	*history.Memory
	mu  sync.Mutex
	err error
}

func (s *keysFailing) Keys(ctx context.Context, room string, q history.KeyQuery) ([]history.KeyedMessage, error) {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.Memory.Keys(ctx, room, q)
}

// TestKeysReadFailure checks that a hub that cannot read a topic's stored
// keys refuses keyed publishes to it with INTERNAL_ERROR rather than risk a
// duplicate, publishes without a key as usual, and reads the keys once the
// store answers again.
func TestKeysReadFailure(t *testing.T) {
	t.Parallel()
	store := &keysFailing{Memory: history.NewMemory(history.Options{})}
	defer store.Close()
	h := openHub(t, memory.Options{Store: store})
	first := publishOn(t, connectTo(t, h, "alice"), retryReq)
	h.Close()

	store.mu.Lock()
	store.err = errors.New("disk on fire")
	store.mu.Unlock()
	h = openHub(t, memory.Options{Store: store})
	c := connectTo(t, h, "alice")
	_, err := c.Publish(context.Background(), retryReq)
	var perr *pubsub.Error
	if !errors.As(err, &perr) || perr.Code != pubsub.CodeInternal || !errors.Is(err, store.err) {
		t.Errorf("keyed Publish while the store cannot read keys = %v, want INTERNAL_ERROR wrapping the store's error", err)
	}
	publishOn(t, c, pubsub.PublishRequest{Topic: "chat", Payload: []byte(`2`)})

	store.mu.Lock()
	store.err = nil
	store.mu.Unlock()
	if got := publishOn(t, c, retryReq); got.ID != first.ID {
		t.Errorf("retry once the store reads keys again = %v, want the stored %v", got.ID, first.ID)
	}
}
