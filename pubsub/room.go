package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/plazahq/plaza/topic"
)

// Room is one client's membership in a room: it publishes, subscribes and
// reads history through a Transport, and keeps doing so across lost
// connections.
//
// A Room owns one goroutine, which runs every handler of the Room, one at a
// time, in the order the hub confirmed the messages. A slow handler delays the
// Room's other handlers but never a publisher or another Room.
//
// All methods are safe for concurrent use, including from handlers.
type Room struct {
	t     Transport
	name  string
	opts  JoinOptions
	id    string // identity the hub assigned
	keyID string // prefix of this Room's idempotency keys
	seq   atomic.Uint64

	wireMu sync.Mutex // serializes wire subscription changes and re-subscription

	mu        sync.Mutex
	conn      Conn          // nil while reconnecting
	connReady chan struct{} // closed when conn is set
	topics    map[string]*wireTopic
	idx       atomic.Pointer[index] // topics, for the Room's goroutine
	closed    bool
	err       error // why the Room stopped, when not by Leave

	leave     chan struct{} // closed by Leave
	done      chan struct{} // closed when the Room's goroutine exits
	inHandler atomic.Bool
	left      atomic.Bool   // set by Leave, before leave is closed
	wake      chan struct{} // rate-cap timer fired
	reports   chan error    // for OnError, from goroutines other than the Room's
	timer     Timer

	// Owned by the Room's goroutine.
	holding map[*Subscription]struct{}
	fill    map[string]ID // topic → newest id handed out by gap fill

	stats roomStats
}

// wireTopic is one wire subscription and the local subscriptions it feeds.
type wireTopic struct {
	name     string
	pattern  topic.Pattern   // set when name is a pattern
	subs     []*Subscription // copy-on-write
	wireRate float64         // rate cap sent to the hub
	// lastSeen is the newest id delivered on this exact topic. Subscribe
	// sets it before the topic is indexed; after that only the Room's
	// goroutine touches it.
	lastSeen ID
}

// index is an immutable view of a Room's wire topics, so that the Room's
// goroutine finds a message's subscriptions without taking a lock.
type index struct {
	exact    map[string]indexEntry
	patterns []indexEntry
}

type indexEntry struct {
	wt   *wireTopic
	subs []*Subscription
}

// reindex publishes a new index of r.topics. Call it with r.mu held.
func (r *Room) reindex() {
	idx := &index{exact: make(map[string]indexEntry, len(r.topics))}
	for name, wt := range r.topics {
		e := indexEntry{wt: wt, subs: wt.subs}
		if wt.pattern.Wild() {
			idx.patterns = append(idx.patterns, e)
		} else {
			idx.exact[name] = e
		}
	}
	r.idx.Store(idx)
}

// Join connects to room through t and returns the Room. Join fails if the
// first connection fails; after that the Room reconnects by itself until
// Leave.
func Join(ctx context.Context, t Transport, room string, opts *JoinOptions) (*Room, error) {
	if t == nil {
		return nil, Errorf(CodeInvalidRequest, "nil Transport")
	}
	o := opts.withDefaults()
	if o.ClientID != "" {
		if err := CheckClientID(o.ClientID); err != nil {
			return nil, err
		}
	}
	conn, err := t.Connect(ctx, ConnectRequest{Room: room, ClientID: o.ClientID, Token: o.Token})
	if err != nil {
		return nil, asNetwork(err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	r := &Room{
		t:         t,
		name:      room,
		opts:      o,
		id:        conn.ClientID(),
		keyID:     hex.EncodeToString(b[:]) + ":",
		conn:      conn,
		connReady: make(chan struct{}),
		topics:    make(map[string]*wireTopic),
		leave:     make(chan struct{}),
		done:      make(chan struct{}),
		wake:      make(chan struct{}, 1),
		reports:   make(chan error, 16),
		holding:   make(map[*Subscription]struct{}),
		fill:      make(map[string]ID),
	}
	close(r.connReady)
	r.reindex()
	go r.run(conn)
	return r, nil
}

// Name returns the room's name.
func (r *Room) Name() string { return r.name }

// ClientID returns the identity the hub gave this Room: the From of every
// message it publishes.
func (r *Room) ClientID() string { return r.id }

// Publish sends payload to topic and returns the message as the hub confirmed
// it, with its id and timestamp: the same Message subscribers receive. The
// Room's own subscriptions do not receive it (no self-echo).
//
// The payload is encoded with encoding/json; a json.RawMessage is used as it
// is once checked. Invalid topics and payloads (including those nested more
// than MaxPayloadDepth levels) fail here, without a round trip, with
// INVALID_TOPIC_NAME, PAYLOAD_TOO_LARGE or INVALID_PAYLOAD. A
// publish that fails with NETWORK_ERROR is retried (JoinOptions.Retries) with
// one idempotency key, so the hub publishes it at most once.
func (r *Room) Publish(ctx context.Context, topicName string, payload any, opts ...PublishOption) (Message, error) {
	if err := CheckTopic(topicName); err != nil {
		return Message{}, err
	}
	req := PublishRequest{Topic: topicName}
	if raw, ok := payload.(json.RawMessage); ok {
		if err := CheckPayload(raw); err != nil {
			return Message{}, err
		}
		// The hub keeps the payload, so it gets a copy; the idempotency
		// key shares its allocation.
		req.Payload, req.IdempotencyKey = r.withKey(raw)
	} else {
		p, err := json.Marshal(payload)
		if err != nil {
			return Message{}, &Error{Code: CodeInvalidPayload, Message: err.Error(), Err: err}
		}
		// Valid JSON, but perhaps too large or nested too deeply.
		if err := CheckPayload(p); err != nil {
			return Message{}, err
		}
		req.Payload, req.IdempotencyKey = p, r.nextKey()
	}
	if len(opts) > 0 {
		req = withOptions(req, opts) // keeps req on the stack without options
	}
	if err := checkPublishExtras(&req); err != nil { // topic and payload checked above
		return Message{}, err
	}
	req.checked = markChecked(&req)
	var m Message
	err := r.retry(ctx, func(c Conn) error {
		var err error
		m, err = c.Publish(ctx, req)
		return err
	})
	if err != nil {
		return Message{}, err
	}
	r.stats.published.Add(1)
	return m, nil
}

func withOptions(req PublishRequest, opts []PublishOption) PublishRequest {
	r := &req
	for _, o := range opts {
		o(r)
	}
	return *r
}

// maxKeyLen bounds the length of the Room's idempotency keys: the prefix
// and a base-36 uint64.
const maxKeyLen = 48

// nextKey returns the Room's next idempotency key.
func (r *Room) nextKey() string {
	var b [maxKeyLen]byte
	return string(r.appendKey(b[:0]))
}

func (r *Room) appendKey(b []byte) []byte {
	b = append(b, r.keyID...)
	return strconv.AppendUint(b, r.seq.Add(1), 36)
}

// withKey returns a copy of payload and the Room's next idempotency key,
// both in one allocation. Neither is ever written again: the payload's
// capacity ends where the key starts.
func (r *Room) withKey(payload []byte) ([]byte, string) {
	b := make([]byte, len(payload), len(payload)+maxKeyLen)
	copy(b, payload)
	b = r.appendKey(b)
	key := b[len(payload):]
	return b[:len(payload):len(payload)], unsafe.String(unsafe.SliceData(key), len(key))
}

// GetHistory returns one page of topic's history, oldest message first. With
// no options it is the newest page; Before and After page in their direction,
// and HasMore says whether more messages lie beyond the page in that
// direction. An unused topic has an empty page, not an error.
//
// A message the transport could not decode (see Message.Err) is left out of
// the page, counted and reported to JoinOptions.OnError; when a page held
// nothing else, GetHistory goes on to the next page in the same direction, so
// that paging from the page's first or last message never gets stuck.
func (r *Room) GetHistory(ctx context.Context, topicName string, opts ...HistoryOption) (HistoryPage, error) {
	var c historyConfig
	for _, o := range opts {
		o(&c)
	}
	c.req.Topic = topicName
	if err := CheckTopic(topicName); err != nil {
		return HistoryPage{}, err
	}
	// Given means given: a limit or an anchor of zero is an error, as over
	// WebSocket and HTTP, not the default.
	if c.limitSet && c.req.Limit <= 0 {
		return HistoryPage{}, Errorf(CodeInvalidLimit, "limit %d is outside 1 to %d", c.req.Limit, MaxHistoryLimit)
	}
	if c.beforeSet && c.req.Before == 0 {
		return HistoryPage{}, Errorf(CodeInvalidHistoryOpts, `before: invalid message id "0"`)
	}
	if c.afterSet && c.req.After == 0 {
		return HistoryPage{}, Errorf(CodeInvalidHistoryOpts, `after: invalid message id "0"`)
	}
	if err := CheckHistory(&c.req); err != nil {
		return HistoryPage{}, err
	}
	if c.req.Limit == 0 {
		c.req.Limit = DefaultHistoryLimit
	}
	var page HistoryPage
	for {
		err := r.retry(ctx, func(conn Conn) error {
			var err error
			page, err = conn.History(ctx, c.req)
			return err
		})
		if err != nil {
			return HistoryPage{Messages: []Message{}}, err
		}
		var oldest, newest ID
		page.Messages, oldest, newest = r.dropUndecodable(page.Messages)
		if len(page.Messages) > 0 || !page.HasMore || oldest == 0 {
			break
		}
		// Nothing but undecodable messages, and more beyond them.
		if c.req.After != 0 {
			if newest <= c.req.After {
				break
			}
			c.req.After = newest
		} else {
			if c.req.Before != 0 && oldest >= c.req.Before {
				break
			}
			c.req.Before = oldest
		}
	}
	if page.Messages == nil {
		page.Messages = []Message{}
	}
	return page, nil
}

// dropUndecodable returns ms without the messages the transport could not
// decode, which it counts and reports, and the oldest and newest ids of
// those (zero when there were none).
func (r *Room) dropUndecodable(ms []Message) (kept []Message, oldest, newest ID) {
	for i := range ms {
		if ms[i].Err == nil {
			if kept != nil {
				kept = append(kept, ms[i])
			}
			continue
		}
		if kept == nil {
			kept = append(make([]Message, 0, len(ms)-1), ms[:i]...)
		}
		r.stats.undecodable.Add(1)
		if r.opts.OnError != nil {
			// OnError runs on the Room's goroutine.
			select {
			case r.reports <- undecodable(&ms[i]):
			default: // OnError is behind; the count still has it
			}
		}
		if id := ms[i].ID; id != 0 {
			if oldest == 0 || id < oldest {
				oldest = id
			}
			newest = max(newest, id)
		}
	}
	if kept == nil {
		return ms, 0, 0
	}
	return kept, oldest, newest
}

// undecodable is the error OnError receives for a message the transport
// could not decode.
func undecodable(m *Message) error {
	var perr *Error
	if errors.As(m.Err, &perr) {
		return perr
	}
	return &Error{Code: CodeInvalidPayload, Message: "message " + m.ID.String() + " on " + strconv.Quote(m.Topic) + " could not be decoded: " + m.Err.Error(), Err: m.Err}
}

// retry runs op on the live connection, trying again after NETWORK_ERROR (or
// while the Room is reconnecting) up to JoinOptions.Retries times.
func (r *Room) retry(ctx context.Context, op func(Conn) error) error {
	delay := r.opts.RetryDelay
	for attempt := 0; ; attempt++ {
		conn, err := r.liveConn(ctx, delay)
		if err == nil {
			err = op(conn)
			if err == nil {
				return nil
			}
			err = asNetwork(err)
		}
		if !errors.Is(err, ErrNetwork) || attempt >= r.opts.Retries || ctx.Err() != nil {
			return err
		}
		r.stats.retries.Add(1)
		if err := r.sleep(ctx, jitter(delay)); err != nil {
			return err
		}
		delay *= 2
	}
}

// liveConn returns the current connection, waiting up to wait for a
// reconnect when there is none.
func (r *Room) liveConn(ctx context.Context, wait time.Duration) (Conn, error) {
	r.mu.Lock()
	conn, ready, closed, rerr := r.conn, r.connReady, r.closed, r.err
	r.mu.Unlock()
	if closed {
		return nil, r.notConnected(rerr)
	}
	if conn != nil {
		return conn, nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ready:
		return r.liveConn(ctx, 0)
	case <-r.leave:
		return nil, r.notConnected(nil)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, Errorf(CodeNetworkError, "room %q is reconnecting", r.name)
	}
}

func (r *Room) notConnected(cause error) error {
	if cause != nil {
		return &Error{Code: CodeNotConnected, Message: "room stopped: " + cause.Error(), Err: cause}
	}
	return Errorf(CodeNotConnected, "room %q: left", r.name)
}

func (r *Room) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-r.leave:
		return r.notConnected(nil)
	}
}

// jitter returns a duration in [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + mrand.N(d/2)
}

// asNetwork maps errors that are not *Error (a transport's raw I/O error) to
// NETWORK_ERROR, and leaves *Error and context errors alone.
func asNetwork(err error) error {
	if err == nil {
		return nil
	}
	var perr *Error
	if errors.As(err, &perr) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &Error{Code: CodeNetworkError, Err: err}
}

// Leave closes the Room's connection and stops it: no handler starts after
// Leave returns, and later calls on the Room fail with NOT_CONNECTED. Leave
// waits for the Room's goroutine to finish, unless a handler is running (for
// instance, Leave was called from one), in which case that handler is the
// last to run. Leave is idempotent.
func (r *Room) Leave(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	conn := r.conn
	r.conn = nil
	for _, wt := range r.topics {
		for _, s := range wt.subs {
			s.gone.Store(true)
		}
	}
	r.topics = map[string]*wireTopic{}
	r.reindex()
	if r.timer != nil {
		r.timer.Stop()
	}
	r.mu.Unlock()
	r.left.Store(true)
	close(r.leave)
	if conn != nil {
		_ = conn.Close()
	}
	if r.inHandler.Load() {
		return nil
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Err returns why the Room stopped by itself (for example, the hub refused
// its credentials on reconnect), or nil.
func (r *Room) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Stats returns the Room's counters.
func (r *Room) Stats() RoomStats {
	return RoomStats{
		Published:   r.stats.published.Load(),
		Delivered:   r.stats.delivered.Load(),
		CapDropped:  r.stats.capDropped.Load(),
		Reconnects:  r.stats.reconnects.Load(),
		Retries:     r.stats.retries.Load(),
		GapFilled:   r.stats.gapFilled.Load(),
		Undecodable: r.stats.undecodable.Load(),
	}
}

// RoomStats counts what a Room has done since Join.
type RoomStats struct {
	Published  uint64 // messages published and confirmed
	Delivered  uint64 // handler calls
	CapDropped uint64 // messages a subscription's rate cap dropped
	Reconnects uint64 // connections re-established after a loss (and, with GapFill, the gap filled)
	Retries    uint64 // publish and history attempts repeated after NETWORK_ERROR
	GapFilled  uint64 // messages handed to handlers from history after a reconnect
	// Undecodable counts messages (live, from gap fill or in GetHistory
	// pages) and frames the transport received but could not decode; each
	// was reported to OnError and skipped (see Message.Err).
	Undecodable uint64
}

type roomStats struct {
	published, delivered, capDropped, reconnects, retries, gapFilled, undecodable atomic.Uint64
}
