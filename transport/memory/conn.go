package memory

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/internal/ratecap"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/topic"
)

// conn is a connection to a Hub: a pubsub.Conn.
//
// Lock order: subMu, then a topic's mu or room.patMu, then the mu of a
// pattern subscription, then endMu or qmu. Hub.mu is never held with
// another lock.
type conn struct {
	h  *Hub
	r  *room
	id string
	// idHash is the hash of id for idempotency keys.
	idHash uint64
	done   chan struct{}

	qmu   sync.Mutex
	q     queue // the delivery queue; see queue.go
	bound int   // the queue's bound in bytes

	state atomic.Int32 // stateLive, stateLost or stateClosed
	endMu sync.Mutex
	err   error // why the conn ended; guarded by endMu

	// origin names c for the Broker; empty without one.
	origin string

	// lastTopic is the topic c last published to, to skip the room's
	// lookup when it publishes there again.
	lastTopic atomic.Pointer[topicState]

	subMu sync.Mutex
	subs  map[string]*sub // by topic or pattern; nil after teardown
}

const (
	stateLive int32 = iota
	stateLost
	stateClosed
)

var _ pubsub.Conn = (*conn)(nil)

func (c *conn) ClientID() string                 { return c.id }
func (c *conn) Messages() <-chan *pubsub.Message { return c.q.ch }
func (c *conn) Done() <-chan struct{}            { return c.done }

func (c *conn) Err() error {
	if c.state.Load() == stateLive {
		return nil
	}
	c.endMu.Lock()
	defer c.endMu.Unlock()
	return c.err
}

// Close ends the connection and its subscriptions. Err then reports
// NOT_CONNECTED, as do later calls.
func (c *conn) Close() error {
	if c.end(&pubsub.Error{Code: pubsub.CodeNotConnected, Message: "connection closed"}, true) {
		c.teardown()
	}
	return nil
}

// end marks c ended with err and closes Done. It reports whether it did so:
// only the first call does, and its caller must then call teardown once it
// holds no topic or subscription lock.
func (c *conn) end(err error, closed bool) bool {
	c.endMu.Lock()
	defer c.endMu.Unlock()
	if c.err != nil {
		return false
	}
	c.err = err
	if closed {
		c.state.Store(stateClosed)
	} else {
		c.state.Store(stateLost)
	}
	close(c.done)
	return true
}

// teardown removes the subscriptions of c, which has ended, and forgets it.
func (c *conn) teardown() {
	c.subMu.Lock()
	subs := c.subs
	c.subs = nil
	for _, s := range subs {
		c.drop(s)
	}
	c.subMu.Unlock()
	c.h.leave(c)
}

// slow drops c because its queue is full: it holds nearly c.bound bytes. It reports whether the caller must
// call teardown.
func (c *conn) slow() bool {
	if !c.end(pubsub.Errorf(pubsub.CodeSlowConsumer, "delivery queue full: more than %d bytes of messages waiting", c.bound), false) {
		return false
	}
	c.h.stats.slowConsumers.Add(1)
	return true
}

// check returns nil while c is live, and otherwise the error its methods
// return.
func (c *conn) check() error {
	switch c.state.Load() {
	case stateLive:
		return nil
	case stateClosed:
		return &pubsub.Error{Code: pubsub.CodeNotConnected, Message: "connection closed"}
	}
	return &pubsub.Error{Code: pubsub.CodeNetworkError, Message: "connection lost", Err: c.Err()}
}

// Subscribe subscribes c to a topic or pattern, or changes the rate of an
// existing subscription.
func (c *conn) Subscribe(ctx context.Context, req pubsub.SubscribeRequest) error {
	if err := ctx.Err(); err != nil {
		return ctxErr("subscribe", err)
	}
	if err := c.check(); err != nil {
		return err
	}
	if err := pubsub.CheckSubscribeTopic(req.Topic); err != nil {
		return err
	}
	if !(req.Rate >= 0) || math.IsInf(req.Rate, 0) {
		return pubsub.Errorf(pubsub.CodeInvalidRequest, "subscription rate %v is not a finite number ≥ 0", req.Rate)
	}
	a := pubsub.Access{Action: pubsub.ActionSubscribe, Room: c.r.name, Topic: req.Topic, ClientID: c.id}
	if err := c.h.allow(ctx, a); err != nil {
		return err
	}
	// With a Broker, every local subscription holds a reference to the
	// Broker's subscription, taken before it exists: messages confirmed
	// once Subscribe returns are delivered.
	ref := false
	if c.h.broker != nil {
		c.subMu.Lock()
		ref = c.subs != nil && c.subs[req.Topic] == nil
		c.subMu.Unlock()
		if ref {
			if err := c.h.brokerSubscribe(ctx, c.r.name, req.Topic); err != nil {
				return err
			}
		}
	}
	c.subMu.Lock()
	if err := c.check(); err != nil {
		c.subMu.Unlock()
		if ref {
			c.h.brokerUnsubscribe(c.r.name, req.Topic)
		}
		return err
	}
	now := c.h.clock.Now()
	if s := c.subs[req.Topic]; s != nil {
		slow := s.setRate(req.Rate, now)
		c.subMu.Unlock()
		if ref { // a concurrent Subscribe made it
			c.h.brokerUnsubscribe(c.r.name, req.Topic)
		}
		if slow {
			c.teardown()
			return c.check()
		}
		return nil
	}
	if c.h.maxSubs > 0 && len(c.subs) >= c.h.maxSubs {
		c.subMu.Unlock()
		if ref {
			c.h.brokerUnsubscribe(c.r.name, req.Topic)
		}
		return pubsub.Errorf(pubsub.CodeTooManySubscriptions, "connection already has %d subscriptions", len(c.subs))
	}
	var slow bool
	s := &sub{c: c, key: req.Topic, ref: ref}
	if req.Rate > 0 {
		s.cap = ratecap.New[*pubsub.Message](req.Rate, now)
	}
	if topic.IsPattern(req.Topic) {
		s.pat, _ = topic.ParsePattern(req.Topic) // checked above
		s.wild = true
		c.r.addPattern(s)
	} else {
		t := c.r.lockTopic(req.Topic)
		// From now on the topic's messages take the exact subscription; any
		// a capped pattern of c still holds are older, so they go first.
		slow = c.flushPatterns(req.Topic)
		if t.subs == nil {
			t.subs = make(map[*conn]*sub)
		}
		s.t, s.idx = t, len(t.list)
		t.subs[c] = s
		t.list = append(t.list, s)
		t.mu.Unlock()
	}
	c.subs[req.Topic] = s
	c.subMu.Unlock()
	if slow {
		c.teardown()
		return c.check()
	}
	return nil
}

// flushPatterns moves into the queue every message that c's rate-capped
// pattern subscriptions matching name hold, whatever their caps allow, so
// that an exact subscription to name cannot overtake them. Call it with
// c.subMu and name's topic lock held. It reports whether c must be torn
// down for a full queue.
func (c *conn) flushPatterns(name string) (slow bool) {
	for _, ps := range c.subs {
		if !ps.wild || ps.cap == nil || !ps.pat.Match(name) {
			continue
		}
		ps.lock()
		if ps.cap.Held() > 0 && !ps.dead {
			held := ps.cap.Drain(nil)
			n, s := ps.pushAll(held)
			c.h.stats.delivered.Add(uint64(n))
			slow = slow || s
		}
		ps.unlock()
	}
	return slow
}

// Unsubscribe ends c's subscription to a topic or pattern, if it has one.
func (c *conn) Unsubscribe(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return ctxErr("unsubscribe", err)
	}
	if err := c.check(); err != nil {
		return err
	}
	if err := pubsub.CheckSubscribeTopic(name); err != nil {
		return err
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if s := c.subs[name]; s != nil {
		delete(c.subs, name)
		c.drop(s)
	}
	return nil
}

// drop ends s and removes it from its topic or room. Call it with c.subMu
// held.
func (c *conn) drop(s *sub) {
	if s.ref {
		defer c.h.brokerUnsubscribe(c.r.name, s.key)
	}
	s.lock()
	s.kill()
	if s.wild {
		s.unlock()
		c.r.removePattern(s)
		return
	}
	t := s.t // never forgotten while s is in it
	delete(t.subs, c)
	last := t.list[len(t.list)-1]
	t.list[s.idx], last.idx = last, s.idx
	t.list[len(t.list)-1] = nil
	t.list = t.list[:len(t.list)-1]
	c.h.maybeForget(c.r, t, c.h.clock.Now())
	t.mu.Unlock()
}

// History returns a page of a topic's history as c's client may see it.
func (c *conn) History(ctx context.Context, req pubsub.HistoryRequest) (pubsub.HistoryPage, error) {
	if err := ctx.Err(); err != nil {
		return pubsub.HistoryPage{}, ctxErr("history", ctx.Err())
	}
	if err := c.check(); err != nil {
		return pubsub.HistoryPage{}, err
	}
	if err := pubsub.CheckHistory(&req); err != nil {
		return pubsub.HistoryPage{}, err
	}
	a := pubsub.Access{Action: pubsub.ActionHistory, Room: c.r.name, Topic: req.Topic, ClientID: c.id}
	if err := c.h.allow(ctx, a); err != nil {
		return pubsub.HistoryPage{}, err
	}
	q := history.Query{
		Topic:  req.Topic,
		Before: req.Before,
		After:  req.After,
		Limit:  req.Limit,
		From:   req.From,
		Viewer: c.id,
	}
	if q.Limit == 0 {
		q.Limit = pubsub.DefaultHistoryLimit
	}
	page, err := c.h.store.Query(ctx, c.r.name, q)
	if err != nil {
		var perr *pubsub.Error
		switch {
		case ctx.Err() != nil:
			return pubsub.HistoryPage{}, ctxErr("history", ctx.Err())
		case c.h.closed.Load():
			return pubsub.HistoryPage{}, errHubClosed()
		case errors.As(err, &perr):
			return pubsub.HistoryPage{}, err
		}
		return pubsub.HistoryPage{}, &pubsub.Error{Code: pubsub.CodeInternal, Message: "reading history", Err: err}
	}
	if page.Messages == nil {
		page.Messages = []pubsub.Message{}
	}
	return page, nil
}
