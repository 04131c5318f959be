package redis

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/topic"
)

// Delivery is a message a [Subscriber] received from Redis.
type Delivery struct {
	Room    string
	Message pubsub.Message
	// Pattern is the pattern the message matched, for a subscription made
	// with SubscribePattern; empty for one made with Subscribe.
	Pattern string
	// Origin is the Publication's Origin: the hub that published the
	// message skips the publisher's connection by it.
	Origin string
}

// SubscriberOptions configure [Client.Subscriber]. OnMessage is required;
// the other fields may be left zero.
type SubscriberOptions struct {
	// OnMessage receives every message of the subscribed topics and
	// patterns. It is called on the Redis client's reading goroutine, in
	// the order Redis published them (for one topic: id order), and must
	// not block: hand the message to a queue. Required.
	OnMessage func(Delivery)
	// OnError, if set, receives messages that did not decode (never
	// expected from this package's scripts) and the failures of a
	// subscription that the Redis client does not retry by itself, after
	// which the Subscriber tries again with backoff.
	OnError func(room, topicOrPattern string, err error)
	// OnResubscribe, if set, is called when a subscription is live again
	// after its connection to Redis was lost: messages published in
	// between were not delivered, and the caller should fill the gap from
	// history (After the last id it saw).
	OnResubscribe func(room, topicOrPattern string)
	// MaxBackoff caps the wait between attempts to subscribe again after
	// a loss. Zero means 2 seconds.
	MaxBackoff time.Duration
}

// Subscriber receives the messages that [Store.Publish] confirms, on any
// hub, for the topics and patterns it subscribes to, and resubscribes by
// itself when its connection to Redis breaks.
//
// A topic is one sharded channel (SSUBSCRIBE), on the shard that holds the
// topic's keys. Sharded pub/sub has no pattern form, so a pattern
// subscription reads the room's classic channels instead (PSUBSCRIBE
// prefix:p:<room>:<pattern>), which [Store.Publish] feeds only with
// StoreOptions.Patterns: topic patterns are Redis globs, and map one to
// one.
//
// Create a Subscriber with [Client.Subscriber]; the zero value is not
// usable. A Subscriber is safe for concurrent use. Close it before the
// Client.
type Subscriber struct {
	c    *Client
	opts SubscriberOptions

	mu     sync.Mutex
	subs   map[string]*subLoop // by channel or channel pattern
	closed bool
	wg     sync.WaitGroup

	// On a single Redis server (not a cluster) every subscription shares
	// one dedicated connection, whose messages reach OnMessage in the
	// order Redis sent them, whatever their channels: ordered. Its
	// goroutine is started by the first subscription and owns the
	// connection; pending holds the subscribes and unsubscribes it has
	// yet to send, kick wakes it, gen counts its connections and stopAll
	// ends it.
	ordered bool
	live    bool // the ordered connection is up and took the subscriptions
	pending []pendingOp
	kick    chan struct{}
	gen     int
	started bool
	stopAll context.CancelFunc
}

type pendingOp struct {
	l    *subLoop
	sub  bool          // subscribe, else unsubscribe
	done chan struct{} // closed once sent (or its connection broke); nil: none
}

// closeOps closes the done channels of ops.
func closeOps(ops []pendingOp) {
	for _, op := range ops {
		if op.done != nil {
			close(op.done)
		}
	}
}

// subLoop keeps one channel or pattern subscribed.
type subLoop struct {
	room, name string // name: the topic or pattern
	pattern    bool
	channel    string
	refs       int
	cancel     context.CancelFunc
	ready      chan struct{} // closed on the first confirmation
	gen        int           // ordered: the connection it was last confirmed on
}

// Subscriber returns a Subscriber with opts; it subscribes to nothing yet.
func (c *Client) Subscriber(opts SubscriberOptions) *Subscriber {
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 2 * time.Second
	}
	return &Subscriber{c: c, opts: opts, subs: make(map[string]*subLoop),
		ordered: c.sc.Mode() != rueidis.ClientModeCluster, kick: make(chan struct{}, 1)}
}

var errSubscriberClosed = &pubsub.Error{Code: pubsub.CodeNotConnected, Message: "redis: subscriber closed"}

// Subscribe subscribes to room's topic and returns once Redis has
// confirmed it: every message Publish confirms after that is delivered.
// Subscribing again to the same topic counts a reference; Unsubscribe
// releases one. If ctx ends first, Subscribe returns its error, and the
// subscription stays and goes live in the background: release it with
// Unsubscribe.
func (s *Subscriber) Subscribe(ctx context.Context, room, name string) error {
	if err := pubsub.CheckTopic(name); err != nil {
		return err
	}
	k := topicKeys{base: s.c.prefix + ":{" + strconv.Itoa(len(room)) + ":" + room + ":" + name + "}"}
	return s.add(ctx, &subLoop{room: room, name: name, channel: k.channel()})
}

// SubscribePattern subscribes to the topics of room that match pattern (a
// glob, see package topic), as Subscribe does. Their messages arrive only
// from Stores opened with StoreOptions.Patterns.
func (s *Subscriber) SubscribePattern(ctx context.Context, room, pattern string) error {
	if _, err := topic.ParsePattern(pattern); err != nil {
		return &pubsub.Error{Code: pubsub.CodeInvalidTopicName, Message: err.Error(), Err: err}
	}
	return s.add(ctx, &subLoop{room: room, name: pattern, pattern: true, channel: s.c.patternSubject(room, pattern)})
}

// patternSubject is what a pattern subscriber of room PSUBSCRIBEs to: the
// pattern channels of room (see Client.patternChannel) whose topic matches
// pattern. The prefix and the room are escaped, so that only the pattern
// matches anything but itself.
func (c *Client) patternSubject(room, pattern string) string {
	return escapeGlob(c.prefix) + ":p:" + strconv.Itoa(len(room)) + ":" + escapeGlob(room) + ":" + pattern
}

// escapeGlob escapes the characters a Redis glob treats specially, so
// that a room name matches itself only.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Subscriber) add(ctx context.Context, l *subLoop) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errSubscriberClosed
	}
	if cur := s.subs[l.channel]; cur != nil {
		cur.refs++
		l = cur
	} else {
		l.refs = 1
		l.ready = make(chan struct{})
		lctx, cancel := context.WithCancel(context.Background())
		l.cancel = cancel
		s.subs[l.channel] = l
		if s.ordered {
			s.pending = append(s.pending, pendingOp{l: l, sub: true})
			if !s.started {
				s.started = true
				octx, stop := context.WithCancel(context.Background())
				s.stopAll = stop
				s.wg.Add(1)
				go s.runOrdered(octx)
			}
			s.wake()
		} else {
			s.wg.Add(1)
			go s.run(lctx, l)
		}
	}
	s.mu.Unlock()
	select {
	case <-l.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unsubscribe releases one reference to room's topic; the last one
// unsubscribes from Redis. Unknown topics are ignored. Telling Redis is
// best effort, bounded to about a second: Unsubscribe does not wait for
// Redis to confirm, so PUBSUB SHARDNUMSUB may count the subscriber for a
// moment after it returned.
func (s *Subscriber) Unsubscribe(room, name string) {
	k := topicKeys{base: s.c.prefix + ":{" + strconv.Itoa(len(room)) + ":" + room + ":" + name + "}"}
	s.release(k.channel())
}

// UnsubscribePattern releases one reference to room's pattern, as
// Unsubscribe does for a topic.
func (s *Subscriber) UnsubscribePattern(room, pattern string) {
	s.release(s.c.patternSubject(room, pattern))
}

func (s *Subscriber) release(channel string) {
	s.mu.Lock()
	l := s.subs[channel]
	if l == nil {
		s.mu.Unlock()
		return
	}
	if l.refs--; l.refs > 0 {
		s.mu.Unlock()
		return
	}
	delete(s.subs, channel)
	if s.ordered {
		l.cancel()
		if !s.live {
			// The next connection starts without it: nothing to wait for.
			s.mu.Unlock()
			return
		}
		done := make(chan struct{})
		s.pending = append(s.pending, pendingOp{l: l, done: done})
		s.wake()
		s.mu.Unlock()
		// Wait, a second at most, for Redis to stop sending: best effort,
		// as stop says.
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		}
		return
	}
	s.mu.Unlock()
	s.stop(l)
}

// wake wakes the goroutine of the ordered connection. Call it with s.mu
// held.
func (s *Subscriber) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// runOrdered keeps the ordered connection and its subscriptions: it
// subscribes every pending subscription, and after a lost connection
// every subscription again, on a new one, with backoff.
func (s *Subscriber) runOrdered(ctx context.Context) {
	defer s.wg.Done()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		dc, cancel := s.c.sc.Dedicate()
		s.mu.Lock()
		s.gen++
		gen := s.gen
		s.mu.Unlock()
		errc := dc.SetPubSubHooks(rueidis.PubSubHooks{
			OnMessage:      func(m rueidis.PubSubMessage) { s.onOrdered(m) },
			OnSubscription: func(ps rueidis.PubSubSubscription) { s.onConfirm(gen, ps) },
		})
		s.mu.Lock()
		closeOps(s.pending) // the new connection has none of the old subscriptions
		s.pending = s.pending[:0]
		ops := make([]pendingOp, 0, len(s.subs))
		for _, l := range s.subs {
			ops = append(ops, pendingOp{l: l, sub: true})
		}
		s.mu.Unlock()
		err := s.send(ctx, dc, ops)
		live := err == nil // the connection worked: start the backoff anew
		s.mu.Lock()
		s.live = live
		s.mu.Unlock()
		for err == nil {
			select {
			case <-ctx.Done():
			case err = <-errc:
				if err == nil {
					err = errors.New("connection closed")
				}
				continue
			case <-s.kick:
				s.mu.Lock()
				ops := slices.Clone(s.pending)
				s.pending = s.pending[:0]
				s.mu.Unlock()
				err = s.send(ctx, dc, ops)
				closeOps(ops)
				continue
			}
			break
		}
		cancel()
		s.mu.Lock()
		s.live = false
		if ctx.Err() != nil {
			closeOps(s.pending)
			s.pending = nil
		}
		s.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if live {
			backoff = 50 * time.Millisecond
		}
		if s.opts.OnError != nil {
			s.opts.OnError("", "", classify(s.c.addr, "receiving from", err))
		}
		if !s.pause(ctx, &backoff) {
			return
		}
	}
}

// pause waits a random time of about *backoff and doubles it up to
// MaxBackoff. It reports false if ctx ended first.
func (s *Subscriber) pause(ctx context.Context, backoff *time.Duration) bool {
	wait := *backoff/2 + rand.N(*backoff/2+1)
	*backoff = min(2**backoff, s.opts.MaxBackoff)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// send sends ops on the ordered connection dc. An error means the
// connection broke.
func (s *Subscriber) send(ctx context.Context, dc rueidis.DedicatedClient, ops []pendingOp) error {
	if len(ops) == 0 {
		return nil
	}
	b := dc.B()
	cmds := make(rueidis.Commands, 0, len(ops))
	for _, op := range ops {
		switch {
		case op.sub && op.l.pattern:
			cmds = append(cmds, b.Psubscribe().Pattern(op.l.channel).Build())
		case op.sub:
			cmds = append(cmds, b.Ssubscribe().Channel(op.l.channel).Build())
		case op.l.pattern:
			cmds = append(cmds, b.Punsubscribe().Pattern(op.l.channel).Build())
		default:
			cmds = append(cmds, b.Sunsubscribe().Channel(op.l.channel).Build())
		}
	}
	for i, r := range dc.DoMulti(ctx, cmds...) {
		err := r.Error()
		if err == nil {
			continue
		}
		var rerr *rueidis.RedisError
		if !errors.As(err, &rerr) {
			return err
		}
		if s.opts.OnError != nil {
			s.opts.OnError(ops[i].l.room, ops[i].l.name, classify(s.c.addr, "subscribing on", err))
		}
	}
	return nil
}

// onOrdered hands a message of the ordered connection to its
// subscription.
func (s *Subscriber) onOrdered(m rueidis.PubSubMessage) {
	key := m.Channel
	if m.Pattern != "" {
		key = m.Pattern
	}
	s.mu.Lock()
	l := s.subs[key]
	s.mu.Unlock()
	if l != nil {
		s.deliver(l, m)
	}
}

// onConfirm marks a subscription of the ordered connection gen live: the
// first time it releases Subscribe, later it is a resubscription after a
// gap.
func (s *Subscriber) onConfirm(gen int, ps rueidis.PubSubSubscription) {
	if ps.Kind != "ssubscribe" && ps.Kind != "psubscribe" {
		return
	}
	s.mu.Lock()
	l := s.subs[ps.Channel]
	if l == nil || l.gen == gen {
		s.mu.Unlock()
		return
	}
	first := l.gen == 0
	l.gen = gen
	s.mu.Unlock()
	if first {
		close(l.ready)
	} else if s.opts.OnResubscribe != nil {
		s.opts.OnResubscribe(l.room, l.name)
	}
}

// stop ends the loops of ls and tells Redis, in a round trip bounded by a
// second, to stop sending their messages: best effort, since a broken
// connection has no subscriptions left anyway. Sharded and pattern
// unsubscribes go apart: on a cluster the first go to their channels'
// shards and the second to any node, and one pipeline cannot mix them.
func (s *Subscriber) stop(ls ...*subLoop) {
	b := s.c.sc.B()
	var sharded, patterns rueidis.Commands
	for _, l := range ls {
		l.cancel()
		if l.pattern {
			patterns = append(patterns, b.Punsubscribe().Pattern(l.channel).Build())
		} else {
			sharded = append(sharded, b.Sunsubscribe().Channel(l.channel).Build())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if len(sharded) > 0 {
		s.c.sc.DoMulti(ctx, sharded...)
	}
	if len(patterns) > 0 {
		s.c.sc.DoMulti(ctx, patterns...)
	}
}

// Close ends every subscription and waits for their loops. It is
// idempotent.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := s.subs
	s.subs = nil
	stopAll := s.stopAll
	s.mu.Unlock()
	if s.ordered {
		// Closing the dedicated connection ends its subscriptions.
		if stopAll != nil {
			stopAll()
		}
		s.wg.Wait()
		return nil
	}
	ls := make([]*subLoop, 0, len(subs))
	for _, l := range subs {
		ls = append(ls, l)
	}
	s.stop(ls...)
	s.wg.Wait()
	return nil
}

// run keeps l subscribed until its context ends.
func (s *Subscriber) run(ctx context.Context, l *subLoop) {
	defer s.wg.Done()
	b := s.c.sc.B()
	onMsg := func(m rueidis.PubSubMessage) { s.deliver(l, m) }
	backoff := 50 * time.Millisecond
	// The Redis client subscribes again by itself after a connection it
	// could reconnect, so every confirmation after the first is a
	// resubscription, after a gap.
	var confirmations atomic.Int64
	hctx := rueidis.WithOnSubscriptionHook(ctx, func(ps rueidis.PubSubSubscription) {
		if ps.Kind != "ssubscribe" && ps.Kind != "psubscribe" {
			return
		}
		if confirmations.Add(1) == 1 {
			close(l.ready)
		} else if s.opts.OnResubscribe != nil {
			s.opts.OnResubscribe(l.room, l.name)
		}
	})
	for attempt := 0; ; attempt++ {
		before := confirmations.Load()
		cmd := b.Ssubscribe().Channel(l.channel).Build()
		if l.pattern {
			cmd = b.Psubscribe().Pattern(l.channel).Build()
		}
		err := s.c.sc.Receive(hctx, cmd, onMsg)
		if ctx.Err() != nil || errors.Is(err, rueidis.ErrClosing) {
			return
		}
		if err == nil { // unsubscribed by someone else: subscribe again
			err = errors.New("unsubscribed by the server")
		}
		live := confirmations.Load() > before
		if live {
			backoff = 50 * time.Millisecond
		}
		if s.opts.OnError != nil && (live || attempt == 0) {
			s.opts.OnError(l.room, l.name, classify(s.c.addr, "receiving from", err))
		}
		if !s.pause(ctx, &backoff) {
			return
		}
	}
}

// deliver decodes one message of l and hands it to OnMessage.
func (s *Subscriber) deliver(l *subLoop, m rueidis.PubSubMessage) {
	name := l.name
	if l.pattern {
		// The channel is the pattern channel of room and the topic.
		name = strings.TrimPrefix(m.Channel, s.c.patternChannel(l.room, ""))
	}
	msg, origin, err := decodeWire(name, m.Message)
	if err != nil {
		if s.opts.OnError != nil {
			s.opts.OnError(l.room, l.name, err)
		}
		return
	}
	d := Delivery{Room: l.room, Message: msg, Origin: origin}
	if l.pattern {
		d.Pattern = l.name
	}
	s.opts.OnMessage(d)
}
