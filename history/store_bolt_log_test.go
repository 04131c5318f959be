package history_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/internal/testwait"
	"github.com/plazahq/plaza/pubsub"
)

// appendAll appends msgs to s in order, with key "k<id>" on every other one.
func appendAll(t *testing.T, s *history.Bolt, msgs []pubsub.Message) {
	t.Helper()
	for i, m := range msgs {
		key := ""
		if i%2 == 0 {
			key = fmt.Sprint("k", m.ID)
		}
		if err := s.AppendKey(context.Background(), "room", m, key); err != nil {
			t.Fatalf("AppendKey(%d) = %v", m.ID, err)
		}
	}
}

// allOf returns every message of topic, oldest first, paging with After.
func allOf(t *testing.T, s history.Store, topic string) []pubsub.Message {
	t.Helper()
	var all []pubsub.Message
	q := history.Query{Topic: topic, After: 1, Limit: pubsub.MaxHistoryLimit}
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			t.Fatalf("paging through %q: more than 10,000 pages", topic)
		}
		page, err := s.Query(context.Background(), "room", q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Messages...)
		if !page.HasMore {
			return all
		}
		q.After = page.Messages[len(page.Messages)-1].ID
	}
}

func persisted(msgs []pubsub.Message) []pubsub.Message {
	out := make([]pubsub.Message, len(msgs))
	for i, m := range msgs {
		m.Persisted = true
		out[i] = m
	}
	return out
}

// What an append confirmed survives a crash, whether it was only in the
// log, in a checkpoint, or in both, and even with a torn write after it:
// none lost, none twice, keys with their messages, retention by count
// applied across the file and the log.
func TestBoltCrashReplaysLog(t *testing.T) {
	t.Parallel()
	at := time.Now().UTC()
	msg := func(topic string, i int) pubsub.Message { return boltMessage(topic, i, at.Add(time.Duration(i))) }
	var chat, news []pubsub.Message
	for i := range 30 {
		chat = append(chat, msg("chat", 2*i))
		news = append(news, msg("news", 2*i+1))
	}
	tests := []struct {
		name string
		// checkpointAt is how many of each topic's messages are appended
		// before a checkpoint; -1 for none.
		checkpointAt int
		torn         bool // garbage after the last record of the log
	}{
		{"log only", -1, false},
		{"file and log", 10, false},
		{"file only", 30, false},
		{"torn write after the log", 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "history.db")
			opts := history.BoltOptions{Options: history.Options{MaxMessages: 25, MaxAge: -1}}
			s, err := history.OpenBolt(path, opts)
			if err != nil {
				t.Fatal(err)
			}
			split := tt.checkpointAt
			if split < 0 {
				split = 0
			}
			appendAll(t, s, chat[:split])
			appendAll(t, s, news[:split])
			if tt.checkpointAt >= 0 {
				if err := s.Checkpoint(); err != nil {
					t.Fatal(err)
				}
			}
			appendAll(t, s, chat[split:])
			appendAll(t, s, news[split:])
			before := map[string][]pubsub.Message{"chat": allOf(t, s, "chat"), "news": allOf(t, s, "news")}
			logs := s.LogPaths()
			s.Crash()
			if tt.torn {
				// A record cut short where the next write would have gone,
				// in whichever segment holds the newest records.
				for _, p := range logs {
					f, err := os.OpenFile(p, os.O_RDWR, 0)
					if err != nil {
						t.Fatal(err)
					}
					f.WriteAt([]byte{0, 0, 0, 200, 1, 2, 3, 4, 5, 6, 7, 8, 9}, findEnd(t, p))
					f.Close()
				}
			}

			s = openBolt(t, path, opts)
			for topic, all := range map[string][]pubsub.Message{"chat": chat, "news": news} {
				want := persisted(all[len(all)-25:])
				got := allOf(t, s, topic)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s after the crash (-want +got):\n%s", topic, diff)
				}
				if diff := cmp.Diff(before[topic], got); diff != "" {
					t.Errorf("%s: history before the crash and after differ (-before +after):\n%s", topic, diff)
				}
				keys, err := s.Keys(context.Background(), "room", history.KeyQuery{Topic: topic})
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range keys {
					if k.Key != fmt.Sprint("k", k.Message.ID) {
						t.Errorf("%s: message %d came back with key %q", topic, k.Message.ID, k.Key)
					}
				}
				if len(keys) != 12 && len(keys) != 13 {
					t.Errorf("%s: %d keyed messages after the crash, want the 12 or 13 of the 25 kept", topic, len(keys))
				}
			}
			if got, err := s.MaxID(context.Background()); err != nil || got != news[29].ID {
				t.Errorf("MaxID after the crash = %d, %v, want %d", got, err, news[29].ID)
			}
		})
	}
}

// findEnd returns the offset where the records of the log segment at path
// end: the first 4-byte length of zero.
func findEnd(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for off+8 <= len(b) {
		n := int(b[off])<<24 | int(b[off+1])<<16 | int(b[off+2])<<8 | int(b[off+3])
		if n == 0 {
			break
		}
		off += 8 + n
	}
	return int64(off)
}

// The store answers every query as the memory store does, whatever part of
// its history the checkpoints have moved from the log into the file: the
// same messages, in the same pages, with the same HasMore, under retention
// by count, for appends in and out of order and replacements.
func TestBoltMatchesMemoryAcrossCheckpoints(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(seed, seed))
			opts := history.Options{MaxMessages: 20, MaxAge: -1}
			mem := history.NewMemory(opts)
			defer mem.Close()
			s := openBolt(t, filepath.Join(t.TempDir(), "history.db"), history.BoltOptions{Options: opts})
			at := time.Now().UTC()
			next := map[string]int{}
			topics := []string{"a", "b", "c"}
			var appended []pubsub.Message
			for step := range 400 {
				topic := topics[rng.IntN(len(topics))]
				switch r := rng.IntN(100); {
				case r < 60: // in order
					next[topic]++
					m := boltMessage(topic, next[topic]*10, at.Add(time.Duration(step)))
					m.From = []string{"alice", "bob"}[rng.IntN(2)]
					if rng.IntN(4) == 0 {
						m.To = []string{"carol"}
					}
					appended = append(appended, m)
					key := fmt.Sprint("k", step)
					if err := s.AppendKey(ctx, "room", m, key); err != nil {
						t.Fatal(err)
					}
					mem.AppendKey(ctx, "room", m, key)
				case r < 65 && len(appended) > 0: // a replacement, or an id older than the newest
					m := appended[rng.IntN(len(appended))]
					if rng.IntN(2) == 0 {
						m.ID -= 3
					}
					m.Payload = []byte(fmt.Sprintf(`{"again":%d}`, step))
					if err := s.Append(ctx, "room", m); err != nil {
						t.Fatal(err)
					}
					mem.Append(ctx, "room", m)
				case r < 72:
					if err := s.Checkpoint(); err != nil {
						t.Fatal(err)
					}
				default:
					q := history.Query{Topic: topic, Limit: 1 + rng.IntN(8)}
					if rng.IntN(3) == 0 {
						q.Viewer = "carol"
					}
					if n := next[topic]; n > 0 {
						anchor := benchID(rng.IntN(n*10 + 20))
						switch rng.IntN(3) {
						case 0:
							q.Before = anchor
						case 1:
							q.After = anchor
						}
					}
					want, err := mem.Query(ctx, "room", q)
					if err != nil {
						t.Fatal(err)
					}
					got, err := s.Query(ctx, "room", q)
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
						t.Fatalf("step %d: Query(%+v) (-memory +bolt):\n%s", step, q, diff)
					}
					wantKeys, _ := mem.Keys(ctx, "room", history.KeyQuery{Topic: topic})
					gotKeys, err := s.Keys(ctx, "room", history.KeyQuery{Topic: topic})
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(wantKeys, gotKeys, cmpopts.EquateEmpty()); diff != "" {
						t.Fatalf("step %d: Keys(%q) (-memory +bolt):\n%s", step, topic, diff)
					}
				}
			}
		})
	}
}

// Queries that run while checkpoints move messages from the log into the
// file see every message once: each page is a run of consecutive messages
// that reaches at least the newest one appended before the query began.
func TestBoltQueriesDuringCheckpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openBolt(t, filepath.Join(t.TempDir(), "history.db"), history.BoltOptions{Options: history.Options{MaxMessages: -1, MaxAge: -1}})
	const topics, each = 4, 150
	var confirmed [topics]atomic.Int64 // index of the newest confirmed message, +1
	var wg sync.WaitGroup
	stop := make(chan struct{})
	tick := make(chan struct{}, 1) // a checkpoint is due
	for w := range topics {
		wg.Go(func() {
			for i := range each {
				m := boltMessage(fmt.Sprint("t", w), i*topics+w, time.Now())
				if err := s.Append(ctx, "room", m); err != nil {
					t.Error(err)
					return
				}
				confirmed[w].Store(int64(i + 1))
				if i%10 == 0 {
					select {
					case tick <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	var ckpts sync.WaitGroup
	ckpts.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-tick:
			}
			if err := s.Checkpoint(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for q := range 2 {
		wg.Go(func() {
			for round := 0; confirmed[q].Load() < each; round++ {
				w := (q + round) % topics
				least := confirmed[w].Load()
				page, err := s.Query(ctx, "room", history.Query{Topic: fmt.Sprint("t", w), Limit: pubsub.MaxHistoryLimit})
				if err != nil {
					t.Error(err)
					return
				}
				for i, m := range page.Messages {
					if i > 0 && m.ID != page.Messages[i-1].ID+topics<<22 {
						t.Errorf("t%d: page has %d after %d, want consecutive messages", w, m.ID, page.Messages[i-1].ID)
						return
					}
				}
				if n := len(page.Messages); least > 0 && (n == 0 || page.Messages[n-1].ID < benchID(int(least-1)*topics+w)) {
					t.Errorf("t%d: newest page ends before message %d, which was confirmed before the query", w, least-1)
					return
				}
			}
		})
	}
	waitGroup(t, &wg, "the appenders and queriers")
	close(stop)
	waitGroup(t, &ckpts, "the checkpoints")
	for w := range topics {
		if n := len(allOf(t, s, fmt.Sprint("t", w))); n != each {
			t.Errorf("t%d holds %d messages, want %d", w, n, each)
		}
	}
	if st := s.Stats(); st.Checkpoints < 2 {
		t.Errorf("%d checkpoints ran, want several during the appends", st.Checkpoints)
	}
}

// waitGroup waits for wg, failing the test when that takes longer than
// waitTimeout.
var waitGroup = testwait.Group

// openToCrash opens a store in a new folder for a test that ends it with
// Crash, and returns it with its path.
func openToCrash(t *testing.T, opts history.BoltOptions) (*history.Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.db")
	s, err := history.OpenBolt(path, opts)
	if err != nil {
		t.Fatalf("OpenBolt(%q) = %v", path, err)
	}
	return s, path
}

// An append whose log write fails is not confirmed, and must not cost the
// appends confirmed after it: a failed fsync may have dropped the write
// (the log then reads zeros where it went) or kept it. Either way, what a
// crash leaves is what the store showed before it: the confirmed appends,
// and not the failed one.
func TestBoltFailedLogWrite(t *testing.T) {
	t.Parallel()
	at := time.Now().UTC()
	for _, tt := range []struct {
		name string
		lose bool
	}{
		{"write lost", true},
		{"write kept", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := history.BoltOptions{Options: history.Options{MaxAge: -1}}
			s, path := openToCrash(t, opts)
			a, b, c := boltMessage("chat", 1, at), boltMessage("chat", 2, at), boltMessage("chat", 3, at)
			ctx := context.Background()
			if err := s.Append(ctx, "room", a); err != nil {
				t.Fatalf("Append(a) = %v", err)
			}
			s.FailSync(syscall.EIO, tt.lose)
			if err := s.Append(ctx, "room", b); !errors.Is(err, syscall.EIO) || pubsub.CodeOf(err) != pubsub.CodeInternal {
				t.Fatalf("Append(b) with a failing fsync = %v, want INTERNAL with EIO", err)
			}
			if err := s.Append(ctx, "room", c); err != nil {
				t.Fatalf("Append(c) after the failed write = %v", err)
			}
			want := persisted([]pubsub.Message{a, c})
			if diff := cmp.Diff(want, allOf(t, s, "chat")); diff != "" {
				t.Errorf("history before the crash (-want +got):\n%s", diff)
			}
			s.Crash()
			s = openBolt(t, path, opts)
			if diff := cmp.Diff(want, allOf(t, s, "chat")); diff != "" {
				t.Errorf("history after the crash (-want +got):\n%s", diff)
			}
		})
	}
}

// A message too large for one log record fails with PAYLOAD_TOO_LARGE
// instead of being confirmed into a record that replay would take for the
// log's end, losing it and every append confirmed after it.
func TestBoltOversizedRecord(t *testing.T) {
	t.Parallel()
	opts := history.BoltOptions{Options: history.Options{MaxAge: -1}}
	s, path := openToCrash(t, opts)
	at := time.Now().UTC()
	ctx := context.Background()
	big := boltMessage("chat", 1, at)
	big.Payload = []byte(`"` + strings.Repeat("x", 5<<20) + `"`)
	small := boltMessage("chat", 2, at)
	if err := s.Append(ctx, "room", big); pubsub.CodeOf(err) != pubsub.CodePayloadTooLarge {
		t.Errorf("Append(a %d-byte payload) = %v, want PAYLOAD_TOO_LARGE", len(big.Payload), err)
	}
	if err := s.Append(ctx, "room", small); err != nil {
		t.Fatalf("Append(small) = %v", err)
	}
	ids := func(msgs []pubsub.Message) []pubsub.ID {
		var ids []pubsub.ID
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		return ids
	}
	want := []pubsub.ID{small.ID}
	if got := ids(allOf(t, s, "chat")); !slices.Equal(got, want) {
		t.Errorf("history before the crash holds %v, want %v", got, want)
	}
	s.Crash()
	s = openBolt(t, path, opts)
	if got := ids(allOf(t, s, "chat")); !slices.Equal(got, want) {
		t.Errorf("history after the crash holds %v, want %v", got, want)
	}
}
