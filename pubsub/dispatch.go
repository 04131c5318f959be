package pubsub

import (
	"context"
	"errors"
	"time"

	"github.com/bwmarrin/snowflake"

	"github.com/plazahq/plaza/topic"
)

// IDAt returns the smallest id a hub can assign at t. With After it asks for
// history since a moment: GetHistory(ctx, topic, After(IDAt(t))).
func IDAt(t time.Time) ID {
	ms := t.UnixMilli() - snowflake.Epoch
	if ms < 0 {
		return 0
	}
	return ID(ms << 22)
}

func idAt(t time.Time) ID { return IDAt(t) - 1 }

// run is the Room's goroutine: it hands deliveries to handlers, releases
// messages held by rate caps, and reconnects when the connection is lost.
func (r *Room) run(conn Conn) {
	defer close(r.done)
	r.state(StateChange{State: StateConnected})
	for r.serve(conn) {
		r.state(StateChange{State: StateDisconnected, Err: conn.Err()})
		var ok bool
		if conn, ok = r.reconnect(conn); !ok {
			return
		}
	}
}

// serve runs the Room on conn until conn is lost, when it reports true, or
// until Leave, when it reports false.
func (r *Room) serve(conn Conn) bool {
	// A BatchConn's messages are taken a batch at a time; those of any
	// other Conn one at a time from its channel.
	var (
		msgs  <-chan *Message
		ready <-chan struct{}
		batch []*Message
	)
	bc, batched := conn.(BatchConn)
	if batched {
		ready = bc.Ready()
	} else {
		msgs = conn.Messages()
	}
	take := func() {
		// Until Take finds nothing: each Take lets the Conn reuse the
		// messages of the one before, and the last leaves it holding none.
		for {
			batch = bc.Take(batch[:0])
			if len(batch) == 0 {
				return
			}
			for _, m := range batch {
				r.deliver(m, false)
			}
			clear(batch)
		}
	}
	for {
		if !batched {
			// Drain a burst with a plain receive; the full select below
			// costs several channel locks per message.
			select {
			case m := <-msgs:
				r.deliver(m, false)
				continue
			default:
			}
		}
		select {
		case m := <-msgs:
			r.deliver(m, false)
		case <-ready:
			take()
		case <-r.wake:
			r.release()
		case err := <-r.reports:
			r.report(err)
		case <-conn.Done():
			// Hand out what arrived before the loss, then reconnect.
			if batched {
				take()
				return true
			}
			for {
				select {
				case m := <-msgs:
					r.deliver(m, false)
				default:
					return true
				}
			}
		case <-r.leave:
			return false
		}
	}
}

// deliver hands m to every local subscription it matches, through their rate
// caps. fromHistory marks messages of a gap fill.
func (r *Room) deliver(m *Message, fromHistory bool) {
	if r.left.Load() {
		return
	}
	idx := r.idx.Load()
	var subs []*Subscription
	if e, ok := idx.exact[m.Topic]; ok {
		if !fromHistory && len(r.fill) > 0 {
			if mark, ok := r.fill[m.Topic]; ok {
				if m.ID <= mark && m.Persisted {
					return // already handed out by gap fill
				}
				if m.ID > mark {
					delete(r.fill, m.Topic)
				}
			}
		}
		if m.ID > e.wt.lastSeen {
			e.wt.lastSeen = m.ID
		}
		subs = e.subs
	}
	if m.Err != nil {
		// Past it, as if delivered (lastSeen and the gap-fill mark moved on),
		// but to no handler.
		r.stats.undecodable.Add(1)
		r.report(undecodable(m))
		return
	}
	for _, e := range idx.patterns {
		if e.wt.pattern.Match(m.Topic) {
			subs = append(subs[:len(subs):len(subs)], e.subs...)
		}
	}

	now := time.Time{}
	var kept *Message // m's copy for the rate caps that hold it
	for _, s := range subs {
		if s.capr != nil {
			if now.IsZero() {
				now = r.opts.Clock.Now()
			}
			if !s.capr.Pass(now) {
				// Held past this delivery, which a BatchConn's message
				// does not outlive.
				if kept == nil {
					c := *m
					kept = &c
				}
				before := s.capr.Dropped()
				s.capr.Hold(kept)
				r.stats.capDropped.Add(s.capr.Dropped() - before)
				r.holding[s] = struct{}{}
				continue
			}
		}
		r.call(s, m)
	}
	r.arm()
}

func (r *Room) call(s *Subscription, m *Message) {
	if s.gone.Load() || r.left.Load() {
		return
	}
	r.inHandler.Store(true)
	defer r.inHandler.Store(false)
	r.stats.delivered.Add(1)
	s.handler(*m)
}

// release hands out the messages rate caps held that may go now.
func (r *Room) release() {
	now := r.opts.Clock.Now()
	var out []*Message
	for s := range r.holding {
		out = s.capr.Release(now, out[:0])
		for _, m := range out {
			r.call(s, m)
		}
		if s.capr.Held() == 0 || s.gone.Load() {
			delete(r.holding, s)
		}
	}
	r.arm()
}

// arm sets the rate-cap timer for the earliest held message.
func (r *Room) arm() {
	if len(r.holding) == 0 {
		return
	}
	now := r.opts.Clock.Now()
	next := time.Duration(-1)
	for s := range r.holding {
		if d, ok := s.capr.Next(now); ok && (next < 0 || d < next) {
			next = d
		}
	}
	if next < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timer = r.opts.Clock.AfterFunc(next, func() {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	})
}

// reconnect replaces a lost connection. It returns false when the Room stops
// instead: Leave was called, or the hub refused the Room for good.
func (r *Room) reconnect(lost Conn) (Conn, bool) {
	r.mu.Lock()
	if r.conn == lost {
		r.conn = nil
		r.connReady = make(chan struct{})
	}
	r.mu.Unlock()
	_ = lost.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.leave:
			cancel()
		case <-ctx.Done():
		}
	}()

	delay := r.opts.ReconnectMin
	for {
		if err := r.sleep(ctx, jitter(delay)); err != nil {
			return nil, false
		}
		delay = min(delay*2, r.opts.ReconnectMax)

		conn, err := r.t.Connect(ctx, ConnectRequest{Room: r.name, ClientID: r.id, Token: r.opts.Token})
		if err != nil {
			if code := CodeOf(err); code == CodeUnauthenticated || code == CodePermissionDenied {
				r.stop(err)
				return nil, false
			}
			continue
		}
		ok, all := r.resubscribe(ctx, conn)
		if !ok {
			_ = conn.Close()
			continue
		}
		recovered := false
		if r.opts.GapFill {
			recovered = r.gapFill(ctx, conn) && all
		}
		r.stats.reconnects.Add(1) // counted once the gap is filled
		r.state(StateChange{State: StateReconnected, Recovered: recovered})
		return conn, true
	}
}

// resubscribe subscribes conn to every wire topic and makes it the Room's
// connection. It reports false if conn was lost meanwhile; all is false when
// a topic was refused or the Room holds a pattern, which gap fill does not
// cover.
func (r *Room) resubscribe(ctx context.Context, conn Conn) (ok, all bool) {
	r.wireMu.Lock()
	defer r.wireMu.Unlock()
	r.mu.Lock()
	reqs := make([]SubscribeRequest, 0, len(r.topics))
	for _, wt := range r.topics {
		reqs = append(reqs, SubscribeRequest{Topic: wt.name, Rate: wt.wireRate})
	}
	r.mu.Unlock()
	all = true
	for _, req := range reqs {
		err := asNetwork(conn.Subscribe(ctx, req))
		if errors.Is(err, ErrNetwork) || ctx.Err() != nil {
			return false, false
		}
		if err != nil {
			all = false
			r.report(&Error{Code: CodeOf(err), Message: "re-subscribing to " + req.Topic + ": " + err.Error(), Err: err})
		}
		if topic.IsPattern(req.Topic) {
			all = false
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false, false
	}
	r.conn = conn
	close(r.connReady)
	return true, all
}

// gapFill hands the handlers the persisted messages each exact topic
// received since the last one the Room saw, merged across topics in id
// order, once each. It skips messages from the Room's own client id: the
// Room never sees its own publishes, whichever connection sent them. It
// reports whether every topic's history was read to its end.
func (r *Room) gapFill(ctx context.Context, conn Conn) (complete bool) {
	// One cursor per topic, holding its current page; the merge takes the
	// smallest id among the cursors' heads, so memory stays one page per
	// topic however long the gap.
	type cursor struct {
		topic string
		page  []Message
		more  bool
		after ID
	}
	var cs []*cursor
	complete = true
	for name, e := range r.idx.Load().exact {
		if e.wt.lastSeen > 0 {
			cs = append(cs, &cursor{topic: name, more: true, after: e.wt.lastSeen})
		}
	}
	fetch := func(c *cursor) {
		page, err := conn.History(ctx, HistoryRequest{Topic: c.topic, After: c.after, Limit: MaxHistoryLimit})
		if err != nil {
			if ctx.Err() == nil {
				r.report(&Error{Code: CodeOf(err), Message: "gap fill of " + c.topic + ": " + err.Error(), Err: err})
			}
			c.page, c.more, complete = nil, false, false
			return
		}
		c.page, c.more = page.Messages, page.HasMore && len(page.Messages) > 0
		if page.HasMore && len(page.Messages) == 0 {
			complete = false // more, says the hub, but it gave none
		}
	}
	for {
		var next *cursor
		for _, c := range cs {
			if len(c.page) == 0 && c.more {
				fetch(c)
			}
			if len(c.page) > 0 && (next == nil || c.page[0].ID < next.page[0].ID) {
				next = c
			}
		}
		if next == nil {
			return complete
		}
		m := &next.page[0]
		next.page = next.page[1:]
		next.after = m.ID
		r.fill[next.topic] = m.ID
		if m.From == r.id {
			continue
		}
		if m.Err == nil {
			r.stats.gapFilled.Add(1)
		}
		r.deliver(m, true)
	}
}

// report hands err to JoinOptions.OnError. It runs on the Room's goroutine
// without locks, counted as a handler so that OnError may call Leave.
func (r *Room) report(err error) {
	if r.opts.OnError != nil {
		r.inHandler.Store(true)
		defer r.inHandler.Store(false)
		r.opts.OnError(err)
	}
}

// state hands c to JoinOptions.OnState, like report, unless the Room is
// being left.
func (r *Room) state(c StateChange) {
	if r.opts.OnState == nil || r.left.Load() {
		return
	}
	r.inHandler.Store(true)
	defer r.inHandler.Store(false)
	r.opts.OnState(c)
}

// stop ends the Room because the hub refused it.
func (r *Room) stop(cause error) {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		r.err = cause
		for _, wt := range r.topics {
			for _, s := range wt.subs {
				s.gone.Store(true)
			}
		}
	}
	r.mu.Unlock()
	r.report(cause)
	r.state(StateChange{State: StateStopped, Err: cause})
}
