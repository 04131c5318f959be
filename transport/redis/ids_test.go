package redis

import (
	"errors"
	"testing"
	"time"

	"github.com/bwmarrin/snowflake"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// mkID builds an id from its parts.
func mkID(ms, node, step uint64) pubsub.ID {
	return pubsub.ID(ms<<(idNodeBits+idStepBits) | node<<idStepBits | step)
}

// raiseIDBrute is raiseID's definition: the first id above last, counting
// up, whose node bits are those of proposed.
func raiseIDBrute(last, proposed pubsub.ID) (pubsub.ID, bool) {
	node := proposed.Node()
	for id := uint64(last) + 1; id <= 1<<63-1; id++ {
		if snowflake.ID(id).Node() == node {
			return pubsub.ID(id), true
		}
	}
	return 0, false
}

func TestRaiseID(t *testing.T) {
	tests := []struct {
		name           string
		last, proposed pubsub.ID
		want           pubsub.ID
		ok             bool
	}{
		{"last's node below", mkID(100, 3, 77), mkID(90, 5, 1), mkID(100, 5, 0), true},
		{"same node", mkID(100, 5, 77), mkID(90, 5, 1), mkID(100, 5, 78), true},
		{"same node, sequence wraps", mkID(100, 5, idMaxStep), mkID(90, 5, 0), mkID(101, 5, 0), true},
		{"last's node above", mkID(100, 9, 0), mkID(100, 5, 0), mkID(101, 5, 0), true},
		{"node 0 after the top node", mkID(100, idMaxNode, idMaxStep), mkID(1, 0, 0), mkID(101, 0, 0), true},
		{"last millisecond, room left", mkID(idMaxMilli, 3, 0), mkID(1, 5, 0), mkID(idMaxMilli, 5, 0), true},
		{"last millisecond, none left", mkID(idMaxMilli, 9, 0), mkID(1, 5, 0), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := raiseID(tt.last, tt.proposed)
			if got != tt.want || ok != tt.ok {
				t.Errorf("raiseID(%d, %d) = %d, %v; want %d, %v", tt.last, tt.proposed, got, ok, tt.want, tt.ok)
			}
			if bg, bok := raiseIDBrute(tt.last, tt.proposed); got != bg || ok != bok {
				t.Errorf("raiseID(%d, %d) = %d, %v; the first id counting up is %d, %v", tt.last, tt.proposed, got, ok, bg, bok)
			}
		})
	}
}

func FuzzRaiseID(f *testing.F) {
	f.Add(uint64(mkID(100, 3, 77)), uint64(mkID(90, 5, 1)))
	f.Add(uint64(mkID(100, 5, idMaxStep)), uint64(mkID(90, 5, 0)))
	f.Add(uint64(mkID(100, 9, 0)), uint64(mkID(100, 5, 0)))
	f.Add(uint64(mkID(idMaxMilli, 9, 0)), uint64(mkID(1, 5, 0)))
	f.Fuzz(func(t *testing.T, last, proposed uint64) {
		last &= 1<<63 - 1 // ids are positive int64s
		proposed &= 1<<63 - 1
		got, ok := raiseID(pubsub.ID(last), pubsub.ID(proposed))
		want, wok := raiseIDBrute(pubsub.ID(last), pubsub.ID(proposed))
		if got != want || ok != wok {
			t.Fatalf("raiseID(%d, %d) = %d, %v; the first id counting up is %d, %v", last, proposed, got, ok, want, wok)
		}
	})
}

// TestIDsUniqueAcrossTopics runs two hubs on one Redis with different node
// ids, the first one's clock a second ahead, publishing in turn to two
// topics of one room; then the second hub's clock catches up. When the
// topic's last id is above a hub's proposal, the id the hub gets back must
// still be its own (its node id), so that neither hub ever makes an id the
// other already gave a message of another topic, and the hub's own later
// ids stay above it. Ids increase per topic and none repeats in the room.
func TestIDsUniqueAcrossTopics(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := uniquePrefix()
	t0 := time.Now()
	clocks := []*fakeclock.Clock{fakeclock.New(t0.Add(time.Second)), fakeclock.New(t0)}
	nodes := []int{5, 9}
	conns := make([]pubsub.Conn, 2)
	for i := range conns {
		h, _ := newNode(t, srv, nodeOpts{prefix: prefix, hub: memory.Options{Clock: clocks[i]},
			broker: BrokerOptions{NodeID: nodes[i]}})
		conns[i] = connect(t, h, "lobby", "pub")
	}

	seen := map[pubsub.ID]string{}
	last := map[string]pubsub.ID{}
	publish := func(step, hub int, topic string) {
		m := rawPublish(t, conns[hub], topic, "m")
		if m.ID == 0 {
			t.FailNow() // rawPublish said why
		}
		if int(m.ID.Node()) != nodes[hub] {
			t.Errorf("step %d: hub %d (node %d) published %s with id %d of node %d", step, hub, nodes[hub], topic, m.ID, m.ID.Node())
		}
		if prev, ok := seen[m.ID]; ok {
			t.Errorf("step %d: hub %d published %s with id %d, already the id of a message of %s", step, hub, topic, m.ID, prev)
		}
		seen[m.ID] = topic
		if m.ID <= last[topic] {
			t.Errorf("step %d: hub %d published %s with id %d, not above the topic's last %d", step, hub, topic, m.ID, last[topic])
		}
		last[topic] = m.ID
	}
	step := 0
	for round := range 2 {
		for range 4 {
			for _, topic := range []string{"a", "b"} {
				for hub := range 2 {
					publish(step, hub, topic)
					step++
				}
			}
		}
		if round == 0 {
			clocks[1].Advance(time.Second) // the second hub catches up
		}
	}
}

// A publish whose proposals other publishes of the topic keep overtaking
// gives up after maxPublishAttempts with a retriable RATE_LIMIT_EXCEEDED
// and stores nothing; one whose key a retry confirmed in the meantime (on
// another node) gets that message: deduplication comes first on every
// attempt.
func TestPublishProposeAgain(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := openOn(t, srv, Options{}), openOn(t, srv, Options{})
	sa, sb := a.Store(StoreOptions{DedupWindow: time.Minute}), b.Store(StoreOptions{DedupWindow: time.Minute})
	ms := uint64(t0.UnixMilli() - snowflake.Epoch)

	t.Run("overtaken every time", func(t *testing.T) {
		other := mkID(ms+1000, 5, 0)
		publish(t, sb, "room", msg("busy", other, "first"), "")
		calls := 0
		p := Publication{Room: "room", Message: msg("busy", mkID(ms, 9, 0), "late"), Origin: "node9/1",
			Propose: func(last pubsub.ID) pubsub.ID {
				calls++
				other++ // another node confirms one more before this one tries again
				publish(t, sb, "room", msg("busy", other, "other"), "")
				return last + 1
			}}
		_, _, err := sa.Publish(ctxT(t), p)
		var perr *pubsub.Error
		if !errors.As(err, &perr) || perr.Code != pubsub.CodeRateLimitExceeded || !perr.Retriable() {
			t.Fatalf("Publish overtaken %d times = %v, want a retriable RATE_LIMIT_EXCEEDED", calls, err)
		}
		if calls != maxPublishAttempts {
			t.Errorf("Propose was called %d times, want %d", calls, maxPublishAttempts)
		}
		page, err := sa.Query(ctxT(t), "room", history.Query{Topic: "busy", Limit: 50})
		if err != nil {
			t.Fatalf("Query = %v", err)
		}
		for _, m := range page.Messages {
			if string(m.Payload) == `{"text":"late"}` {
				t.Errorf("history holds %d, the publish that failed", m.ID)
			}
		}
	})

	t.Run("retried elsewhere meanwhile", func(t *testing.T) {
		publish(t, sb, "room", msg("keyed", mkID(ms+1000, 5, 0), "first"), "")
		var retried pubsub.Message
		p := Publication{Room: "room", Message: msg("keyed", mkID(ms, 9, 0), "mine"), Key: "k1", Origin: "node9/1",
			Propose: func(last pubsub.ID) pubsub.ID {
				// The same publish, retried on another node, is confirmed first.
				retried, _ = publish(t, sb, "room", msg("keyed", mkID(ms+2000, 5, 0), "mine"), "k1")
				return mkID(ms+1000, 9, 0)
			}}
		got, dup, err := sa.Publish(ctxT(t), p)
		if err != nil || !dup || got.ID != retried.ID {
			t.Fatalf("Publish = id %d, dup %t, %v; want the retry's message %d, dup true", got.ID, dup, err, retried.ID)
		}
	})
}
