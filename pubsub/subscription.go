package pubsub

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/plazahq/plaza/internal/ratecap"
	"github.com/plazahq/plaza/topic"
)

// Subscription is one registration of a handler on a topic, returned by
// Room.Subscribe. Its methods are safe for concurrent use.
type Subscription struct {
	r       *Room
	topic   string
	handler func(Message)
	rate    float64
	gone    atomic.Bool

	capr *ratecap.Cap[*Message] // owned by the Room's goroutine
}

// Topic returns the topic (or pattern) the subscription listens to.
func (s *Subscription) Topic() string { return s.topic }

// Unsubscribe stops the handler. When it was the last subscription of its
// topic in the Room, the Room's wire subscription ends too. Unsubscribe is
// idempotent: later calls return nil at once.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	if s.gone.Swap(true) {
		return nil
	}
	return s.r.unsubscribe(ctx, s)
}

// Subscribe registers handler for live messages on topicName, or on every
// topic a pattern such as "user:*" matches (see package topic). Handlers do
// not fire for the Room's own publishes, and never replay history.
//
// Every call is a registration of its own: subscribing one handler twice makes
// it fire twice per message. However many registrations a topic has, the Room
// holds one wire subscription for it, carrying the highest rate cap of its
// registrations (none if any has none); each registration's own cap is applied
// locally.
//
// Subscribing to a topic nobody has used yet is fine: the handler waits until
// something is published.
//
// Subscribe returns once the hub has confirmed the wire subscription (or the
// Room already held one with that rate cap): every message the hub confirms
// after that reaches the handler. So may a message the hub delivered as soon
// as it had subscribed, before Subscribe returned: the handler can run
// before the call returns. If the Room's connection is lost before or
// during the call, Subscribe still succeeds without that confirmation: the
// registration is kept, and the Room subscribes again as soon as it has
// reconnected (JoinOptions.OnState reports both). Messages published in
// between reach the handler only with GapFill, from history, which starts
// for a new topic at the moment of the call; StateChange.Recovered says
// whether that covered everything. Subscribe fails only for a refusal of the
// hub (PERMISSION_DENIED, TOO_MANY_SUBSCRIPTIONS, …), an invalid topic, a
// Room that has stopped (NOT_CONNECTED), or ctx ending first.
func (r *Room) Subscribe(ctx context.Context, topicName string, handler func(Message), opts ...SubscribeOption) (*Subscription, error) {
	if err := CheckSubscribeTopic(topicName); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, Errorf(CodeInvalidRequest, "nil handler")
	}
	var c subscribeConfig
	for _, o := range opts {
		o(&c)
	}
	s := &Subscription{r: r, topic: topicName, handler: handler, rate: c.rate}
	if c.rate > 0 {
		s.capr = ratecap.New[*Message](c.rate, r.opts.Clock.Now())
	}

	r.wireMu.Lock()
	defer r.wireMu.Unlock()
	// The registration is in the index before the hub is asked, so that a
	// message the hub delivers as soon as it has subscribed reaches the
	// handler, however soon it arrives; a refusal takes it out again.
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, r.notConnected(r.err)
	}
	wt := r.topics[topicName]
	created := wt == nil
	if created {
		wt = &wireTopic{name: topicName}
		if topic.IsPattern(topicName) {
			wt.pattern = topic.MustParsePattern(topicName)
		}
		if r.opts.GapFill {
			// Gap fill for a topic that has not delivered anything yet starts
			// from the moment it was subscribed.
			wt.lastSeen = idAt(r.opts.Clock.Now())
		}
		r.topics[topicName] = wt
	}
	prevRate := wt.wireRate
	wt.subs = append(wt.subs[:len(wt.subs):len(wt.subs)], s)
	rate := wireRate(wt.subs)
	needWire := created || rate != prevRate
	wt.wireRate = rate
	r.reindex()
	conn := r.conn
	r.mu.Unlock()

	if needWire && conn != nil {
		err := conn.Subscribe(ctx, SubscribeRequest{Topic: topicName, Rate: rate})
		if err = asNetwork(err); err != nil && !errors.Is(err, ErrNetwork) {
			r.mu.Lock()
			subs := without(wt.subs, s)
			wt.subs = subs
			if len(subs) == 0 && created {
				delete(r.topics, topicName)
			} else {
				wt.wireRate = prevRate
			}
			r.reindex()
			r.mu.Unlock()
			return nil, err
		}
		// A lost connection is fine: the reconnect subscribes again.
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, r.notConnected(r.err)
	}
	return s, nil
}

func (r *Room) unsubscribe(ctx context.Context, s *Subscription) error {
	r.wireMu.Lock()
	defer r.wireMu.Unlock()
	r.mu.Lock()
	wt := r.topics[s.topic]
	if r.closed || wt == nil {
		r.mu.Unlock()
		return nil
	}
	subs := without(wt.subs, s)
	wt.subs = subs
	var req *SubscribeRequest
	last := len(subs) == 0
	if last {
		delete(r.topics, s.topic)
	} else if rate := wireRate(subs); rate != wt.wireRate {
		wt.wireRate = rate
		req = &SubscribeRequest{Topic: s.topic, Rate: rate}
	}
	r.reindex()
	conn := r.conn
	r.mu.Unlock()

	if conn == nil {
		return nil
	}
	var err error
	switch {
	case last:
		err = conn.Unsubscribe(ctx, s.topic)
	case req != nil:
		err = conn.Subscribe(ctx, *req)
	}
	if err = asNetwork(err); errors.Is(err, ErrNetwork) {
		return nil // the reconnect re-subscribes from the current state
	}
	return err
}

// without returns a new slice of subs with s left out, leaving subs as it
// is, as every change of a wireTopic's subs does.
func without(subs []*Subscription, s *Subscription) []*Subscription {
	kept := make([]*Subscription, 0, len(subs))
	for _, x := range subs {
		if x != s {
			kept = append(kept, x)
		}
	}
	return kept
}

// wireRate is the cap the wire subscription carries: the highest of its
// registrations' caps, or none (0) if any registration has none.
func wireRate(subs []*Subscription) float64 {
	var max float64
	for _, s := range subs {
		if s.rate <= 0 {
			return 0
		}
		if s.rate > max {
			max = s.rate
		}
	}
	return max
}
