package memory

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/topic"
)

// A Broker carries what crosses nodes, so that several hubs behave, for
// every client on every node, as one hub: it confirms messages for every
// hub (deduplication, ids, history), delivers every hub's messages to the
// hubs whose connections subscribed, keeps the history they all answer
// from, counts cluster-wide rate windows and leases the hub's node id.
// Set one in [Options.Broker]; package transport/redis implements it on
// Redis. Without a Broker the hub does all of this itself, in process.
//
// # The contract
//
// Attach is called once, by [New], before any other method; the Broker
// then hands every message confirmed on a topic or pattern some hub
// subscribed to, by any hub including this one, to [Receiver].Deliver.
//
// Publish confirms m for every hub, atomically: if m.From used key (not
// empty) on m.Topic within the Broker's deduplication window, it returns
// the message confirmed then and dup true, and nothing else happens.
// Otherwise the confirmed message takes m.ID (the hub's proposal) if it is
// above the topic's last id, and else an id above that last id from
// [Receiver].Propose, so that ids strictly increase per topic whichever
// hub publishes and every id is one the hub's own generator made: unique
// across the topics and rooms of every hub, since each holds a node id of
// its own. (A Broker that raises an id itself must keep the hub's node id
// in it; the hub then keeps its later ids above the one confirmed.) It joins the topic's history
// if m.Persisted; and it is delivered, with origin, to every subscribed
// hub, after every message of the topic with a lower id. History order is
// therefore delivery order, on every node. An error means nothing was
// confirmed, or that the Broker cannot tell (a retry with the same key
// then settles it): a *pubsub.Error with NETWORK_ERROR when the shared
// state cannot be reached and the publish may be retried.
//
// Subscribe makes the Broker deliver room's messages of a topic, or of
// the topics a pattern (package topic) matches, and returns once every
// message confirmed after it will be: the hub calls it for the first local
// subscriber and Unsubscribe after the last. A Broker delivers the
// messages of one subscription in id order per topic, each once per
// subscription: a message of a topic with an exact subscription and
// matching patterns comes once through each, with Delivery.Pattern naming
// the pattern. When a subscription was interrupted (the connection to the
// shared state broke) and is live again, the Broker calls
// [Receiver].Missed: messages may have been confirmed in between and not
// delivered.
//
// History is the store the hub answers history queries from; Allow counts
// one event of a per-minute cap for every hub (see
// [Options.PublishPerMinute]); NodeID is the snowflake node id this hub
// holds alone while Lost is open; Ready reports whether the shared state
// can be reached, for readiness probes. Close releases what the Broker
// holds; the hub never calls it.
//
// A Broker must be safe for concurrent use. Deliver and Missed may be
// called from the Broker's own goroutines; the hub never blocks in them.
type Broker interface {
	Attach(r Receiver)
	Publish(ctx context.Context, room string, m pubsub.Message, key, origin string) (confirmed pubsub.Message, dup bool, err error)
	Subscribe(ctx context.Context, room, topicOrPattern string) error
	Unsubscribe(room, topicOrPattern string)
	History() history.Store
	Allow(ctx context.Context, key string, limit int, now time.Time) (ok bool, retryAfter time.Duration, err error)
	NodeID() int
	Lost() <-chan struct{}
	Ready(ctx context.Context) error
	Close() error
}

// Receiver is what a hub gives its [Broker] to deliver messages to. Its
// functions never block; they are safe for concurrent use.
type Receiver struct {
	// Deliver fans d out to the hub's subscribed connections.
	Deliver func(d Delivery)
	// Missed tells the hub that its subscription to room's topic or
	// pattern was interrupted and is live again. The hub drops its
	// connections with that subscription with NETWORK_ERROR, so that
	// their Rooms reconnect and fill the gap from history
	// (pubsub.JoinOptions.GapFill).
	Missed func(room, topicOrPattern string)
	// Propose returns a new id of the hub's generator above last, for a
	// publish whose proposed id is at or below its topic's last id. Every
	// id it returns is handed out once, and the hub's later ids are above
	// it, whichever topic they are for.
	Propose func(last pubsub.ID) pubsub.ID
}

// Delivery is a message a [Broker] delivers to a hub.
type Delivery struct {
	Room    string
	Message pubsub.Message
	// Pattern is the pattern subscription the message came through, or
	// empty for a topic subscription.
	Pattern string
	// Origin is what the publishing hub passed to Broker.Publish; a hub
	// recognizes its own connections by it and skips the publisher's.
	Origin string
}

// ErrLeaseLost is the cause of the error of a publish refused because the
// hub's Broker lost its node id lease: another hub may make ids with the
// same node id, so this hub makes none until it is replaced.
var ErrLeaseLost = errors.New("memory: the broker lost this hub's node id lease")

// brokerSub counts the local subscriptions of one room's topic or pattern
// that a Broker subscription serves.
type brokerSub struct {
	refs  int
	ready chan struct{} // closed once Broker.Subscribe returned
	err   error         // its error; the entry is gone then
}

func brokerSubKey(room, name string) string { return room + "\x00" + name }

// brokerSubscribe takes a reference to the Broker subscription of room's
// topic or pattern name, subscribing the Broker for the first, and returns
// once it is live. On error the reference is not taken.
func (h *Hub) brokerSubscribe(ctx context.Context, room, name string) error {
	k := brokerSubKey(room, name)
	h.bmu.Lock()
	e := h.bsubs[k]
	if e == nil {
		e = &brokerSub{refs: 1, ready: make(chan struct{})}
		h.bsubs[k] = e
		h.bmu.Unlock()
		err := h.broker.Subscribe(ctx, room, name)
		h.bmu.Lock()
		if err != nil {
			e.err = brokerErr("subscribe", ctx, err)
			delete(h.bsubs, k)
		}
		close(e.ready)
		h.bmu.Unlock()
		if err != nil {
			h.broker.Unsubscribe(room, name) // it may go live later
		}
		return e.err
	}
	e.refs++
	h.bmu.Unlock()
	select {
	case <-e.ready:
		return e.err
	case <-ctx.Done():
		h.brokerUnsubscribe(room, name)
		return ctxErr("subscribe", ctx.Err())
	}
}

// brokerUnsubscribe releases a reference taken by brokerSubscribe and
// unsubscribes the Broker with the last one.
func (h *Hub) brokerUnsubscribe(room, name string) {
	k := brokerSubKey(room, name)
	h.bmu.Lock()
	e := h.bsubs[k]
	if e == nil {
		h.bmu.Unlock()
		return
	}
	select {
	case <-e.ready:
	default:
		// Still subscribing: the subscriber that started it finishes it.
		e.refs--
		h.bmu.Unlock()
		return
	}
	e.refs--
	if e.refs > 0 {
		h.bmu.Unlock()
		return
	}
	delete(h.bsubs, k)
	h.bmu.Unlock()
	h.broker.Unsubscribe(room, name)
}

// publishBroker confirms a publish through the Broker. The message
// reaches local subscribers when the Broker delivers it, like every
// other hub's.
func (h *Hub) publishBroker(ctx context.Context, c *conn, req *pubsub.PublishRequest) (pubsub.Message, error) {
	if h.closed.Load() {
		return pubsub.Message{}, errHubClosed()
	}
	select {
	case <-h.broker.Lost():
		return pubsub.Message{}, &pubsub.Error{Code: pubsub.CodeInternal, Message: "publishes are refused until this hub is restarted with a node id of its own", Err: ErrLeaseLost}
	default:
	}
	now := h.clock.Now()
	if h.pubRate > 0 { // this node's share; see Options.Broker
		t := c.r.lockTopic(req.Topic)
		if t.lim == nil {
			t.lim = rate.NewLimiter(h.pubRate, h.pubBurst)
		}
		ok := t.lim.AllowN(now, 1)
		var wait time.Duration
		if !ok {
			wait = h.retryAfter(t.lim, now)
		}
		t.mu.Unlock()
		if !ok {
			return pubsub.Message{}, h.rateLimited(req.Topic, wait)
		}
	}
	if h.perMinute > 0 {
		ok, wait, err := h.broker.Allow(ctx, "pub\x00"+c.r.name+"\x00"+req.Topic, h.perMinute, now)
		if err != nil {
			return pubsub.Message{}, brokerErr("publish", ctx, err)
		}
		if !ok {
			return pubsub.Message{}, h.rateLimited(req.Topic, wait)
		}
	}
	m := h.newMessage(c, req, now)
	cm, dup, err := h.broker.Publish(ctx, c.r.name, m, req.IdempotencyKey, c.origin)
	if err != nil {
		return pubsub.Message{}, brokerErr("publish", ctx, err)
	}
	if !dup && cm.ID > m.ID {
		// A Broker that raised the id itself: never hand it out again.
		// (One that asked Propose already moved the generator past it.)
		h.ids.SetFloor(cm.ID)
	}
	if dup {
		h.stats.deduplicated.Add(1)
	} else {
		h.stats.published.Add(1)
	}
	cm.Timestamp = cm.Timestamp.UTC()
	return cm, nil
}

// propose is [Receiver].Propose: the generator is moved above last, then
// asked for an id, both atomically, so the id is above last and every id
// the hub handed out or will, whatever the clock says.
func (h *Hub) propose(last pubsub.ID) pubsub.ID {
	h.ids.SetFloor(last)
	return h.ids.Next(h.clock.Now())
}

// brokerErr is the error of a Broker call: its *pubsub.Error as it is, the
// context's when ctx ended, and INTERNAL_ERROR wrapping anything else.
func brokerErr(op string, ctx context.Context, err error) error {
	if perr := (*pubsub.Error)(nil); errors.As(err, &perr) {
		return err
	}
	if ctx.Err() != nil {
		return ctxErr(op, ctx.Err())
	}
	return &pubsub.Error{Code: pubsub.CodeInternal, Message: "broker: " + op, Err: err}
}

// deliver fans a message the Broker delivered out to the room's
// connections: through exact subscriptions for a topic delivery, through
// the pattern's subscriptions for a pattern delivery, skipping the
// publisher's connection. It runs on the Broker's goroutine and never
// blocks on a subscriber.
func (h *Hub) deliver(d Delivery) {
	if h.closed.Load() {
		return
	}
	h.mu.Lock()
	r := h.rooms[d.Room]
	h.mu.Unlock()
	if r == nil {
		return
	}
	var from *conn
	if v, ok := h.origins.Load(d.Origin); ok {
		from = v.(*conn)
	}
	m := new(pubsub.Message)
	*m = d.Message
	m.Timestamp = m.Timestamp.UTC()
	now := h.clock.Now()
	t := r.lockTopic(m.Topic)
	f := fanout{mode: viaTopic}
	if d.Pattern != "" {
		f.mode, f.pattern = viaPattern, d.Pattern
	}
	f.run(r, from, t, m, now)
	if d.Pattern == "" {
		t.delivered = max(t.delivered, m.ID)
	} else {
		if t.patDelivered == nil {
			t.patDelivered = make(map[string]pubsub.ID)
		}
		t.patDelivered[d.Pattern] = max(t.patDelivered[d.Pattern], m.ID)
	}
	if t.waitCh != nil {
		close(t.waitCh)
		t.waitCh = nil
	}
	t.mu.Unlock()
	if f.delivered > 0 {
		h.stats.delivered.Add(f.delivered)
	}
	if f.dropped > 0 {
		h.stats.capDropped.Add(f.dropped)
	}
	if len(f.slow) > 0 {
		h.teardownLater(f.slow)
	}
	h.maybeSweep(r, now)
}

// teardownLater tears cs down on a goroutine of its own: a teardown
// unsubscribes the Broker, which may need the goroutine a delivery runs
// on. Close waits for it. After Close it tears them down at once.
func (h *Hub) teardownLater(cs []*conn) {
	h.mu.Lock()
	closed := h.closed.Load()
	if !closed {
		h.timers.Add(1) // before Close waits: Close sets closed under h.mu
	}
	h.mu.Unlock()
	teardown := func() {
		for _, c := range cs {
			c.teardown()
		}
	}
	if closed {
		teardown()
		return
	}
	go func() {
		defer h.timers.Done()
		teardown()
	}()
}

// WaitDelivered waits until the hub has offered the messages of room's
// topic up to id to every local connection subscribed to the topic or to
// a pattern that matches it, and returns nil; or returns an error that
// wraps ctx.Err() when ctx ends first. With a Broker, a message reaches
// the subscribers of every node, this one included, when the Broker
// delivers it, which may be after Publish returned; a test that moves a
// manual clock, or anything else that must know a message has arrived,
// waits for it here. Without a Broker, or without local subscribers to
// the topic, it returns nil at once.
func (h *Hub) WaitDelivered(ctx context.Context, room, topicName string, id pubsub.ID) error {
	if h.broker == nil {
		return nil
	}
	h.mu.Lock()
	r := h.rooms[room]
	h.mu.Unlock()
	if r == nil {
		return nil
	}
	for {
		exact, pats := h.liveBrokerSubs(room, topicName)
		if !exact && len(pats) == 0 {
			return nil
		}
		t := r.lockTopic(topicName)
		done := !exact || t.delivered >= id
		for _, p := range pats {
			done = done && t.patDelivered[p] >= id
		}
		if done {
			h.maybeForget(r, t, h.clock.Now())
			t.mu.Unlock()
			return nil
		}
		if t.waitCh == nil {
			t.waitCh = make(chan struct{})
		}
		ch := t.waitCh
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctxErr("waiting for deliveries", ctx.Err())
		}
	}
}

// liveBrokerSubs reports whether the Broker subscription of room's topic
// is live, and which of room's live pattern subscriptions match it.
func (h *Hub) liveBrokerSubs(room, topicName string) (exact bool, pats []string) {
	h.bmu.Lock()
	defer h.bmu.Unlock()
	prefix := room + "\x00"
	for k, e := range h.bsubs {
		name, ok := strings.CutPrefix(k, prefix)
		if !ok || e.err != nil {
			continue
		}
		select {
		case <-e.ready:
		default:
			continue
		}
		if name == topicName {
			exact = true
		} else if topic.IsPattern(name) {
			if p, err := topic.ParsePattern(name); err == nil && p.Match(topicName) {
				pats = append(pats, name)
			}
		}
	}
	return exact, pats
}

// missed drops the connections of room subscribed to name, whose Broker
// subscription was interrupted, so that their Rooms reconnect and fill the
// gap from history.
func (h *Hub) missed(room, name string) {
	h.mu.Lock()
	var cs []*conn
	if r := h.rooms[room]; r != nil {
		for c := range r.conns {
			cs = append(cs, c)
		}
	}
	h.mu.Unlock()
	var drop []*conn
	for _, c := range cs {
		c.subMu.Lock()
		_, ok := c.subs[name]
		c.subMu.Unlock()
		if ok && c.end(&pubsub.Error{Code: pubsub.CodeNetworkError, Message: "messages of " + name + " may have been missed while the broker was unreachable: reconnect and fill the gap from history"}, false) {
			drop = append(drop, c)
		}
	}
	if len(drop) > 0 {
		h.teardownLater(drop)
	}
}

// newOrigin names a connection for Broker.Publish.
func (h *Hub) newOrigin() string {
	return h.token + strconv.FormatUint(h.nextConn.Add(1), 36)
}
