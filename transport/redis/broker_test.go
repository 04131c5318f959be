package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/redis/redistest"
	"github.com/plazahq/plaza/transport/transporttest"
)

// uniquePrefix returns a key prefix no other test on the server uses.
func uniquePrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

// nodeOpts configure the hubs newNodes starts.
type nodeOpts struct {
	hub    memory.Options
	broker BrokerOptions
	prefix string // empty: a fresh one
}

// newNodes starts n hubs, each with a Client and a Broker of its own on
// srv under one prefix, all closed when the test ends.
func newNodes(tb testing.TB, srv *redistest.Server, n int, o nodeOpts) []*memory.Hub {
	tb.Helper()
	if o.prefix == "" {
		o.prefix = uniquePrefix()
	}
	hubs := make([]*memory.Hub, n)
	for i := range hubs {
		hubs[i], _ = newNode(tb, srv, o)
	}
	return hubs
}

// newNode starts one hub with a Broker on srv, both closed when the test
// ends (the hub first).
func newNode(tb testing.TB, srv *redistest.Server, o nodeOpts) (*memory.Hub, *Broker) {
	tb.Helper()
	c := openOn(tb, srv, Options{Prefix: o.prefix, Clock: o.hub.Clock})
	bo := o.broker
	bo.Client = c
	if bo.NodeID == 0 {
		bo.NodeID = -1
	}
	if bo.Store.Retention.Clock == nil {
		bo.Store.Retention.Clock = o.hub.Clock
	}
	b, err := NewBroker(ctxT(tb), bo)
	if err != nil {
		tb.Fatalf("NewBroker() = %v", err)
	}
	ho := o.hub
	ho.Broker = b
	h, err := memory.New(ho)
	if err != nil {
		b.Close()
		tb.Fatalf("memory.New() = %v", err)
	}
	tb.Cleanup(func() {
		if err := h.Close(); err != nil {
			tb.Errorf("Hub.Close() = %v", err)
		}
		if err := b.Close(); err != nil {
			tb.Errorf("Broker.Close() = %v", err)
		}
	})
	return h, b
}

// spread is a Transport whose Connects go to its hubs in turn.
type spread struct {
	hubs []*memory.Hub
	next atomic.Uint64
	// mu keeps Connects out while disconnect goes through the hubs: it
	// drops the connections live when it was called, and a Room that
	// reconnects meanwhile to a hub not yet told must not lose its new
	// connection as well.
	mu sync.RWMutex
}

func (s *spread) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h := s.hubs[(s.next.Add(1)-1)%uint64(len(s.hubs))]
	return h.Connect(ctx, req)
}

func (s *spread) disconnect(room, clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.hubs {
		h.Disconnect(room, clientID)
	}
}

func (s *spread) delivered(ctx context.Context, room, topic string, id pubsub.ID) error {
	for _, h := range s.hubs {
		if err := h.WaitDelivered(ctx, room, topic, id); err != nil {
			return err
		}
	}
	return nil
}

func harness(srv *redistest.Server, n int) transporttest.NewHarness {
	return func(t *testing.T, cfg transporttest.Config) transporttest.Harness {
		hubs := newNodes(t, srv, n, nodeOpts{hub: memory.Options{
			Clock:        cfg.Clock,
			PublishRate:  cfg.PublishRate,
			PublishBurst: cfg.PublishBurst,
			Authorize:    cfg.Authorize,
			QueueBytes:   cfg.QueueBytes,
		}})
		s := &spread{hubs: hubs}
		return transporttest.Harness{Transport: s, Disconnect: s.disconnect, Delivered: s.delivered, PerTopicIDs: n > 1}
	}
}

// TestTransportOneNode runs the conformance suite on one hub whose Broker
// is Redis.
func TestTransportOneNode(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	transporttest.Run(t, harness(srv, 1))
}

// TestTransportThreeNodes runs the conformance suite on three hubs on one
// Redis, each Connect going to the next hub: the suite's Rooms are spread
// over the nodes and must not tell.
func TestTransportThreeNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	transporttest.Run(t, harness(srv, 3))
}

// TestBrokerErrors: a hub node id another hub holds, and a Broker with no
// Client, fail NewBroker with errors that say so; a hub refuses a Store or
// NodeID beside its Broker.
func TestBrokerErrors(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	prefix := uniquePrefix()
	_, b := newNode(t, srv, nodeOpts{prefix: prefix, broker: BrokerOptions{NodeID: 9}})
	if b.NodeID() != 9 {
		t.Fatalf("NodeID() = %d, want 9", b.NodeID())
	}
	c := openOn(t, srv, Options{Prefix: prefix})
	_, err := NewBroker(ctxT(t), BrokerOptions{Client: c, NodeID: 9})
	wantCode(t, "NewBroker(node 9) beside a hub holding it", err, pubsub.CodeInternal, "node id 9", "taken by another hub")
	if !errors.Is(err, ErrNodeIDTaken) {
		t.Errorf("NewBroker(node 9) = %v, want errors.Is ErrNodeIDTaken", err)
	}
	_, err = NewBroker(ctxT(t), BrokerOptions{})
	wantCode(t, "NewBroker without a Client", err, pubsub.CodeInvalidRequest, "Client")

	b2, err := NewBroker(ctxT(t), BrokerOptions{Client: c, NodeID: -1})
	if err != nil {
		t.Fatalf("NewBroker(-1) = %v", err)
	}
	defer b2.Close()
	for _, o := range []memory.Options{
		{Broker: b2, Store: b2.Store()},
		{Broker: b2, NodeID: 3},
	} {
		if h, err := memory.New(o); err == nil {
			h.Close()
			t.Errorf("memory.New(%+v) = nil error, want one", o)
		}
	}
}
