package redis

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/topic"
	"github.com/plazahq/plaza/transport/memory"
)

var _ memory.Broker = (*Broker)(nil)

// BrokerOptions configure [NewBroker]. Client is required; the zero value
// of the other fields leases node id 0, keeps history with package
// history's default retention, deduplicates for 2 minutes and serves
// pattern subscriptions.
type BrokerOptions struct {
	// Client is the Redis the hubs share. Required; the Broker does not
	// close it.
	Client *Client
	// NodeID is the snowflake node id to lease, 0 to MaxNodeID; -1 takes
	// the lowest free one. A node id another hub holds fails NewBroker
	// with an error caused by ErrNodeIDTaken.
	NodeID int
	// Lease configures the node id lease. Its OnLost, if set, is called
	// besides the hub's refusing to publish.
	Lease LeaseOptions
	// Store configures history and deduplication; Store.Patterns is
	// ignored (see NoPatterns).
	Store StoreOptions
	// NoPatterns saves every publish its PUBLISH on the room's pattern
	// channel, at the price of pattern subscriptions: they fail with
	// INVALID_REQUEST. Every hub on one Redis must agree on it. False
	// means pattern subscriptions work.
	NoPatterns bool
	// MaxBackoff caps the wait between attempts to subscribe again after
	// a loss. Zero means 2 seconds.
	MaxBackoff time.Duration
}

// Broker is the Redis implementation of [memory.Broker]: set it in
// memory.Options.Broker, and every hub on the same Redis (and Prefix)
// behaves, for its clients, as one hub. It confirms publishes with
// [Store.Publish] (deduplication, ids strictly increasing per topic across
// hubs, history), receives every hub's messages through a [Subscriber],
// keeps the node id leased ([Client.AcquireNode]) and counts the hub's
// per-minute caps in a [RateWindow].
//
// While Redis cannot be reached, publishes fail with NETWORK_ERROR, which
// is retriable, and Ready reports the outage. Subscriptions come back by
// themselves; each one that does is reported to the hub
// (memory.Receiver.Missed), which drops the connections that hold it so
// that their Rooms reconnect and fill the gap from history. If the lease
// is lost (it lapsed while Redis was away and another hub took the node
// id), Lost closes and the hub refuses every publish: restart it.
//
// Create a Broker with [NewBroker]; the zero value is not usable. A Broker
// serves one hub (memory.New attaches it), and is safe for concurrent
// use. Close it after that hub.
type Broker struct {
	c     *Client
	store *Store
	sub   *Subscriber
	lease *Lease
	rate  *RateWindow

	noPatterns bool
	recv       atomic.Pointer[memory.Receiver]
	closeOnce  sync.Once
	closeErr   error
}

// NewBroker leases a node id on opts.Client and returns a Broker with it.
func NewBroker(ctx context.Context, opts BrokerOptions) (*Broker, error) {
	if opts.Client == nil {
		return nil, pubsub.Errorf(pubsub.CodeInvalidRequest, "redis: BrokerOptions.Client is nil")
	}
	if opts.NodeID < -1 {
		return nil, pubsub.Errorf(pubsub.CodeInvalidRequest, "redis: node id %d is below -1", opts.NodeID)
	}
	lease, err := opts.Client.AcquireNode(ctx, opts.NodeID, opts.Lease)
	if err != nil {
		return nil, err
	}
	so := opts.Store
	so.Patterns = !opts.NoPatterns
	b := &Broker{c: opts.Client, store: opts.Client.Store(so), lease: lease, rate: opts.Client.RateWindow(), noPatterns: opts.NoPatterns}
	b.sub = opts.Client.Subscriber(SubscriberOptions{
		OnMessage: func(d Delivery) {
			if r := b.recv.Load(); r != nil {
				r.Deliver(memory.Delivery{Room: d.Room, Message: d.Message, Pattern: d.Pattern, Origin: d.Origin})
			}
		},
		OnResubscribe: func(room, name string) {
			if r := b.recv.Load(); r != nil {
				r.Missed(room, name)
			}
		},
		MaxBackoff: opts.MaxBackoff,
	})
	return b, nil
}

// Attach implements [memory.Broker]: deliveries go to r from now on.
func (b *Broker) Attach(r memory.Receiver) { b.recv.Store(&r) }

// Publish implements [memory.Broker] with [Store.Publish]; an id at or
// below the topic's last is proposed again by the hub's Receiver.Propose.
func (b *Broker) Publish(ctx context.Context, room string, m pubsub.Message, key, origin string) (pubsub.Message, bool, error) {
	pub := Publication{Room: room, Message: m, Key: key, Origin: origin}
	if r := b.recv.Load(); r != nil {
		pub.Propose = r.Propose
	}
	return b.store.Publish(ctx, pub)
}

// Subscribe implements [memory.Broker]: a topic is a sharded channel
// subscription, a pattern a pattern subscription on the room's pattern
// channels.
func (b *Broker) Subscribe(ctx context.Context, room, name string) error {
	if topic.IsPattern(name) {
		if b.noPatterns {
			return pubsub.Errorf(pubsub.CodeInvalidRequest, "redis: pattern subscriptions are turned off on this hub (BrokerOptions.NoPatterns)")
		}
		return b.sub.SubscribePattern(ctx, room, name)
	}
	return b.sub.Subscribe(ctx, room, name)
}

// Unsubscribe implements [memory.Broker].
func (b *Broker) Unsubscribe(room, name string) {
	if topic.IsPattern(name) {
		b.sub.UnsubscribePattern(room, name)
		return
	}
	b.sub.Unsubscribe(room, name)
}

// History implements [memory.Broker]: the Redis history every hub shares.
func (b *Broker) History() history.Store { return b.store }

// Store is the Broker's history and publish path.
func (b *Broker) Store() *Store { return b.store }

// Allow implements [memory.Broker] with [RateWindow.Allow].
func (b *Broker) Allow(ctx context.Context, key string, limit int, now time.Time) (bool, time.Duration, error) {
	return b.rate.Allow(ctx, key, limit, now)
}

// NodeID implements [memory.Broker]: the leased node id.
func (b *Broker) NodeID() int { return b.lease.Node() }

// Lost implements [memory.Broker]: closed when the lease is lost.
func (b *Broker) Lost() <-chan struct{} { return b.lease.Done() }

// Ready implements [memory.Broker]: nil while Redis answers and the lease
// is held; NETWORK_ERROR naming the address while Redis is unreachable.
func (b *Broker) Ready(ctx context.Context) error {
	if err := b.lease.Err(); err != nil {
		return err
	}
	return b.c.Ping(ctx)
}

// Close ends the Broker's subscriptions, releases its node id (as
// [Lease.Close] does: retried on connections a Redis restart broke; if
// Redis stays unreachable, the lease lapses after its TTL) and closes its
// store. It does not close the Client. It is idempotent.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.recv.Store(nil)
		err1 := b.sub.Close()
		err2 := b.lease.Close()
		err3 := b.store.Close()
		b.closeErr = errors.Join(err1, err2, err3)
	})
	return b.closeErr
}
