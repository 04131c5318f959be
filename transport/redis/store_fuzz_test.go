package redis

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// FuzzStoreVisibility stores a message with arbitrary sender, recipients,
// metadata and key, and checks that the walk script, which parses records
// in Lua, agrees with the Go decoder and with pubsub.Message.VisibleTo:
// the message comes back whole to exactly the viewers who may see it, and
// with its key from Keys.
func FuzzStoreVisibility(f *testing.F) {
	f.Add("alice", "bob", "", "bob", "k", "md", []byte(`{"a":1}`))
	f.Add("alice", "", "", "erin", "", "", []byte(`null`))
	f.Add("a:1:b", "3:x", "a:1:b", "3:x", "1:", "0:", []byte(`"x"`))
	f.Add("", "", "", "", "", "", []byte{})
	f.Add("alice", "bob", "carol", "carol", "k:k", "a:b", []byte(`[1,2]`))
	srv := redistest.Start(f, redistest.Options{})
	c := openOn(f, srv, Options{})
	s := c.Store(StoreOptions{Retention: history.Options{MaxAge: -1}})
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, from, to1, to2, viewer, key, md string, payload []byte) {
		m := pubsub.Message{ID: 1_900_000_000_000_000_000, Topic: fmt.Sprint("t", n.Add(1)), From: from,
			Payload: json.RawMessage(payload), Timestamp: t0, Persisted: true}
		for _, r := range []string{to1, to2} {
			if r != "" {
				m.To = append(m.To, r)
			}
		}
		if md != "" {
			m.Metadata = map[string]string{md: from}
		}
		ctx := ctxT(t)
		if err := s.AppendKey(ctx, "room", m, key); err != nil {
			t.Fatalf("AppendKey = %v", err)
		}
		page, err := s.Query(ctx, "room", history.Query{Topic: m.Topic, Limit: 10, Viewer: viewer, From: []string{from}})
		if err != nil {
			t.Fatalf("Query = %v", err)
		}
		var want []pubsub.Message
		if m.VisibleTo(viewer) {
			want = []pubsub.Message{m}
		}
		if diff := cmp.Diff(want, page.Messages, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Query(viewer %q) (-want +got):\n%s", viewer, diff)
		}
		keys, err := s.Keys(ctx, "room", history.KeyQuery{Topic: m.Topic})
		if err != nil {
			t.Fatalf("Keys = %v", err)
		}
		if (key != "") != (len(keys) == 1) || (key != "" && keys[0].Key != key) {
			t.Errorf("Keys = %+v, want key %q", keys, key)
		}
	})
}
