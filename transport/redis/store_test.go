package redis

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/history/historytest"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

func TestStore(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	var n atomic.Int64
	historytest.Run(t, func(t *testing.T, opts history.Options) history.Store {
		// Each subtest gets a key space of its own on the one server.
		c := openOn(t, srv, Options{Prefix: fmt.Sprintf("t%d", n.Add(1))})
		s := c.Store(StoreOptions{Retention: opts})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// A query that skips more messages than one walk script may read (a rare
// sender, a recipient's view) goes on from where the script stopped, in
// both directions, and for Keys.
func TestQueryLongWalk(t *testing.T) {
	c, _ := open(t, redistest.Options{})
	s := c.Store(StoreOptions{})
	ctx := ctxT(t)
	const between = 2*walkBudget + 500
	first := msg("chat", 1_900_000_000_000_000_000, "alice's first")
	if err := s.AppendKey(ctx, "room", first, "k1"); err != nil {
		t.Fatalf("AppendKey = %v", err)
	}
	for i := range between {
		m := msg("chat", first.ID+pubsub.ID(i+1), "bob's")
		m.From, m.To = "bob", []string{"carol"}
		if err := s.Append(ctx, "room", m); err != nil {
			t.Fatalf("Append %d = %v", i, err)
		}
	}
	last := msg("chat", first.ID+between+1, "alice's last")
	if err := s.Append(ctx, "room", last); err != nil {
		t.Fatalf("Append = %v", err)
	}
	tests := []struct {
		name    string
		q       history.Query
		want    []pubsub.Message
		hasMore bool
	}{
		{"from alice, newest", history.Query{Topic: "chat", Limit: 2, From: []string{"alice"}}, []pubsub.Message{first, last}, false},
		{"from alice, newest one", history.Query{Topic: "chat", Limit: 1, From: []string{"alice"}}, []pubsub.Message{last}, true},
		{"from alice, after the first", history.Query{Topic: "chat", Limit: 5, From: []string{"alice"}, After: first.ID}, []pubsub.Message{last}, false},
		{"a stranger's view, after", history.Query{Topic: "chat", Limit: 1, Viewer: "erin", After: 1}, []pubsub.Message{first}, true},
		{"a stranger's view, before", history.Query{Topic: "chat", Limit: 5, Viewer: "erin", Before: last.ID}, []pubsub.Message{first}, false},
	}
	for _, tt := range tests {
		page, err := s.Query(ctx, "room", tt.q)
		if err != nil {
			t.Fatalf("%s: Query = %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, page.Messages); diff != "" || page.HasMore != tt.hasMore {
			t.Errorf("%s: Query = ids %v, HasMore %t; want ids %v, %t", tt.name, ids(page.Messages), page.HasMore, ids(tt.want), tt.hasMore)
		}
	}
	keys, err := s.Keys(ctx, "room", history.KeyQuery{Topic: "chat"})
	if err != nil || len(keys) != 1 || keys[0].Key != "k1" || keys[0].Message.ID != first.ID {
		t.Errorf("Keys = %+v, %v; want the first message with k1", keys, err)
	}
}
