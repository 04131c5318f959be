package memory

import (
	"time"

	"github.com/plazahq/plaza/pubsub"
)

// fanout is one publish's delivery to the subscribers of its topic.
type fanout struct {
	now       time.Time
	size      int // the message's queuedSize
	delivered uint64
	dropped   uint64  // by subscription rate caps
	slow      []*conn // dropped for a full queue; teardown after unlocking
	to        map[string]struct{}

	// mode says which subscriptions a delivery of a Broker reaches:
	// viaAll without a Broker; viaTopic the topic's exact subscriptions,
	// viaPattern the subscriptions to pattern, for connections whose
	// oldest matching pattern it is and that have no exact one.
	mode    uint8
	pattern string
}

const (
	viaAll uint8 = iota
	viaTopic
	viaPattern
)

// run delivers m, published by from (nil: none of r's connections) in
// topic t of room r, to every subscriber but from: through its exact
// subscription to t if it has one, else through its oldest matching
// pattern. f.mode narrows that down for a Broker's deliveries. Call it with
// t.mu held.
func (f *fanout) run(r *room, from *conn, t *topicState, m *pubsub.Message, now time.Time) {
	f.now = now
	f.size = queuedSize(m)
	if len(m.To) > 8 {
		f.to = make(map[string]struct{}, len(m.To))
		for _, id := range m.To {
			f.to[id] = struct{}{}
		}
	}
	if f.mode != viaPattern {
		for _, s := range t.list {
			if s.c != from && f.addressed(m, s.c.id) {
				f.deliver(s, m) // s's lock is t.mu
			}
		}
	}
	if f.mode == viaTopic {
		return
	}
	pats := r.patterns.Load()
	if pats == nil {
		return
	}
	for _, pc := range *pats {
		c := pc.c
		if c == from || !f.addressed(m, c.id) {
			continue
		}
		if _, ok := t.subs[c]; ok {
			continue
		}
		for _, s := range pc.subs {
			if s.pat.Match(m.Topic) {
				if f.mode == viaPattern && s.key != f.pattern {
					break // it comes through s.key's delivery
				}
				s.mu.Lock()
				f.deliver(s, m)
				s.mu.Unlock()
				break
			}
		}
	}
}

// addressed reports whether m is for client id.
func (f *fanout) addressed(m *pubsub.Message, id string) bool {
	if len(m.To) == 0 {
		return true
	}
	if f.to != nil {
		_, ok := f.to[id]
		return ok
	}
	for _, to := range m.To {
		if to == id {
			return true
		}
	}
	return false
}

func (f *fanout) deliver(s *sub, m *pubsub.Message) {
	n, dropped, slow := s.deliver(m, f.size, f.now)
	f.delivered += uint64(n)
	f.dropped += dropped
	if slow {
		f.slow = append(f.slow, s.c)
	}
}
