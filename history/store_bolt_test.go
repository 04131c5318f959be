package history_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/history/historytest"
	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
)

// waitTimeout bounds every wait for something that should happen: a
// deadlock guard, generous enough for a loaded machine, not a measurement.
const waitTimeout = 20 * time.Second

func openBolt(t testing.TB, path string, opts history.BoltOptions) *history.Bolt {
	t.Helper()
	s, err := history.OpenBolt(path, opts)
	if err != nil {
		t.Fatalf("OpenBolt(%q) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

func TestBolt(t *testing.T) {
	t.Parallel()
	historytest.Run(t, func(t *testing.T, opts history.Options) history.Store {
		return openBolt(t, filepath.Join(t.TempDir(), "history.db"), history.BoltOptions{Options: opts})
	})
}

// boltMessage returns message i of a test topic, stamped at clock's time.
func boltMessage(topic string, i int, at time.Time) pubsub.Message {
	return pubsub.Message{
		ID:        benchID(i),
		Topic:     topic,
		From:      "alice",
		Payload:   json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
		Timestamp: at,
	}
}

func TestBoltReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "history.db")
	clock := fakeclock.New(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	opts := history.BoltOptions{Options: history.Options{MaxAge: time.Hour, Clock: clock}}

	s, err := history.OpenBolt(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	var kept []pubsub.Message
	for i := range 10 {
		m := boltMessage("chat", i, clock.Now())
		if err := s.Append(ctx, "room", m); err != nil {
			t.Fatal(err)
		}
		m.Persisted = true
		kept = append(kept, m)
	}
	if err := s.Append(ctx, "room", boltMessage("old", 10, clock.Now().Add(-2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	s = openBolt(t, path, opts)
	page, err := s.Query(ctx, "room", history.Query{Topic: "chat", Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(kept, page.Messages); diff != "" || page.HasMore {
		t.Errorf("after reopening: HasMore = %t, messages (-want +got):\n%s", page.HasMore, diff)
	}
	if got, err := s.MaxID(ctx); got != benchID(10) || err != nil {
		t.Errorf("after reopening: MaxID() = %d, %v, want %d (an expired message's)", got, err, benchID(10))
	}

	// Once everything has expired and a query has seen it, the messages are
	// deleted from the file: reopening without retention finds none, but
	// MaxID stays.
	clock.Advance(2 * time.Hour)
	if page, err := s.Query(ctx, "room", history.Query{Topic: "chat", Limit: 50}); err != nil || len(page.Messages) != 0 {
		t.Fatalf("after expiry: Query() = %d messages, %v, want none", len(page.Messages), err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	s = openBolt(t, path, history.BoltOptions{Options: history.Options{MaxAge: -1, Clock: clock}})
	for _, topic := range []string{"chat", "old"} {
		page, err := s.Query(ctx, "room", history.Query{Topic: topic, Limit: 50})
		if err != nil || len(page.Messages) != 0 {
			t.Errorf("after expiry and reopening: Query(%q) = ids %v, %v, want none", topic, len(page.Messages), err)
		}
	}
	if got, err := s.MaxID(ctx); got != benchID(10) || err != nil {
		t.Errorf("after expiry and reopening: MaxID() = %d, %v, want %d", got, err, benchID(10))
	}
}

func TestBoltOpenInUse(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "history.db")
	openBolt(t, path, history.BoltOptions{})
	const timeout = 100 * time.Millisecond
	begin := time.Now()
	s, err := history.OpenBolt(path, history.BoltOptions{OpenTimeout: timeout})
	elapsed := time.Since(begin)
	if err == nil {
		s.Close()
		t.Fatalf("second OpenBolt(%q) = nil error, want one", path)
	}
	if !errors.Is(err, history.ErrInUse) || !strings.Contains(err.Error(), path) {
		t.Errorf("second OpenBolt(%q) = %v, want an error naming the file and saying it is in use", path, err)
	}
	if pubsub.CodeOf(err) != pubsub.CodeInternal {
		t.Errorf("second OpenBolt(%q) code = %q, want %q", path, pubsub.CodeOf(err), pubsub.CodeInternal)
	}
	if elapsed > timeout+time.Second {
		t.Errorf("second OpenBolt took %v with OpenTimeout %v", elapsed, timeout)
	}
}

func TestBoltAppendCanceled(t *testing.T) {
	t.Parallel()
	s := openBolt(t, filepath.Join(t.TempDir(), "history.db"), history.BoltOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Append(ctx, "room", boltMessage("chat", 1, time.Now())); !errors.Is(err, context.Canceled) {
		t.Errorf("Append(canceled ctx) = %v, want context.Canceled", err)
	}
}

// TestBoltRetentionBoundsFile checks that retention lets bbolt reuse pages:
// appending ten times MaxMessages per topic leaves the file about as large as
// it was after the first MaxMessages.
func TestBoltRetentionBoundsFile(t *testing.T) {
	t.Parallel()
	const (
		topics      = 4
		perTopic    = 16 // appenders, so that commits group
		maxMessages = 200
	)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "history.db")
	s := openBolt(t, path, history.BoltOptions{Options: history.Options{MaxMessages: maxMessages, MaxAge: -1}})
	payload := benchPayload()
	var nextID atomic.Int64
	// fill appends about n messages to every topic.
	fill := func(n int) {
		var wg sync.WaitGroup
		for w := range topics * perTopic {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n / perTopic {
					m := benchMessage(int(nextID.Add(1)), payload)
					m.Topic = fmt.Sprintf("topic%d", w%topics)
					if err := s.Append(ctx, "room", m); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		waitGroup(t, &wg, "the appenders")
	}
	size := func() int64 {
		// The file as the log's checkpoints leave it.
		if err := s.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	fill(maxMessages * 5 / 4)
	first := size()
	for range 9 {
		fill(maxMessages)
	}
	last := size()
	t.Logf("file size: %d bytes after %d messages, %d bytes after %d", first, topics*maxMessages*5/4, last, nextID.Load())
	if last > 2*first {
		t.Errorf("file grew from %d to %d bytes under retention, want at most twice", first, last)
	}
	for i := range topics {
		q := history.Query{Topic: fmt.Sprintf("topic%d", i), Limit: pubsub.MaxHistoryLimit}
		n := 0
		for pages := 0; ; pages++ {
			if pages > maxMessages {
				t.Fatalf("paging through %q: more pages than messages", q.Topic)
			}
			page, err := s.Query(ctx, "room", q)
			if err != nil {
				t.Fatal(err)
			}
			n += len(page.Messages)
			if !page.HasMore {
				break
			}
			q.Before = page.Messages[0].ID
		}
		if n != maxMessages {
			t.Errorf("topic %q holds %d messages, want %d", q.Topic, n, maxMessages)
		}
	}
}
