package redis

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/history/historytest"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// On a Redis Cluster of three shards, everything works as on one server:
// each topic's keys share a hash slot (no CROSSSLOT), the scripts run on
// the topic's shard, sharded channels reach subscribers whatever shard
// their topic is on, and patterns, rate windows, client sockets and
// leases work too.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster; skipped with -short")
	}
	nodes := redistest.StartCluster(t, 3, redistest.Options{})
	open := func(t *testing.T, prefix string) *Client {
		c := openOn(t, nodes[0], Options{Prefix: prefix})
		if mode := c.rc.Mode(); mode != "cluster" {
			t.Fatalf("client mode = %s, want cluster", mode)
		}
		return c
	}

	t.Run("historytest", func(t *testing.T) {
		var n atomic.Int64
		historytest.Run(t, func(t *testing.T, opts history.Options) history.Store {
			s := open(t, fmt.Sprintf("c%d", n.Add(1))).Store(StoreOptions{Retention: opts})
			t.Cleanup(func() { s.Close() })
			return s
		})
	})

	t.Run("publish", func(t *testing.T) {
		a, b := open(t, "p"), open(t, "p")
		sa := a.Store(StoreOptions{Patterns: true})
		sub, got := deliveries(t, b)
		// Enough topics to land on every shard.
		const topics = 24
		for i := range topics {
			if err := sub.Subscribe(ctxT(t), "room", fmt.Sprint("t", i)); err != nil {
				t.Fatalf("Subscribe(t%d) = %v", i, err)
			}
		}
		if err := sub.SubscribePattern(ctxT(t), "room", "t1*"); err != nil {
			t.Fatalf("SubscribePattern = %v", err)
		}
		want := map[string]pubsub.ID{}
		for i := range topics {
			m, _ := publish(t, sa, "room", msg(fmt.Sprint("t", i), 1000, "x"), "k")
			want[m.Topic] = m.ID
		}
		// Every topic once, and the pattern's topics (t1, t10-t19) twice.
		wantCount := topics + 11
		seen := map[string]int{}
		for range wantCount {
			d := next(t, got, "a delivery from the cluster")
			if d.Message.ID != want[d.Message.Topic] {
				t.Errorf("delivered %s id %d, want id %d", d.Message.Topic, d.Message.ID, want[d.Message.Topic])
			}
			seen[d.Message.Topic+"/"+d.Pattern]++
		}
		for k, n := range seen {
			if n != 1 {
				t.Errorf("%s delivered %d times, want once", k, n)
			}
		}
		// A retry on the other client is answered from the topic's shard.
		if m, dup := publish(t, b.Store(StoreOptions{}), "room", msg("t5", 1, "x"), "k"); !dup || m.ID != want["t5"] {
			t.Errorf("retry on b = id %d, dup %t; want id %d, dup", m.ID, dup, want["t5"])
		}
	})

	t.Run("rate window, sockets, lease", func(t *testing.T) {
		a, b := open(t, "r"), open(t, "r")
		now := time.Now()
		for i, want := range []bool{true, true, false} {
			w := []*RateWindow{a.RateWindow(), b.RateWindow()}[i%2]
			if ok, _, err := w.Allow(ctxT(t), "app", 2, now); err != nil || ok != want {
				t.Errorf("Allow %d = %t, %v; want %t", i, ok, err, want)
			}
		}
		token, err := a.Sockets().Create(ctxT(t), ClientSocket{Room: "room", Topic: "chat", ClientID: "x", Expires: now.Add(time.Minute)}, now, 10)
		if err != nil {
			t.Fatalf("Create = %v", err)
		}
		if _, _, err := b.Sockets().Use(ctxT(t), "room", token, now); err != nil {
			t.Errorf("Use on b = %v", err)
		}
		l, err := a.AcquireNode(ctxT(t), 1, LeaseOptions{})
		if err != nil {
			t.Fatalf("AcquireNode = %v", err)
		}
		defer l.Close()
		if _, err := b.AcquireNode(ctxT(t), 1, LeaseOptions{}); err == nil {
			t.Error("AcquireNode(1) on b = nil error, want the collision")
		}
	})
}
