package memory

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
)

// topicState is the hub's state for one room and topic.
type topicState struct {
	name string

	// mu is held from a publish's id assignment through its history append
	// and fan-out, so subscribers see the topic's messages in id order.
	mu   sync.Mutex
	dead bool // forgotten by its room; look it up again

	subs map[*conn]*sub // exact subscriptions, at most one per conn
	list []*sub         // the same, for fan-out
	lim  *rate.Limiter  // Options.PublishRate; nil when there is none

	dedup      dedupSet // idempotency keys
	keysLoaded bool     // the keys an earlier hub stored are in dedup

	// With a history.Pipeliner store, a persisted publish waits for its
	// commit outside mu, and publishes then complete in id order through a
	// chain: each waits for the one before it (tail) to finish fan-out.
	inflight int                     // publishes in the chain
	tail     chan struct{}           // closed when the newest of them is done
	pending  map[pendingKey]struct{} // idempotency keys of keyed publishes in the chain

	// With a Broker: the highest id delivered through the topic's
	// subscription and through each pattern's, and a channel closed at
	// the next delivery while someone waits (Hub.WaitDelivered).
	delivered    pubsub.ID
	patDelivered map[string]pubsub.ID
	waitCh       chan struct{}
}

type pendingKey struct{ from, key string }

// Publish publishes a message from c. See the package documentation for the
// steps. The hub keeps req.Payload, req.To and req.Metadata in the message it
// delivers and returns, so the caller must not change them afterwards.
func (c *conn) Publish(ctx context.Context, req pubsub.PublishRequest) (pubsub.Message, error) {
	if err := ctx.Err(); err != nil {
		return pubsub.Message{}, ctxErr("publish", err)
	}
	if err := c.check(); err != nil {
		return pubsub.Message{}, err
	}
	if err := pubsub.CheckPublish(&req); err != nil {
		return pubsub.Message{}, err
	}
	if c.h.authorize != nil {
		a := pubsub.Access{Action: pubsub.ActionPublish, Room: c.r.name, Topic: req.Topic, ClientID: c.id}
		if err := c.h.allow(ctx, a); err != nil {
			return pubsub.Message{}, err
		}
	}
	if c.h.broker != nil {
		return c.h.publishBroker(ctx, c, &req)
	}
	return c.h.publish(ctx, c, &req)
}

func (h *Hub) publish(ctx context.Context, c *conn, req *pubsub.PublishRequest) (pubsub.Message, error) {
	t := c.lastTopic.Load()
	if t != nil && t.name == req.Topic {
		t.mu.Lock()
		if t.dead {
			t.mu.Unlock()
			t = nil
		}
	} else {
		t = nil
	}
	if t == nil {
		t = c.r.lockTopic(req.Topic)
		c.lastTopic.Store(t)
	}
	if h.closed.Load() {
		t.mu.Unlock()
		return pubsub.Message{}, errHubClosed()
	}
	if err := c.check(); err != nil {
		t.mu.Unlock()
		return pubsub.Message{}, err
	}
	now := h.clock.Now()
	nowNs, window := now.UnixNano(), int64(h.dedup)
	t.dedup.expire(nowNs, window)
	key := req.IdempotencyKey
	var kh uint64
	var exists bool
	if key != "" {
		if !t.keysLoaded && h.keys != nil {
			if err := h.loadKeys(ctx, c.r.name, t, now); err != nil {
				t.mu.Unlock()
				return pubsub.Message{}, err
			}
		}
		kh = dedupHash(h.seed, c.idHash, key)
		var m *pubsub.Message
		if m, exists = t.dedup.lookup(kh, c.id, key, nowNs, window); m != nil {
			t.mu.Unlock()
			h.stats.deduplicated.Add(1)
			return *m, nil
		}
		if _, ok := t.pending[pendingKey{c.id, key}]; ok {
			// The first attempt is still waiting for its commit: wait for
			// the chain to pass it, then look again.
			tail := t.tail
			t.mu.Unlock()
			select {
			case <-tail:
			case <-ctx.Done():
				return pubsub.Message{}, ctxErr("publish", ctx.Err())
			}
			return h.publish(ctx, c, req)
		}
	}
	// The rate cap applies to new publishes only: a retry of a confirmed
	// one was answered above and costs no token.
	if h.pubRate > 0 {
		if t.lim == nil {
			t.lim = rate.NewLimiter(h.pubRate, h.pubBurst)
		}
		if !t.lim.AllowN(now, 1) {
			wait := h.retryAfter(t.lim, now)
			t.mu.Unlock()
			return pubsub.Message{}, h.rateLimited(req.Topic, wait)
		}
	}
	if h.perMinute > 0 {
		if ok, wait := h.minute.Allow(c.r.name+"\x00"+req.Topic, h.perMinute, now); !ok {
			t.mu.Unlock()
			return pubsub.Message{}, h.rateLimited(req.Topic, wait)
		}
	}
	msg := h.newMessage(c, req, now)
	m := &msg
	if h.pipe != nil && (m.Persisted || t.inflight > 0) {
		return h.publishChained(ctx, c, t, m, key, now)
	}
	if m.Persisted {
		var err error
		if h.keys != nil && key != "" {
			err = h.keys.AppendKey(ctx, c.r.name, *m, key)
		} else {
			err = h.store.Append(ctx, c.r.name, *m)
		}
		if err != nil {
			t.mu.Unlock()
			if ctx.Err() != nil {
				return pubsub.Message{}, ctxErr("publish", ctx.Err())
			}
			return pubsub.Message{}, &pubsub.Error{Code: pubsub.CodeInternal, Message: "appending to history", Err: err}
		}
		if h.afterCommit != nil {
			h.afterCommit(m)
		}
	}
	var f fanout
	f.run(c.r, c, t, m, now)
	if key != "" {
		t.dedup.add(kh, exists, key, m, nowNs, h.dedupKeys)
	}
	t.mu.Unlock()
	h.finish(c, &f, now)
	return *m, nil
}

// finish does what a publish does after its fan-out, without locks.
func (h *Hub) finish(c *conn, f *fanout, now time.Time) {
	h.stats.published.Add(1)
	if f.delivered > 0 {
		h.stats.delivered.Add(f.delivered)
	}
	if f.dropped > 0 {
		h.stats.capDropped.Add(f.dropped)
	}
	for _, s := range f.slow {
		s.teardown()
	}
	h.maybeSweep(c.r, now)
}

// publishChained finishes a publish whose commit must not hold t.mu: a
// persisted message on a pipelined store, or any message behind one. It is
// called with t.mu held and m numbered, and releases t.mu.
func (h *Hub) publishChained(ctx context.Context, c *conn, t *topicState, m *pubsub.Message, key string, now time.Time) (pubsub.Message, error) {
	wait := func(context.Context) error { return nil }
	if m.Persisted {
		wait = h.pipe.Enqueue(c.r.name, *m, key) // in id order, under t.mu
	}
	prev, done := t.tail, make(chan struct{})
	t.tail = done
	t.inflight++
	pk := pendingKey{c.id, key}
	if key != "" {
		if t.pending == nil {
			t.pending = make(map[pendingKey]struct{})
		}
		t.pending[pk] = struct{}{}
	}
	t.mu.Unlock()

	// The commit is bounded by the disk, and the message may be stored
	// whatever ctx does, so wait for it regardless and report the truth.
	err := wait(context.Background())
	if err == nil && m.Persisted && h.afterCommit != nil {
		h.afterCommit(m)
	}
	if prev != nil {
		<-prev
	}

	t.mu.Lock()
	var f fanout
	if err == nil {
		f.run(c.r, c, t, m, now)
		if key != "" {
			nowNs := now.UnixNano()
			kh := dedupHash(h.seed, c.idHash, key)
			_, exists := t.dedup.lookup(kh, c.id, key, nowNs, int64(h.dedup))
			t.dedup.add(kh, exists, key, m, nowNs, h.dedupKeys)
		}
	}
	delete(t.pending, pk)
	t.inflight--
	if t.inflight == 0 {
		t.tail = nil
	}
	t.mu.Unlock()
	close(done)

	if err != nil {
		return pubsub.Message{}, &pubsub.Error{Code: pubsub.CodeInternal, Message: "appending to history", Err: err}
	}
	h.finish(c, &f, now)
	return *m, nil
}

// loadKeys puts into t.dedup the idempotency keys that earlier hubs stored
// with their messages in t's topic, within the window at now, and marks t
// loaded. Once the hub has run for a window there is nothing left to load.
// Call it with t.mu held, before the topic's first keyed publish.
func (h *Hub) loadKeys(ctx context.Context, room string, t *topicState, now time.Time) error {
	window := int64(h.dedup)
	if now.UnixNano() < h.keysUntil {
		keyed, err := h.keys.Keys(ctx, room, history.KeyQuery{Topic: t.name, Since: now.Add(-h.dedup), Limit: h.dedupKeys})
		if err != nil {
			if ctx.Err() != nil {
				return ctxErr("publish", ctx.Err())
			}
			return &pubsub.Error{Code: pubsub.CodeInternal, Message: "reading idempotency keys from history", Err: err}
		}
		t.dedup.reserve(len(keyed))
		for i := len(keyed) - 1; i >= 0; i-- { // oldest first, as publishes add them
			k := &keyed[i]
			m := &k.Message                 // the entries share keyed's array
			m.Timestamp = m.Timestamp.UTC() // as the hub confirmed it
			at := m.Timestamp.UnixNano()
			kh := dedupHash(h.seed, maphash.String(h.seed, m.From), k.Key)
			_, exists := t.dedup.lookup(kh, m.From, k.Key, at, window)
			t.dedup.add(kh, exists, k.Key, m, at, h.dedupKeys)
		}
		t.dedup.expire(now.UnixNano(), window)
	}
	t.keysLoaded = true
	return nil
}

// rateLimited counts a publish refused by a rate cap and returns its error.
func (h *Hub) rateLimited(topic string, wait time.Duration) error {
	h.stats.rateLimited.Add(1)
	return &pubsub.Error{
		Code:       pubsub.CodeRateLimitExceeded,
		Message:    "topic " + topic + " is over its publish rate",
		RetryAfter: max(wait, time.Millisecond),
	}
}

// retryAfter says how long until lim has a token at now.
func (h *Hub) retryAfter(lim *rate.Limiter, now time.Time) time.Duration {
	need := 1 - lim.TokensAt(now)
	d := time.Duration(math.Ceil(need / float64(h.pubRate) * float64(time.Second)))
	return max(d, time.Millisecond)
}

// maybeForget removes t from r when nothing in it needs to be kept: no
// subscriptions, no live idempotency keys and a full publish rate bucket.
// Call it with t.mu held.
func (h *Hub) maybeForget(r *room, t *topicState, now time.Time) {
	t.dedup.expire(now.UnixNano(), int64(h.dedup))
	if len(t.subs) > 0 || t.dedup.len() > 0 || t.inflight > 0 || t.waitCh != nil {
		return
	}
	if t.lim != nil && t.lim.TokensAt(now) < float64(h.pubBurst) {
		return
	}
	t.dead = true
	r.topics.CompareAndDelete(t.name, t)
}

// maybeSweep, at most once per half window in each room, expires the
// idempotency keys of every topic and forgets the topics that
// maybeForget would, so that topics nobody publishes to any more release
// their memory while the room lives on.
func (h *Hub) maybeSweep(r *room, now time.Time) {
	ns := now.UnixNano()
	if ns < r.nextSweep.Load() || !r.sweepMu.TryLock() {
		return
	}
	defer r.sweepMu.Unlock()
	if ns < r.nextSweep.Load() {
		return
	}
	r.nextSweep.Store(ns + int64(h.dedup/2))
	r.topics.Range(func(_, v any) bool {
		t := v.(*topicState)
		if t.mu.TryLock() {
			if !t.dead {
				h.maybeForget(r, t, now)
			}
			t.mu.Unlock()
		}
		return true
	})
}

// newMessage builds the message c publishes with req at now, under the
// next id; publish and publishBroker both send what it returns.
func (h *Hub) newMessage(c *conn, req *pubsub.PublishRequest, now time.Time) pubsub.Message {
	return pubsub.Message{
		ID:        h.ids.Next(now),
		Topic:     req.Topic,
		From:      c.id,
		To:        req.To,
		Payload:   req.Payload,
		Metadata:  req.Metadata,
		Timestamp: now.UTC(),
		Persisted: !req.NoPersist,
	}
}
