package memory

import (
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
)

func TestDedupSet(t *testing.T) {
	t.Parallel()
	const window = int64(time.Minute)
	sec := int64(time.Second)
	msg := func(from string) *pubsub.Message { return &pubsub.Message{From: from} }
	var d dedupSet
	alice1, alice2, bob := msg("alice"), msg("alice"), msg("bob")

	// Publishing means: expire, look up, and add on a miss.
	publish := func(h uint64, from, key string, m *pubsub.Message, now int64) *pubsub.Message {
		d.expire(now, window)
		got, exists := d.lookup(h, from, key, now, window)
		if got == nil {
			d.add(h, exists, key, m, now, 1<<20)
		}
		return got
	}
	steps := []struct {
		name      string
		h         uint64
		from, key string
		m         *pubsub.Message
		now       int64
		want      *pubsub.Message
	}{
		{"first", 1, "alice", "k", alice1, 0, nil},
		{"repeat", 1, "alice", "k", alice2, 10 * sec, alice1},
		{"collision, other client", 1, "bob", "k", bob, 20 * sec, nil},
		{"collision replaced the entry", 1, "alice", "k", alice2, 30 * sec, nil},
		{"clock stepped back", 1, "alice", "k", msg("alice"), 0, alice2},
		{"new key", 2, "alice", "j", alice1, 40 * sec, nil},
		{"expired", 1, "alice", "k", bob, 30*sec + window, nil},
		{"other key still there", 2, "alice", "j", nil, 30*sec + window, alice1},
		{"and gone in time", 2, "alice", "j", alice2, 40*sec + window, nil},
	}
	for _, s := range steps {
		if got := publish(s.h, s.from, s.key, s.m, s.now); got != s.want {
			t.Fatalf("%s: publish(%d, %q, %q) = %p, want %p", s.name, s.h, s.from, s.key, got, s.want)
		}
	}
	d.expire(100*window, window)
	if d.len() != 0 || d.head != d.tail {
		t.Errorf("after everything expired: %d keys, %d queued; want none", d.len(), d.tail-d.head)
	}
}

func TestDedupSetRing(t *testing.T) {
	t.Parallel()
	var d dedupSet
	const window = 1000
	for i := range int64(10000) {
		d.expire(i, window)
		d.add(uint64(i), false, "k", &pubsub.Message{}, i, 1<<20)
		if n := d.tail - d.head; n > window {
			t.Fatalf("at %d: %d entries, want at most %d", i, n, window)
		}
	}
	if n := len(d.ring); n > 2*window {
		t.Errorf("ring of %d after a steady state of %d entries", n, window)
	}
	for _, h := range []uint64{9001, 9500, 9999} {
		if m, _ := d.lookup(h, "", "k", 9999, window); m == nil {
			t.Errorf("key %d not found after the ring wrapped and grew", h)
		}
	}
}

func TestDedupSetLimit(t *testing.T) {
	t.Parallel()
	var d dedupSet
	const limit, window = 64, int64(time.Hour)
	for i := range int64(1000) {
		d.expire(i, window)
		if m, _ := d.lookup(uint64(i), "", "k", i, window); m != nil {
			t.Fatalf("key %d found before it was added", i)
		}
		d.add(uint64(i), false, "k", &pubsub.Message{}, i, limit)
		if n := d.len(); n > limit {
			t.Fatalf("after %d keys within the window: %d remembered, want at most %d", i+1, n, limit)
		}
	}
	// The newest limit keys are remembered, the older ones forgotten.
	for _, tt := range []struct {
		h    uint64
		want bool
	}{{999, true}, {1000 - limit, true}, {1000 - limit - 1, false}, {0, false}} {
		if m, _ := d.lookup(tt.h, "", "k", 1000, window); (m != nil) != tt.want {
			t.Errorf("key %d remembered = %v, want %v", tt.h, m != nil, tt.want)
		}
	}
}
