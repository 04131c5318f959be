package history

import (
	"context"
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
)

// TestMemoryRetentionFreesSlots checks that dropped messages give their
// memory back: the backing array of a topic stays within a constant factor
// of what retention keeps, and an expired topic holds no array at all.
func TestMemoryRetentionFreesSlots(t *testing.T) {
	const maxMessages = 1000
	ctx := context.Background()
	clock := fakeclock.New(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	s := NewMemory(Options{MaxMessages: maxMessages, MaxAge: time.Hour, Clock: clock})
	defer s.Close()
	for i := 1; i <= 20*maxMessages; i++ {
		m := pubsub.Message{ID: pubsub.ID(i), Topic: "chat", From: "alice", Payload: json.RawMessage(`{}`), Timestamp: clock.Now()}
		if err := s.Append(ctx, "room", m); err != nil {
			t.Fatal(err)
		}
		t1 := s.topics[topicKey{"room", "chat"}]
		// The array holds the live records, at most as many dropped ones,
		// and growth slack.
		if n, c := len(t1.recs), t1.dead+cap(t1.recs); c > 3*maxMessages {
			t.Fatalf("after %d appends: %d records in an array of %d", i, n, c)
		}
		if len(t1.recs) > 0 && &t1.base[t1.dead] != &t1.recs[0] {
			t.Fatalf("after %d appends: recs does not start at base[dead]", i)
		}
	}
	clock.Advance(2 * time.Hour)
	if _, err := s.Query(ctx, "room", Query{Topic: "chat", Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if t1 := s.topics[topicKey{"room", "chat"}]; t1.recs != nil {
		t.Errorf("after everything expired: len %d cap %d, want a nil slice", len(t1.recs), cap(t1.recs))
	}
}

// TestMemoryAppendAtLimitDoesNotAllocate checks that a topic at its
// retention limit reuses its array: appending allocates nothing.
func TestMemoryAppendAtLimitDoesNotAllocate(t *testing.T) {
	const maxMessages = 1000
	ctx := context.Background()
	s := NewMemory(Options{MaxMessages: maxMessages, MaxAge: -1})
	defer s.Close()
	payload := json.RawMessage(`{}`)
	id := 0
	appendOne := func() {
		id++
		m := pubsub.Message{ID: pubsub.ID(id), Topic: "chat", From: "alice", Payload: payload}
		if err := s.Append(ctx, "room", m); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 * maxMessages {
		appendOne()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 5 * maxMessages {
		appendOne()
	}
	runtime.ReadMemStats(&after)
	// AllocsPerRun would round a rare large reallocation down to zero, so
	// count every allocation of the whole run.
	if n := after.Mallocs - before.Mallocs; n > 0 {
		t.Errorf("%d appends at the retention limit made %d allocations, want 0", 5*maxMessages, n)
	}
}
