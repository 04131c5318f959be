package historytest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
)

// The subtests of a history.KeyStore: they skip a store that is not one.

// keyStore returns e's store as a KeyStore, or skips t.
func (e *env) keyStore(t *testing.T) history.KeyStore {
	t.Helper()
	ks, ok := e.s.(history.KeyStore)
	if !ok {
		t.Skipf("%T is not a history.KeyStore", e.s)
	}
	return ks
}

// appendKey appends m to room with key.
func (e *env) appendKey(room string, m pubsub.Message, key string) {
	e.t.Helper()
	if err := e.s.(history.KeyStore).AppendKey(context.Background(), room, m, key); err != nil {
		e.t.Fatalf("AppendKey(%q, id %d, %q) = %v", room, m.ID, key, err)
	}
}

// checkKeys asks for room's keys with q and compares them with want.
func (e *env) checkKeys(room string, q history.KeyQuery, want []history.KeyedMessage) {
	e.t.Helper()
	got, err := e.s.(history.KeyStore).Keys(context.Background(), room, q)
	if err != nil {
		e.t.Fatalf("Keys(%q, %s) = %v", room, fmtKeyQuery(q), err)
	}
	for i := range want {
		want[i].Message.Persisted = true
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		e.t.Errorf("Keys(%q, %s) = %s, want %s; (-want +got):\n%s",
			room, fmtKeyQuery(q), keyNames(got), keyNames(want), diff)
	}
}

// keyed pairs msgs[i] with keys[i], newest first, as Keys returns them.
func keyed(msgs []pubsub.Message, keys []string) []history.KeyedMessage {
	out := make([]history.KeyedMessage, 0, len(msgs))
	for i := len(msgs) - 1; i >= 0; i-- {
		out = append(out, history.KeyedMessage{Key: keys[i], Message: msgs[i]})
	}
	return out
}

func keyNames(ks []history.KeyedMessage) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.Key
	}
	return out
}

func fmtKeyQuery(q history.KeyQuery) string {
	return fmt.Sprintf("{Topic: %q, Since: %s, Limit: %d}", q.Topic, q.Since.Format(time.RFC3339Nano), q.Limit)
}

func testKeys(t *testing.T, o opener) {
	e := o.open(t, history.Options{})
	e.keyStore(t)
	// Keyed and unkeyed messages, from two senders, with recipients and
	// metadata on some.
	var all, withKey []pubsub.Message
	var keys []string
	for i := range 12 {
		from := []string{"alice", "bob"}[i%2]
		var to []string
		if i%5 == 0 {
			to = []string{"carol"}
		}
		m := e.msg("chat", from, to...)
		all = append(all, m)
		if i%3 == 2 {
			e.append("room", m) // no key
			continue
		}
		key := fmt.Sprintf("%s-%d", from, i)
		if i == 7 {
			key = "" // AppendKey without a key is Append
		} else {
			withKey, keys = append(withKey, m), append(keys, key)
		}
		e.appendKey("room", m, key)
	}
	e.fill("room", "other", 2)
	e.fill("elsewhere", "chat", 2)
	e.appendKey("elsewhere", e.msg("chat", "alice"), "alice-1")

	e.checkKeys("room", history.KeyQuery{Topic: "chat"}, keyed(withKey, keys))
	// Keys change nothing a query sees (carol may see every message).
	e.check("room", history.Query{Topic: "chat", Limit: pubsub.MaxHistoryLimit, Viewer: "carol"}, all, false)
	e.check("room", history.Query{Topic: "chat", Limit: 3, Before: all[6].ID, From: []string{"alice"}, Viewer: "carol"}, pick(all, 0, 2, 4), false)
	// Other topics and rooms have their own keys, or none.
	e.checkKeys("room", history.KeyQuery{Topic: "other"}, nil)
	e.checkKeys("room", history.KeyQuery{Topic: "unknown"}, nil)
	e.checkKeys("nowhere", history.KeyQuery{Topic: "chat"}, nil)
}

func testKeysSinceAndLimit(t *testing.T, o opener) {
	e := o.open(t, history.Options{})
	e.keyStore(t)
	// Ten keyed messages a minute apart, then one without a key.
	var msgs []pubsub.Message
	var keys []string
	for i := range 10 {
		if i > 0 {
			e.clock.Advance(time.Minute)
		}
		m := e.msg("chat", "alice")
		key := fmt.Sprint("k", i)
		e.appendKey("room", m, key)
		msgs, keys = append(msgs, m), append(keys, key)
	}
	e.append("room", e.msg("chat", "alice"))

	all := keyed(msgs, keys)
	tests := []struct {
		name string
		q    history.KeyQuery
		want []history.KeyedMessage
	}{
		{"everything", history.KeyQuery{Topic: "chat"}, all},
		{"since the seventh", history.KeyQuery{Topic: "chat", Since: msgs[6].Timestamp}, all[:4]},
		{"since just after the seventh", history.KeyQuery{Topic: "chat", Since: msgs[6].Timestamp.Add(1)}, all[:3]},
		{"since the future", history.KeyQuery{Topic: "chat", Since: e.clock.Now().Add(time.Hour)}, nil},
		{"limit", history.KeyQuery{Topic: "chat", Limit: 3}, all[:3]},
		{"limit and since", history.KeyQuery{Topic: "chat", Since: msgs[8].Timestamp, Limit: 5}, all[:2]},
		{"negative limit", history.KeyQuery{Topic: "chat", Limit: -1}, all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.in(t).checkKeys("room", tt.q, tt.want)
		})
	}

	// The walk goes back in id order and ends at the first message stamped
	// before Since, even when an older id carries a later stamp.
	late := e.msg("late", "alice")
	early := e.msg("late", "alice")
	early.Timestamp = msgs[0].Timestamp
	e.appendKey("room", late, "late")
	e.appendKey("room", early, "early")
	e.checkKeys("room", history.KeyQuery{Topic: "late", Since: msgs[5].Timestamp}, nil)
	e.checkKeys("room", history.KeyQuery{Topic: "late"}, keyed([]pubsub.Message{late, early}, []string{"late", "early"}))
}

func testKeysRetention(t *testing.T, o opener) {
	e := o.open(t, history.Options{MaxMessages: 3, MaxAge: time.Hour})
	e.keyStore(t)
	var msgs []pubsub.Message
	var keys []string
	for i := range 5 {
		m := e.msg("chat", "alice")
		key := fmt.Sprint("k", i)
		e.appendKey("room", m, key)
		msgs, keys = append(msgs, m), append(keys, key)
	}
	// Beyond MaxMessages: only the newest three are left.
	e.checkKeys("room", history.KeyQuery{Topic: "chat"}, keyed(msgs[2:], keys[2:]))

	// Beyond MaxAge: an hour and a bit later, a fresh one only.
	e.clock.Advance(time.Hour)
	fresh := e.msg("chat", "alice")
	e.clock.Advance(time.Minute)
	e.appendKey("room", fresh, "fresh")
	e.checkKeys("room", history.KeyQuery{Topic: "chat"}, keyed([]pubsub.Message{fresh}, []string{"fresh"}))
	e.clock.Advance(2 * time.Hour)
	e.checkKeys("room", history.KeyQuery{Topic: "chat"}, nil)
}

func testKeysReplace(t *testing.T, o opener) {
	e := o.open(t, history.Options{})
	e.keyStore(t)
	a, b := e.msg("chat", "alice"), e.msg("chat", "alice")
	e.appendKey("room", a, "first")
	e.appendKey("room", b, "b")
	// Appending a stored id again replaces the message, key and all.
	e.appendKey("room", a, "second")
	e.checkKeys("room", history.KeyQuery{Topic: "chat"}, keyed([]pubsub.Message{a, b}, []string{"second", "b"}))
	e.append("room", a)
	e.checkKeys("room", history.KeyQuery{Topic: "chat"}, keyed([]pubsub.Message{b}, []string{"b"}))
}

func testKeysConcurrent(t *testing.T, o opener) {
	const writers, each = 4, 25
	e := o.open(t, history.Options{})
	ks := e.keyStore(t)
	ctx := context.Background()
	msgs := make([][]pubsub.Message, writers)
	for w := range msgs {
		for range each {
			msgs[w] = append(msgs[w], e.msg(fmt.Sprint("topic", w), "alice"))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for w := range writers {
		wg.Go(func() {
			for i, m := range msgs[w] {
				if err := ks.AppendKey(ctx, "room", m, fmt.Sprint("k", i)); err != nil {
					errs <- fmt.Errorf("AppendKey(id %d) = %v", m.ID, err)
					return
				}
			}
		})
		wg.Go(func() {
			for range each {
				got, err := ks.Keys(ctx, "room", history.KeyQuery{Topic: fmt.Sprint("topic", w)})
				if err != nil {
					errs <- fmt.Errorf("Keys = %v", err)
					return
				}
				for i := 1; i < len(got); i++ {
					if got[i-1].Message.ID <= got[i].Message.ID {
						errs <- fmt.Errorf("Keys returned ids out of order: %v", ids([]pubsub.Message{got[i-1].Message, got[i].Message}))
						return
					}
				}
			}
		})
	}
	waitGroup(t, &wg, "the concurrent Keys writers and readers")
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range writers {
		keys := make([]string, each)
		for i := range keys {
			keys[i] = fmt.Sprint("k", i)
		}
		e.checkKeys("room", history.KeyQuery{Topic: fmt.Sprint("topic", w)}, keyed(msgs[w], keys))
	}
}

func testKeysClosed(t *testing.T, o opener) {
	ctx := context.Background()
	e := o.open(t, history.Options{})
	ks := e.keyStore(t)
	e.appendKey("room", e.msg("chat", "alice"), "k")
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := ks.AppendKey(ctx, "room", e.msg("chat", "alice"), "k2"); err == nil {
		t.Error("AppendKey after Close = nil, want an error")
	}
	if _, err := ks.Keys(ctx, "room", history.KeyQuery{Topic: "chat"}); err == nil {
		t.Error("Keys after Close = nil error, want an error")
	}
}
