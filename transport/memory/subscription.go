package memory

import (
	"slices"
	"sync"
	"time"

	"github.com/plazahq/plaza/internal/ratecap"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/topic"
)

// sub is one subscription of a conn, to a topic or a pattern.
type sub struct {
	c    *conn
	key  string        // the topic or pattern subscribed to
	wild bool          // key is a pattern
	ref  bool          // holds a reference to the Broker's subscription
	pat  topic.Pattern // when wild

	// The fields below are guarded by the sub's lock, which serializes its
	// deliveries with its cap's releases, so that messages enter the queue
	// in the order they were offered. For a topic subscription the lock is
	// its topic's mu, which every publish to the topic holds already; a
	// pattern subscription receives from many topics at once and has a
	// mutex of its own.
	t     *topicState // the topic of an exact subscription
	idx   int         // its index in t.list
	mu    sync.Mutex  // the lock of a pattern subscription
	dead  bool
	cap   *ratecap.Cap[*pubsub.Message] // nil: no cap
	timer pubsub.Timer                  // armed while the cap holds messages
	gen   uint64                        // of the armed timer; see release
	buf   []*pubsub.Message             // scratch for releases
}

func (s *sub) lock() {
	if s.wild {
		s.mu.Lock()
	} else {
		s.t.mu.Lock()
	}
}

func (s *sub) unlock() {
	if s.wild {
		s.mu.Unlock()
	} else {
		s.t.mu.Unlock()
	}
}

// deliver offers m, of queuedSize size, to s at now. It returns how many messages went into the
// queue, how many the cap dropped, and whether the conn must be torn down
// for a full queue. Call it with s locked.
func (s *sub) deliver(m *pubsub.Message, size int, now time.Time) (n int, dropped uint64, slow bool) {
	c := s.c
	if s.dead || c.state.Load() != stateLive {
		return 0, 0, false
	}
	if s.cap != nil {
		before := s.cap.Dropped()
		ok := s.cap.Offer(now, m)
		dropped = s.cap.Dropped() - before
		if !ok {
			s.arm(now)
			return 0, dropped, false
		}
	}
	if !c.push(m, size) {
		return 0, dropped, c.slow()
	}
	return 1, dropped, false
}

// arm starts the release timer if messages are held and none is running.
// Call it with s locked.
func (s *sub) arm(now time.Time) {
	if s.timer != nil || s.cap == nil {
		return
	}
	d, ok := s.cap.Next(now)
	if !ok {
		return
	}
	h := s.c.h
	h.timers.Add(1)
	s.gen++
	gen := s.gen
	s.timer = h.clock.AfterFunc(d, func() { s.release(gen) })
}

// disarm stops the release timer. Call it with s locked.
func (s *sub) disarm() {
	if s.timer != nil && s.timer.Stop() {
		s.c.h.timers.Done()
	}
	s.timer = nil
}

// release runs on the timer armed as generation gen: it moves the held
// messages that the cap now allows into the queue, oldest first, and
// re-arms if more remain. A timer that fired while being stopped finds a
// newer generation and leaves the current timer alone.
func (s *sub) release(gen uint64) {
	h := s.c.h
	defer h.timers.Done()
	s.lock()
	if gen != s.gen {
		s.unlock()
		return
	}
	s.timer = nil
	if s.dead || s.cap == nil {
		s.unlock()
		return
	}
	now := h.clock.Now()
	s.buf = s.cap.Release(now, s.buf[:0])
	n, slow := s.pushAll(s.buf)
	clear(s.buf)
	if !slow {
		s.arm(now)
	}
	s.unlock()
	h.stats.delivered.Add(uint64(n))
	if slow {
		s.c.teardown()
	}
}

// pushAll puts ms into the queue in order. It returns how many went in and
// whether the conn must be torn down for a full queue. Call it with s
// locked.
func (s *sub) pushAll(ms []*pubsub.Message) (n int, slow bool) {
	if s.c.state.Load() != stateLive {
		return 0, false
	}
	for _, m := range ms {
		if !s.c.push(m, queuedSize(m)) {
			return n, s.c.slow()
		}
		n++
	}
	return n, false
}

// setRate changes the cap of s: perSecond > 0 sets or changes it, zero
// removes it and delivers what it held. It reports whether the conn must be
// torn down for a full queue.
func (s *sub) setRate(perSecond float64, now time.Time) (slow bool) {
	h := s.c.h
	s.lock()
	defer s.unlock()
	switch {
	case perSecond > 0 && s.cap == nil:
		s.cap = ratecap.New[*pubsub.Message](perSecond, now)
	case perSecond > 0:
		before := s.cap.Dropped()
		s.cap.SetRate(perSecond, now)
		h.stats.capDropped.Add(s.cap.Dropped() - before)
		s.disarm()
		s.arm(now)
	case s.cap != nil:
		s.disarm()
		held := s.cap.Drain(nil)
		s.cap = nil
		var n int
		n, slow = s.pushAll(held)
		h.stats.delivered.Add(uint64(n))
	}
	return slow
}

// kill ends s: no more deliveries, no timer, held messages discarded. Call
// it with s locked.
func (s *sub) kill() {
	s.dead = true
	s.disarm()
	s.cap = nil
	s.buf = nil
}

// addPattern adds s, a pattern subscription, to r.
func (r *room) addPattern(s *sub) {
	r.patMu.Lock()
	defer r.patMu.Unlock()
	var old []*patternConn
	if p := r.patterns.Load(); p != nil {
		old = *p
	}
	next := make([]*patternConn, 0, len(old)+1)
	added := false
	for _, pc := range old {
		if pc.c == s.c {
			pc = &patternConn{c: pc.c, subs: append(slices.Clip(pc.subs), s)}
			added = true
		}
		next = append(next, pc)
	}
	if !added {
		next = append(next, &patternConn{c: s.c, subs: []*sub{s}})
	}
	r.patterns.Store(&next)
}

// removePattern removes s, a pattern subscription, from r.
func (r *room) removePattern(s *sub) {
	r.patMu.Lock()
	defer r.patMu.Unlock()
	p := r.patterns.Load()
	if p == nil {
		return
	}
	next := make([]*patternConn, 0, len(*p))
	for _, pc := range *p {
		if pc.c == s.c {
			subs := slices.DeleteFunc(slices.Clone(pc.subs), func(x *sub) bool { return x == s })
			if len(subs) == 0 {
				continue
			}
			pc = &patternConn{c: pc.c, subs: subs}
		}
		next = append(next, pc)
	}
	if len(next) == 0 {
		r.patterns.Store(nil)
		return
	}
	r.patterns.Store(&next)
}
