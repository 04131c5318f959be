package memory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/internal/ratewindow"
	"github.com/plazahq/plaza/internal/snowid"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/topic"
)

// Options configure a [Hub]. The zero value is a hub with in-memory history,
// the system clock, no publish rate cap and no authorization. New reads an
// Options once and keeps no reference to it.
type Options struct {
	// Store keeps the history. Nil means a history.NewMemory store with the
	// default retention and Clock, which the Hub owns and closes. A Store
	// passed in stays open when the Hub closes.
	Store history.Store

	// NodeID is the snowflake node of the hub's message ids, 0 to 1023.
	// Hubs that share a Store must have different NodeIDs. Zero means node 0.
	NodeID int64

	// Clock tells the time for ids, timestamps, rate caps and the
	// deduplication window. Nil means pubsub.SystemClock{}.
	Clock pubsub.Clock

	// PublishRate caps publishes per room and topic, in messages per second,
	// for all clients together. A publish over the cap fails with
	// RATE_LIMIT_EXCEEDED and a RetryAfter. Zero means no cap.
	PublishRate float64

	// PublishBurst is how many publishes per room and topic may arrive at
	// once when PublishRate is set. Zero means ceil(PublishRate).
	PublishBurst int

	// Authorize, when set, is asked before every publish, subscribe and
	// history request. Returning a *pubsub.Error fails the request with that
	// error; any other error fails it with PERMISSION_DENIED wrapping it. It
	// is called concurrently and should not block. Nil means everything is
	// allowed.
	Authorize func(ctx context.Context, a pubsub.Access) error

	// QueueBytes bounds how far each connection may fall behind: the bytes
	// of the messages waiting for it beyond the ChannelSlots (128) its
	// Messages channel holds, each counted as the lengths of its payload,
	// topic, sender, recipients and metadata plus MessageOverhead. A message
	// that would take a connection beyond its bound drops the connection
	// instead, with SLOW_CONSUMER; other connections are not affected. The
	// backlog grows on demand, so only a connection that falls behind holds
	// that much. A connection may ask for another bound
	// (pubsub.ConnectRequest.QueueBytes), as transport/network's server
	// does for its clients. Zero means DefaultQueueBytes (1 MiB).
	QueueBytes int

	// DedupWindow is how long the hub remembers a publish's idempotency key:
	// a publish repeating the room, topic, client and key of a publish
	// confirmed within the window is confirmed with the same message and not
	// published again. Zero means 2 minutes.
	//
	// The window outlives the hub when Store keeps keys (a
	// history.KeyStore, as both stores of package history are) and the
	// publish was persisted: the key is committed with the message, and a
	// hub opened later on the same Store confirms a retry of it, within the
	// window, with the stored message. That is what makes a retry safe
	// after a crash between the commit and the reply. The keys of publishes
	// kept out of history (Persist(false)) live in memory only. While the
	// Store cannot read a topic's keys, keyed publishes to that topic fail
	// with INTERNAL_ERROR rather than risk a duplicate.
	DedupWindow time.Duration

	// DedupKeys bounds the idempotency keys remembered per room and topic:
	// beyond it the oldest are forgotten even within DedupWindow, so memory
	// stays bounded however fast a topic is published to. A retry comes
	// within seconds; it is missed only if more than DedupKeys keyed
	// publishes reached its topic in between. A hub opened on a Store that
	// keeps keys reads back at most this many per topic. Zero means 65536.
	DedupKeys int

	// PublishPerMinute caps publishes per room and topic in any rolling
	// minute, for all clients together, counted in one-second buckets (no
	// double burst at a minute's boundary). A publish over the cap fails
	// with RATE_LIMIT_EXCEEDED and a RetryAfter. With a Broker the minute
	// is counted for every hub on it (Broker.Allow), so the cap holds
	// however the clients spread over the nodes. Zero means no cap.
	PublishPerMinute int

	// Broker, when set, makes the hub one node of several that behave as
	// one hub: the Broker confirms every publish (deduplication, ids,
	// history), delivers every node's messages, keeps the history and
	// leases the node id. See [Broker]. Store and NodeID must then be
	// left zero. The hub does not close the Broker: close it after the
	// hub. Nil means a hub on its own, in process.
	//
	// PublishRate, a token bucket refilled continuously, is kept by each
	// node for the publishes it receives: a cluster-wide bucket would need
	// every node's clock in every decision. Use PublishPerMinute for a cap
	// that holds across nodes.
	Broker Broker

	// MaxSubscriptions is the most topics and patterns one connection may
	// subscribe to; one more fails with TOO_MANY_SUBSCRIPTIONS. Zero means
	// no limit.
	MaxSubscriptions int
}

// Defaults for zero Options fields.
const (
	// DefaultQueueBytes lets a connection fall 1 MiB behind: thousands of
	// small messages, or 32 of the largest, before it is dropped as a slow
	// consumer. It is the per-client queue of Centrifuge; NATS allows a
	// client 64 MiB, but a hub serving many thousands of connections
	// should not let each of them pin that much.
	DefaultQueueBytes  = 1 << 20
	DefaultDedupWindow = 2 * time.Minute
	DefaultDedupKeys   = 1 << 16
)

// Stats are a hub's counters since it was created: a snapshot copied out by
// [Hub.Stats], a plain value that no one else changes. The zero value is a
// hub that has done nothing.
type Stats struct {
	Connections   int    // live connections
	Published     uint64 // messages confirmed, not counting deduplicated repeats
	Delivered     uint64 // messages put in a connection's queue
	CapDropped    uint64 // messages a subscription rate cap dropped
	SlowConsumers uint64 // connections dropped because their queue reached its bound
	Deduplicated  uint64 // publishes answered from the idempotency window
	RateLimited   uint64 // publishes refused by Options.PublishRate
}

// Hub is an in-process hub. Create one with [New]; the zero value is not
// usable. A Hub is safe for concurrent use.
type Hub struct {
	store    history.Store
	pipe     history.Pipeliner // store, when it pipelines commits
	ownStore bool
	// keys is the store when it keeps idempotency keys and may hold some
	// from an earlier hub; nil for a store the hub created. Until
	// keysUntil (Unix nanoseconds: the hub's start plus its window), the
	// first keyed publish to a topic loads that topic's keys from it.
	keys       history.KeyStore
	keysUntil  int64
	clock      pubsub.Clock
	ids        *snowid.Generator
	authorize  func(context.Context, pubsub.Access) error
	pubRate    rate.Limit // zero: no cap
	pubBurst   int
	queueBytes int
	dedup      time.Duration
	dedupKeys  int // Options.DedupKeys
	maxSubs    int
	perMinute  int                // Options.PublishPerMinute
	minute     ratewindow.Limiter // its windows without a broker

	// broker is Options.Broker, or nil. Its subscriptions are counted in
	// bsubs, by room and topic or pattern, and the connections are known
	// to it by origin: token and a number.
	broker   Broker
	bmu      sync.Mutex
	bsubs    map[string]*brokerSub
	origins  sync.Map // origin → *conn
	token    string
	nextConn atomic.Uint64

	// roomKeep is how long an empty room keeps its topics (idempotency
	// keys, publish rate state) before it is forgotten.
	roomKeep time.Duration

	seed maphash.Seed // for idempotency key hashes

	// afterCommit, set only by tests, is called with every persisted
	// message once the store has committed it, before the publish is
	// fanned out and answered.
	afterCommit func(*pubsub.Message)

	closed atomic.Bool
	timers sync.WaitGroup // armed rate cap timers

	mu    sync.Mutex
	rooms map[string]*room
	idle  []idleRoom // rooms that became empty, oldest first

	stats struct {
		connections   atomic.Int64
		published     atomic.Uint64
		delivered     atomic.Uint64
		capDropped    atomic.Uint64
		slowConsumers atomic.Uint64
		deduplicated  atomic.Uint64
		rateLimited   atomic.Uint64
	}
}

var _ pubsub.Transport = (*Hub)(nil)

// room is the hub's state for one room.
type room struct {
	name string

	// Guarded by Hub.mu.
	conns   map[*conn]struct{}
	idleGen uint64 // bumped whenever the room gains a connection

	topics    sync.Map     // topic name → *topicState
	sweepMu   sync.Mutex   // held by maybeSweep
	nextSweep atomic.Int64 // Unix nanoseconds of the next sweep

	patMu    sync.Mutex                     // serializes writers of patterns
	patterns atomic.Pointer[[]*patternConn] // copy on write
}

// patternConn holds one connection's pattern subscriptions, oldest first.
// It is immutable once published in room.patterns.
type patternConn struct {
	c    *conn
	subs []*sub
}

type idleRoom struct {
	r   *room
	at  time.Time
	gen uint64
}

// New returns a hub configured by opts. It reads the highest id in the
// store, so that it never hands out an id at or below it. It reads no
// idempotency keys: a topic's are read when the first keyed publish
// reaches it (see Options.DedupWindow).
func New(opts Options) (*Hub, error) {
	switch {
	case opts.NodeID < 0 || opts.NodeID > snowid.MaxNode:
		return nil, fmt.Errorf("memory: NodeID %d is outside 0 to %d", opts.NodeID, snowid.MaxNode)
	case !(opts.PublishRate >= 0) || math.IsInf(opts.PublishRate, 0):
		return nil, fmt.Errorf("memory: PublishRate %v is not a finite number ≥ 0", opts.PublishRate)
	case opts.PublishBurst < 0:
		return nil, fmt.Errorf("memory: negative PublishBurst %d", opts.PublishBurst)
	case opts.QueueBytes < 0:
		return nil, fmt.Errorf("memory: negative QueueBytes %d", opts.QueueBytes)
	case opts.DedupWindow < 0:
		return nil, fmt.Errorf("memory: negative DedupWindow %v", opts.DedupWindow)
	case opts.MaxSubscriptions < 0:
		return nil, fmt.Errorf("memory: negative MaxSubscriptions %d", opts.MaxSubscriptions)
	case opts.PublishPerMinute < 0:
		return nil, fmt.Errorf("memory: negative PublishPerMinute %d", opts.PublishPerMinute)
	case opts.Broker != nil && opts.Store != nil:
		return nil, errors.New("memory: Store and Broker are both set: with a Broker, history is the Broker's")
	case opts.Broker != nil && opts.NodeID != 0:
		return nil, errors.New("memory: NodeID and Broker are both set: with a Broker, the node id is the one it leased")
	}
	if opts.Broker != nil {
		opts.Store = opts.Broker.History()
		opts.NodeID = int64(opts.Broker.NodeID())
	}
	ids, err := snowid.New(opts.NodeID)
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	h := &Hub{
		store:      opts.Store,
		clock:      opts.Clock,
		ids:        ids,
		authorize:  opts.Authorize,
		queueBytes: opts.QueueBytes,
		dedup:      opts.DedupWindow,
		dedupKeys:  opts.DedupKeys,
		maxSubs:    opts.MaxSubscriptions,
		perMinute:  opts.PublishPerMinute,
		rooms:      make(map[string]*room),
		seed:       maphash.MakeSeed(),
	}
	if h.clock == nil {
		h.clock = pubsub.SystemClock{}
	}
	if h.queueBytes == 0 {
		h.queueBytes = DefaultQueueBytes
	}
	if h.dedup == 0 {
		h.dedup = DefaultDedupWindow
	}
	if h.dedupKeys <= 0 {
		h.dedupKeys = DefaultDedupKeys
	}
	h.roomKeep = h.dedup
	if opts.PublishRate > 0 {
		h.pubRate = rate.Limit(opts.PublishRate)
		h.pubBurst = opts.PublishBurst
		if h.pubBurst == 0 {
			h.pubBurst = int(math.Ceil(opts.PublishRate))
		}
		// An empty room keeps its rate state until the bucket would be full.
		refill := time.Duration(float64(h.pubBurst) / opts.PublishRate * float64(time.Second))
		h.roomKeep = max(h.roomKeep, refill)
	}
	if h.store == nil {
		h.store = history.NewMemory(history.Options{Clock: h.clock})
		h.ownStore = true
	}
	floor, err := h.store.MaxID(context.Background())
	if err != nil {
		if h.ownStore {
			h.store.Close()
		}
		return nil, fmt.Errorf("memory: reading the store's highest id: %w", err)
	}
	h.ids.SetFloor(floor)
	if opts.Broker != nil {
		// The Broker deduplicates and stores: none of the hub's own.
		h.broker = opts.Broker
		h.bsubs = make(map[string]*brokerSub)
		h.token = anonID()[len("anon-"):] + "."
		h.broker.Attach(Receiver{Deliver: h.deliver, Missed: h.missed, Propose: h.propose})
		return h, nil
	}
	h.pipe, _ = h.store.(history.Pipeliner)
	if ks, ok := h.store.(history.KeyStore); ok && !h.ownStore {
		h.keys = ks
		h.keysUntil = h.clock.Now().Add(h.dedup).UnixNano()
	}
	return h, nil
}

// Connect opens a connection to req.Room for req.ClientID, with a delivery
// queue bounded by req.QueueBytes when it is positive and by
// Options.QueueBytes otherwise. The room name follows the rules of topic
// names; an invalid one fails with INVALID_REQUEST. An empty ClientID gets a random one ("anon-" and 16 hex
// digits). Connect fails with NETWORK_ERROR after Close. If ctx is done it
// returns an error that wraps ctx.Err().
func (h *Hub) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxErr("connect", err)
	}
	if err := topic.Check(req.Room); err != nil {
		return nil, &pubsub.Error{Code: pubsub.CodeInvalidRequest, Message: fmt.Sprintf("invalid room name %q", req.Room), Err: err}
	}
	id := req.ClientID
	if id == "" {
		id = anonID()
	} else if err := pubsub.CheckClientID(id); err != nil {
		return nil, err
	}
	c := &conn{
		h:      h,
		id:     id,
		idHash: maphash.String(h.seed, id),
		done:   make(chan struct{}),
		subs:   make(map[string]*sub),
		bound:  h.queueBytes,
	}
	c.q.ch = make(chan *pubsub.Message, ChannelSlots)
	if h.broker != nil {
		c.origin = h.newOrigin()
		h.origins.Store(c.origin, c)
	}
	if req.QueueBytes > 0 {
		c.bound = req.QueueBytes
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed.Load() {
		if c.origin != "" {
			h.origins.Delete(c.origin)
		}
		return nil, errHubClosed()
	}
	r := h.rooms[req.Room]
	if r == nil {
		r = &room{name: req.Room, conns: make(map[*conn]struct{})}
		h.rooms[req.Room] = r
	}
	r.conns[c] = struct{}{}
	r.idleGen++
	c.r = r
	h.stats.connections.Add(1)
	h.pruneIdle(h.clock.Now())
	return c, nil
}

// Disconnect drops every live connection of clientID in room as a network
// failure would: their Done channels close and Err reports NETWORK_ERROR. It
// returns how many it dropped. It is meant for testing reconnects.
func (h *Hub) Disconnect(room, clientID string) int {
	h.mu.Lock()
	var cs []*conn
	if r := h.rooms[room]; r != nil {
		for c := range r.conns {
			if c.id == clientID {
				cs = append(cs, c)
			}
		}
	}
	h.mu.Unlock()
	n := 0
	for _, c := range cs {
		if c.end(&pubsub.Error{Code: pubsub.CodeNetworkError, Message: "disconnected by the hub"}, false) {
			c.teardown()
			n++
		}
	}
	return n
}

// Stats returns the hub's counters. Each is read atomically, but not all at
// the same instant.
func (h *Hub) Stats() Stats {
	return Stats{
		Connections:   int(h.stats.connections.Load()),
		Published:     h.stats.published.Load(),
		Delivered:     h.stats.delivered.Load(),
		CapDropped:    h.stats.capDropped.Load(),
		SlowConsumers: h.stats.slowConsumers.Load(),
		Deduplicated:  h.stats.deduplicated.Load(),
		RateLimited:   h.stats.rateLimited.Load(),
	}
}

// Ready reports whether the hub can serve publishes, for a readiness
// probe: nil, or why not. A hub without a Broker is ready until it is
// closed; one with a Broker is ready while the Broker is (it can reach the
// shared state) and holds its node id lease.
func (h *Hub) Ready(ctx context.Context) error {
	if h.closed.Load() {
		return errHubClosed()
	}
	if h.broker == nil {
		return nil
	}
	select {
	case <-h.broker.Lost():
		return &pubsub.Error{Code: pubsub.CodeInternal, Message: "memory: node id lease lost", Err: ErrLeaseLost}
	default:
	}
	return h.broker.Ready(ctx)
}

// Close drops every connection (Err reports NETWORK_ERROR "hub closed"),
// waits for publishes in progress and rate cap timers, and closes the store
// if the hub created it. Later calls to Connect fail with NETWORK_ERROR.
// Close is idempotent; calls after the first return nil.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed.Swap(true) {
		h.mu.Unlock()
		return nil
	}
	var cs []*conn
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
		for c := range r.conns {
			cs = append(cs, c)
		}
	}
	h.mu.Unlock()
	for _, c := range cs {
		if c.end(errHubClosed(), false) {
			c.teardown()
		}
	}
	// A publish holds its topic's lock from its closed check to its end,
	// or joins the topic's chain under it, so taking every lock once and
	// then waiting for each chain waits for those in progress.
	for _, r := range rooms {
		r.topics.Range(func(_, v any) bool {
			t := v.(*topicState)
			t.mu.Lock()
			tail := t.tail
			t.mu.Unlock()
			if tail != nil {
				<-tail
			}
			return true
		})
	}
	h.timers.Wait()
	if h.ownStore {
		return h.store.Close()
	}
	return nil
}

// leave forgets c, which has ended and dropped its subscriptions.
func (h *Hub) leave(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := c.r
	if _, ok := r.conns[c]; !ok {
		return
	}
	delete(r.conns, c)
	if c.origin != "" {
		h.origins.Delete(c.origin)
	}
	h.stats.connections.Add(-1)
	now := h.clock.Now()
	if len(r.conns) == 0 {
		h.idle = append(h.idle, idleRoom{r: r, at: now, gen: r.idleGen})
	}
	h.pruneIdle(now)
}

// pruneIdle forgets rooms that have been empty for roomKeep: by then their
// idempotency keys have expired and their publish rate buckets are full.
// Call it with h.mu held.
func (h *Hub) pruneIdle(now time.Time) {
	for len(h.idle) > 0 {
		e := h.idle[0]
		if now.Sub(e.at) < h.roomKeep {
			return
		}
		h.idle[0] = idleRoom{}
		h.idle = h.idle[1:]
		if e.r.idleGen == e.gen && len(e.r.conns) == 0 && h.rooms[e.r.name] == e.r {
			delete(h.rooms, e.r.name)
		}
	}
	if len(h.idle) == 0 {
		h.idle = nil
	}
}

// allow runs Options.Authorize.
func (h *Hub) allow(ctx context.Context, a pubsub.Access) error {
	if h.authorize == nil {
		return nil
	}
	err := h.authorize(ctx, a)
	if err == nil {
		return nil
	}
	if perr := (*pubsub.Error)(nil); errors.As(err, &perr) {
		return err
	}
	return &pubsub.Error{Code: pubsub.CodePermissionDenied, Err: err}
}

// lockTopic returns the state of topic name in r, creating it if need be,
// with its lock held.
func (r *room) lockTopic(name string) *topicState {
	for {
		v, ok := r.topics.Load(name)
		if !ok {
			v, _ = r.topics.LoadOrStore(name, &topicState{name: name})
		}
		t := v.(*topicState)
		t.mu.Lock()
		if !t.dead {
			return t
		}
		t.mu.Unlock()
	}
}

func errHubClosed() error {
	return &pubsub.Error{Code: pubsub.CodeNetworkError, Message: "hub closed"}
}

// ctxErr reports that op was not started because its context is done. The
// result wraps err, so errors.Is(result, context.Canceled) works.
func ctxErr(op string, err error) error {
	return fmt.Errorf("memory: %s: %w", op, err)
}

func anonID() string {
	var b [8]byte
	rand.Read(b[:])
	return "anon-" + hex.EncodeToString(b[:])
}
