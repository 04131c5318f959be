package network

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
)

// DialOptions configure a [Client]. A nil *DialOptions means all defaults.
type DialOptions struct {
	// HTTPClient makes the WebSocket handshakes. Nil means
	// http.DefaultClient.
	HTTPClient *http.Client

	// HTTPHeader is added to every handshake request, for example an
	// Origin or a cookie. The Client sets Authorization itself when a
	// ConnectRequest has a Token.
	HTTPHeader http.Header

	// QueueBytes bounds each Conn's delivery queue: the messages received
	// and not yet taken by the Room (or read from Conn.Messages), counted
	// in bytes as they were encoded on the wire. A Conn whose queue would
	// grow past it ends with SLOW_CONSUMER, as a hub connection would; a
	// single frame is always taken into an empty queue. The queue's
	// storage grows with what waits and shrinks again, so an idle Conn
	// holds none. Zero means DefaultClientQueueBytes.
	QueueBytes int

	// QueueSize is ignored.
	//
	// Deprecated: the delivery queue is bounded in bytes, by QueueBytes.
	QueueSize int

	// MaxFrameBytes is the largest frame accepted from the server. A larger
	// one ends the Conn. Zero means 8 MiB, which holds the largest history
	// page (50 messages at the 32 KiB payload cap, with the most metadata
	// and recipients a message may carry); delivery frames stay under
	// 64 KiB plus one message.
	MaxFrameBytes int64

	// WriteTimeout bounds each frame the Client sends; a Conn whose frame
	// cannot be written in time is lost. Zero means 10 seconds.
	WriteTimeout time.Duration

	// NodeTimeout bounds how long a Connect of a Client with several nodes
	// ([NewClientURLs]) waits for one of them, from the TCP connection to
	// the server's welcome, before it counts that node as failed and tries
	// the next: a node that is down without refusing connections (a host
	// that is off, a dropped route) costs a Connect this, not its whole
	// context. It is never longer than the Connect's context allows. A
	// Client with one node waits as long as the context. Zero means 10
	// seconds.
	NodeTimeout time.Duration

	// Clock tells the time for dead-server detection: a Conn that has heard
	// nothing from the server, not even a heartbeat ping, for 2.5 times
	// the heartbeat the server announced is lost. Nil means
	// pubsub.SystemClock{}.
	Clock pubsub.Clock
}

// DefaultClientQueueBytes is the default of DialOptions.QueueBytes: 4 MiB,
// some 20,000 messages of 100-byte payloads.
const DefaultClientQueueBytes = 4 << 20

const defaultClientMaxFrame = 8 << 20

// Client is a pubsub.Transport that reaches a hub served by a [Server] in
// another process. Each Connect opens one WebSocket, to GET /{room}/ws under
// one of the Client's node URLs; the Client itself holds no connection and
// needs no closing. The Conn it returns reports a lost WebSocket as
// NETWORK_ERROR and does not reconnect: the pubsub.Room does that, by
// calling Connect again, which then lands on another node when the one it
// lost is down (see [NewClientURLs]).
//
// A ConnectRequest's Token travels as "Authorization: Bearer <token>"; an
// empty Token is sent as {"auth": ""}. Its ClientID is not sent: the server
// decides who the client is from the credentials, and Conn.ClientID reports
// its decision.
//
// Each Conn reads with one goroutine of its own and queues the messages
// that arrive, bounded in bytes by [DialOptions].QueueBytes, for its Room to
// take in batches (it is a pubsub.BatchConn); see "The Go client's receive
// path" in the package documentation.
//
// Create a Client with [NewClient] or [NewClientURLs]; the zero value is not
// usable. A Client is safe for concurrent use.
type Client struct {
	nodes []*node
	next  atomic.Uint32 // counts Connects: the rotation of the node list
	opts  DialOptions
}

// node is one server URL of a Client.
type node struct {
	base   *url.URL
	failed atomic.Int64 // when a connection to it last failed or was lost (Unix ns); zero: never
}

// nodeQuarantine is how long after a failure a node is tried only when every
// other node has failed too.
const nodeQuarantine = 30 * time.Second

var _ pubsub.Transport = (*Client)(nil)

// NewClient returns a Client for the server at rawURL: "ws://host:port", or
// with a path prefix where the Server is mounted, "wss://host/plaza". http
// and https URLs mean ws and wss. NewClient does no I/O. It is
// NewClientURLs with one URL.
func NewClient(rawURL string, opts *DialOptions) (*Client, error) {
	return NewClientURLs([]string{rawURL}, opts)
}

// NewClientURLs returns a Client for several nodes that serve the same hub,
// such as servers over one Redis (see transport/redis): each URL as
// NewClient takes it. It fails, doing no I/O, when the list is empty or a
// URL is malformed, naming it.
//
// Connect tries the nodes one at a time, each at most once and for at most
// DialOptions.NodeTimeout, and returns the first connection that opens. Successive Connects start from successive
// nodes, the first from a random one, so that the Rooms of a program, and
// the programs that share a list, spread over the nodes. A node whose
// connection failed or was lost in the last 30 seconds is tried after the
// others, so that a Room whose node died reconnects to another one. Only
// NETWORK_ERROR moves on to the next node: a refusal such as
// UNAUTHENTICATED is the same on every node and is returned at once. When
// no node can be reached, the NETWORK_ERROR names every node tried and why
// each failed.
func NewClientURLs(rawURLs []string, opts *DialOptions) (*Client, error) {
	if len(rawURLs) == 0 {
		return nil, errors.New("network: no server URL")
	}
	c := &Client{nodes: make([]*node, 0, len(rawURLs))}
	for _, raw := range rawURLs {
		u, err := parseServerURL(raw)
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, &node{base: u})
	}
	if len(c.nodes) > 1 {
		c.next.Store(rand.Uint32())
	}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.QueueBytes <= 0 {
		c.opts.QueueBytes = DefaultClientQueueBytes
	}
	if c.opts.MaxFrameBytes <= 0 {
		c.opts.MaxFrameBytes = defaultClientMaxFrame
	}
	if c.opts.WriteTimeout <= 0 {
		c.opts.WriteTimeout = DefaultWriteTimeout
	}
	if c.opts.Clock == nil {
		c.opts.Clock = pubsub.SystemClock{}
	}
	if c.opts.NodeTimeout <= 0 {
		c.opts.NodeTimeout = DefaultNodeTimeout
	}
	return c, nil
}

// DefaultNodeTimeout is the default of DialOptions.NodeTimeout.
const DefaultNodeTimeout = 10 * time.Second

// parseServerURL checks and normalizes one server URL.
func parseServerURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("network: bad server URL: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("network: server URL %q: scheme must be ws, wss, http or https", rawURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("network: server URL %q has no host", rawURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// roomURL is the WebSocket URL of a room on node n.
func (n *node) roomURL(room string) string {
	u := *n.base
	u.Path = n.base.Path + "/" + room + "/ws"
	u.RawPath = n.base.EscapedPath() + "/" + url.PathEscape(room) + "/ws"
	return u.String()
}

// Connect opens a WebSocket to room on one of the Client's nodes and
// authenticates. It returns an *pubsub.Error: UNAUTHENTICATED or
// PERMISSION_DENIED when the server refuses the credentials, NETWORK_ERROR
// when no node can be reached, or an error that wraps ctx's when ctx ends
// first.
func (c *Client) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("network: connect: %w", err)
	}
	if len(c.nodes) == 1 {
		return c.connectNode(ctx, c.nodes[0], req)
	}
	// The healthy nodes first, rotated by one more each Connect, so that
	// they share the Connects evenly; then the quarantined ones, least
	// recently failed first.
	turn := c.next.Add(1) - 1
	healthy := make([]*node, 0, len(c.nodes))
	var held []*node
	now := c.opts.Clock.Now().UnixNano()
	for _, nd := range c.nodes {
		if f := nd.failed.Load(); f != 0 && now-f < int64(nodeQuarantine) {
			held = append(held, nd)
			continue
		}
		healthy = append(healthy, nd)
	}
	order := healthy
	if len(healthy) > 1 {
		k := int(turn % uint32(len(healthy)))
		order = append(healthy[k:len(healthy):len(healthy)], healthy[:k]...)
	}
	slices.SortStableFunc(held, func(a, b *node) int { return cmp.Compare(a.failed.Load(), b.failed.Load()) })
	order = append(order, held...)
	var errs []error
	var msgs []string
	for _, nd := range order {
		conn, err := c.connectNode(ctx, nd, req)
		if err == nil {
			return conn, nil
		}
		var perr *pubsub.Error
		if ctx.Err() != nil || !errors.As(err, &perr) || perr.Code != pubsub.CodeNetworkError {
			return nil, err
		}
		errs = append(errs, err)
		msgs = append(msgs, nd.roomURL(req.Room)+": "+perr.Error())
	}
	return nil, &pubsub.Error{
		Code:    pubsub.CodeNetworkError,
		Message: fmt.Sprintf("network: no node reachable of %d tried: %s", len(order), strings.Join(msgs, "; ")),
		Err:     errors.Join(errs...),
	}
}

// connectNode opens a WebSocket to room on nd and authenticates, within
// NodeTimeout when the Client has several nodes.
func (c *Client) connectNode(ctx context.Context, nd *node, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	if len(c.nodes) == 1 {
		return c.dialNode(ctx, nd, req)
	}
	nctx, cancel := context.WithTimeout(ctx, c.opts.NodeTimeout)
	defer cancel()
	conn, err := c.dialNode(nctx, nd, req)
	if err != nil && ctx.Err() == nil && nctx.Err() != nil {
		err = c.failed(nd, lostError(fmt.Sprintf("no answer from %s within %v", nd.roomURL(req.Room), c.opts.NodeTimeout), err))
	}
	return conn, err
}

// dialNode opens a WebSocket to room on nd and authenticates.
func (c *Client) dialNode(ctx context.Context, nd *node, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	hdr := c.opts.HTTPHeader.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	if req.Token != "" {
		hdr.Set("Authorization", "Bearer "+req.Token)
	}
	cc := &clientConn{
		cl:         c,
		node:       nd,
		done:       make(chan struct{}),
		handedOut:  make(chan struct{}),
		readerDone: make(chan struct{}),
		closing:    make(chan struct{}),
		pumpDone:   make(chan struct{}),
		ready:      make(chan struct{}, 1),
		pending:    make(map[string]chan *serverFrame),
	}
	u := nd.roomURL(req.Room)
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: c.opts.HTTPClient,
		HTTPHeader: hdr,
		OnPingReceived: func(context.Context, []byte) bool {
			cc.seen()
			return true
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("network: connect: %w", ctx.Err())
		}
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			return nil, c.failed(nd, statusError(resp.StatusCode, httpErrorMessage(body)))
		}
		return nil, c.failed(nd, lostError("cannot reach "+u, err))
	}
	ws.SetReadLimit(c.opts.MaxFrameBytes)
	cc.ws = ws
	if err := cc.handshake(ctx, req.Token); err != nil {
		_ = ws.CloseNow()
		return nil, c.failed(nd, err)
	}
	nd.failed.Store(0)
	go cc.read()
	return cc, nil
}

// failed records a NETWORK_ERROR of nd, so that the next Connects try it
// last, and returns err.
func (c *Client) failed(nd *node, err error) error {
	var perr *pubsub.Error
	if len(c.nodes) > 1 && errors.As(err, &perr) && perr.Code == pubsub.CodeNetworkError {
		nd.failed.Store(max(1, c.opts.Clock.Now().UnixNano()))
	}
	return err
}

// httpErrorMessage extracts the message of a JSON error envelope, or returns
// the body as it is.
func httpErrorMessage(body []byte) string {
	var env struct {
		Error *wireError `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		return string(env.Error.Code) + ": " + env.Error.Message
	}
	return string(body)
}

// clientConn is a Conn over one WebSocket. Its reader goroutine decodes the
// frames; messages wait in a queue bounded in bytes until the Room takes
// them (Ready, Take), or until a goroutine started by the first call of
// Messages hands them to its channel one at a time.
type clientConn struct {
	cl         *Client
	node       *node
	ws         *websocket.Conn
	id         string
	done       chan struct{} // closed when the Conn ends
	readerDone chan struct{}

	// handedOut is Done's channel: closed with done or, once Messages is
	// in use, when the messages that arrived before the end have been
	// handed out on it (or at Close), so that a consumer that drains the
	// channel without blocking after Done, as the Conn contract allows,
	// gets them all.
	handedOut     chan struct{}
	handedOutOnce sync.Once

	dec messagesDecoder // the reader's

	// The delivery queue, a frame at a time: per message, only Take does
	// any work.
	qmu    sync.Mutex
	queue  []queued // from head on
	head   int
	next   int           // the first message of queue[head] that pop has not handed out
	count  int           // messages waiting
	queued int64         // bytes waiting
	ready  chan struct{} // signalled after every enqueue
	lent   []*frame      // the frames of the messages the last Take returned

	// Conn.Messages, for consumers that do not Take.
	msgsOnce  sync.Once
	msgs      chan *pubsub.Message
	pumping   atomic.Bool
	pumpDone  chan struct{}
	closing   chan struct{} // closed by Close
	closeOnce sync.Once

	serverMax int64         // largest frame the server accepts
	heartbeat time.Duration // the server's; zero: none
	lastSeen  atomic.Int64

	mu      sync.Mutex
	pending map[string]chan *serverFrame
	nextID  uint64
	lastErr *pubsub.Error // the last error frame without an id
	err     error         // why the Conn ended; set before done closes
	closed  bool          // ended by Close
	timer   pubsub.Timer
}

var _ pubsub.BatchConn = (*clientConn)(nil)

// queued is one frame in the delivery queue, with its size on the wire.
type queued struct {
	fr   *frame
	size int64
}

func (cc *clientConn) seen() {
	cc.lastSeen.Store(cc.cl.opts.Clock.Now().UnixNano())
}

// handshake authenticates and waits for the welcome.
func (cc *clientConn) handshake(ctx context.Context, token string) error {
	if token == "" {
		if err := cc.ws.Write(ctx, websocket.MessageText, appendAuth(nil, "")); err != nil {
			return cc.connectErr(ctx, err)
		}
	}
	for {
		typ, data, err := cc.ws.Read(ctx)
		if err != nil {
			return cc.connectErr(ctx, err)
		}
		if typ != websocket.MessageText {
			return pubsub.Errorf(pubsub.CodeInternal, "network: server sent a binary frame")
		}
		var f serverFrame
		if err := json.Unmarshal(data, &f); err != nil {
			return pubsub.Errorf(pubsub.CodeInternal, "network: malformed frame from server: %v", err)
		}
		switch f.Type {
		case typeWelcome:
			cc.id = f.ClientID
			cc.serverMax = f.MaxFrameBytes
			cc.heartbeat = time.Duration(f.HeartbeatMs) * time.Millisecond
			cc.seen()
			if cc.heartbeat > 0 {
				cc.mu.Lock()
				cc.timer = cc.cl.opts.Clock.AfterFunc(cc.heartbeat, cc.checkAlive)
				cc.mu.Unlock()
			}
			return nil
		case typeError:
			if f.Error != nil {
				return f.Error.err()
			}
		}
	}
}

// connectErr maps an error of the handshake phase.
func (cc *clientConn) connectErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("network: connect: %w", ctx.Err())
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return closeCodeError(ce.Code, ce.Reason)
	}
	return lostError("connection lost while connecting", err)
}

// checkAlive runs every heartbeat and ends the Conn if the server has been
// silent too long.
func (cc *clientConn) checkAlive() {
	clock := cc.cl.opts.Clock
	silent := clock.Now().Sub(time.Unix(0, cc.lastSeen.Load()))
	if silent > cc.heartbeat*5/2 {
		cc.end(pubsub.Errorf(pubsub.CodeNetworkError, "no word from the server for %v", silent.Round(time.Millisecond)), false)
		_ = cc.ws.CloseNow()
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err == nil {
		cc.timer = clock.AfterFunc(cc.heartbeat, cc.checkAlive)
	}
}

// read is the Conn's goroutine: it hands replies to their callers and
// deliveries to the queue.
func (cc *clientConn) read() {
	defer close(cc.readerDone)
	for {
		typ, r, err := cc.ws.Reader(context.Background())
		if err != nil {
			cc.lost(err)
			return
		}
		buf := readBufs.Get().(*[]byte)
		data, err := readFrame(r, (*buf)[:0])
		if err != nil {
			putReadBuf(buf, data)
			cc.lost(err)
			return
		}
		cc.seen()
		ok := typ != websocket.MessageText || cc.handle(data)
		putReadBuf(buf, data) // nothing decoded refers to data
		if !ok {
			return
		}
	}
}

// Frames are read into pooled buffers, so that a Conn holds none while it
// waits and a busy one allocates none per frame.
var readBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledRead is the largest read buffer kept for reuse: a delivery frame
// stays under 64 KiB plus one message; a larger buffer, grown for a page
// of history, goes to the garbage collector.
const maxPooledRead = 128 << 10

func putReadBuf(buf *[]byte, data []byte) {
	if cap(data) > maxPooledRead {
		return
	}
	*buf = data[:0]
	readBufs.Put(buf)
}

// readFrame appends the rest of a WebSocket message to b.
func readFrame(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, max(4096, cap(b)))
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// handle hands one text frame from the server to the call it answers or, for
// a messages frame, to the delivery queue. It returns false when the Conn
// ended because the queue was full.
func (cc *clientConn) handle(data []byte) bool {
	if fr, ok := cc.dec.decode(data); ok {
		return cc.enqueue(fr, len(data))
	}
	// A frame or a message the client cannot decode costs only itself:
	// a message comes with Err set, for the Room to report and skip; a
	// frame fails the call it answers or, when it answers none, is
	// delivered as a message with Err set.
	f, err := decodeServerFrame(data)
	if err != nil {
		perr := pubsub.Errorf(pubsub.CodeInvalidPayload, "network: cannot decode a frame from the server: %v", err)
		if f.ID != "" && cc.answer(&serverFrame{Type: typeError, ID: f.ID, Error: &wireError{Code: perr.Code, Message: perr.Message}}) {
			return true
		}
		f = serverFrame{Type: typeMessages, Messages: []pubsub.Message{{Err: perr}}}
	}
	switch {
	case f.Type == typeMessages:
		return cc.enqueue(&frame{msgs: f.Messages}, len(data))
	case f.ID != "":
		cc.answer(&f)
	case f.Type == typeError && f.Error != nil:
		cc.mu.Lock()
		cc.lastErr = f.Error.err()
		cc.mu.Unlock()
	}
	return true
}

// enqueue adds the messages of a frame of size bytes to the delivery queue.
// When they do not fit, it ends the Conn with SLOW_CONSUMER and returns
// false.
func (cc *clientConn) enqueue(fr *frame, size int) bool {
	msgs := fr.msgs
	if len(msgs) == 0 {
		return true
	}
	limit := int64(cc.cl.opts.QueueBytes)
	cc.qmu.Lock()
	if cc.queued > 0 && cc.queued+int64(size) > limit {
		waiting := cc.queued
		cc.qmu.Unlock()
		cc.end(pubsub.Errorf(pubsub.CodeSlowConsumer, "delivery queue full: %d bytes of messages wait, and %d more arrived; DialOptions.QueueBytes is %d", waiting, size, limit), false)
		_ = cc.ws.CloseNow()
		return false
	}
	cc.queue = append(cc.queue, queued{fr: fr, size: int64(size)})
	cc.count += len(msgs)
	cc.queued += int64(size)
	cc.qmu.Unlock()
	select {
	case cc.ready <- struct{}{}:
	default:
	}
	return true
}

// Ready and Take make clientConn a pubsub.BatchConn.
func (cc *clientConn) Ready() <-chan struct{} { return cc.ready }

func (cc *clientConn) Take(dst []*pubsub.Message) []*pubsub.Message {
	cc.qmu.Lock()
	defer cc.qmu.Unlock()
	for _, fr := range cc.lent { // the caller is done with them
		fr.recycle()
	}
	clear(cc.lent)
	cc.lent = cc.lent[:0]
	dst = slices.Grow(dst, cc.count)
	for _, q := range cc.queue[cc.head:] {
		msgs := q.fr.msgs[cc.next:]
		cc.next = 0
		for i := range msgs {
			dst = append(dst, &msgs[i])
		}
		if !cc.pumping.Load() {
			// Recycled once the Room is done with it; a consumer of
			// Messages keeps what it is handed.
			cc.lent = append(cc.lent, q.fr)
		}
	}
	cc.resetQueue()
	return dst
}

// pop removes the oldest message from the queue.
func (cc *clientConn) pop() (*pubsub.Message, bool) {
	cc.qmu.Lock()
	defer cc.qmu.Unlock()
	if cc.head == len(cc.queue) {
		return nil, false
	}
	q := cc.queue[cc.head]
	msgs := q.fr.msgs
	m := &msgs[cc.next]
	share := q.size / int64(len(msgs)) // each message's share of its frame's bytes
	if cc.next == 0 {
		share += q.size % int64(len(msgs))
	}
	cc.queued -= share
	cc.count--
	if cc.next++; cc.next == len(msgs) {
		cc.queue[cc.head] = queued{}
		cc.head, cc.next = cc.head+1, 0
	}
	if cc.head == len(cc.queue) {
		cc.resetQueue()
	}
	return m, true
}

// maxIdleQueue is the largest queue storage kept once the queue is empty,
// in frames.
const maxIdleQueue = 64

// resetQueue empties the queue. Call it with qmu held.
func (cc *clientConn) resetQueue() {
	clear(cc.queue[cc.head:])
	cc.queue, cc.head, cc.next, cc.count, cc.queued = cc.queue[:0], 0, 0, 0, 0
	if cap(cc.queue) > maxIdleQueue {
		cc.queue = nil
	}
}

// Messages returns a channel for consumers that do not Take: the first call
// starts a goroutine that hands the queue's messages to it one at a time,
// until Close, or until the Conn is done and the queue empty. Once it is in
// use, Done is closed when that goroutine has handed out the messages that
// arrived before the Conn ended (or at Close): a consumer that selects on
// both, and drains the channel without blocking after Done, misses none.
func (cc *clientConn) Messages() <-chan *pubsub.Message {
	cc.msgsOnce.Do(func() {
		cc.msgs = make(chan *pubsub.Message)
		cc.pumping.Store(true)
		go cc.pump()
	})
	return cc.msgs
}

func (cc *clientConn) pump() {
	defer close(cc.pumpDone)
	defer cc.handOutDone()
	for {
		m, ok := cc.pop()
		if !ok {
			select {
			case <-cc.ready:
				continue
			case <-cc.done:
				if m, ok = cc.pop(); !ok {
					return
				}
			case <-cc.closing:
				return
			}
		}
		select {
		case cc.msgs <- m:
		case <-cc.closing:
			return
		}
	}
}

// answer hands f to the call waiting for the reply with f's id, and reports
// whether there was one.
func (cc *clientConn) answer(f *serverFrame) bool {
	cc.mu.Lock()
	ch := cc.pending[f.ID]
	delete(cc.pending, f.ID)
	cc.mu.Unlock()
	if ch != nil {
		ch <- f
	}
	return ch != nil
}

// lost ends the Conn after its WebSocket failed or closed.
func (cc *clientConn) lost(err error) {
	cc.mu.Lock()
	perr := cc.lastErr
	cc.mu.Unlock()
	if perr == nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			perr = closeCodeError(ce.Code, ce.Reason)
		} else {
			perr = lostError("connection lost", err)
		}
	}
	cc.end(perr, false)
}

// end records why the Conn ended and closes Done. Only the first call acts.
func (cc *clientConn) end(err error, closed bool) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err != nil {
		return false
	}
	cc.err, cc.closed = err, closed
	if !closed {
		_ = cc.cl.failed(cc.node, err)
	}
	if cc.timer != nil {
		cc.timer.Stop()
	}
	close(cc.done)
	if !cc.pumping.Load() {
		cc.handOutDone() // else the pump does, once it has handed out the rest
	}
	return true
}

// handOutDone closes Done's channel.
func (cc *clientConn) handOutDone() {
	cc.handedOutOnce.Do(func() { close(cc.handedOut) })
}

func (cc *clientConn) ClientID() string      { return cc.id }
func (cc *clientConn) Done() <-chan struct{} { return cc.handedOut }

func (cc *clientConn) Err() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err
}

// Close closes the WebSocket with a normal close handshake and waits for the
// Conn's goroutine. It is idempotent.
func (cc *clientConn) Close() error {
	if cc.end(&pubsub.Error{Code: pubsub.CodeNotConnected, Message: "connection closed"}, true) {
		_ = cc.ws.Close(CloseNormal, "")
	} else {
		_ = cc.ws.CloseNow()
	}
	<-cc.readerDone
	cc.closeOnce.Do(func() { close(cc.closing) })
	if cc.pumping.Load() {
		<-cc.pumpDone
	}
	return nil
}

// check returns nil while the Conn is live, and otherwise the error its
// methods return.
func (cc *clientConn) check() error {
	select {
	case <-cc.done:
	default:
		return nil
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed {
		return &pubsub.Error{Code: pubsub.CodeNotConnected, Message: "connection closed"}
	}
	var perr *pubsub.Error
	if errors.As(cc.err, &perr) && perr.Code == pubsub.CodeNetworkError {
		return perr
	}
	return &pubsub.Error{Code: pubsub.CodeNetworkError, Message: "connection lost", Err: cc.err}
}

// newID returns the next request id.
func (cc *clientConn) newID() string {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.nextID++
	return strconv.FormatUint(cc.nextID, 10)
}

// call sends a request frame and waits for its reply.
func (cc *clientConn) call(ctx context.Context, op, id string, frame []byte) (*serverFrame, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("network: %s: %w", op, err)
	}
	if err := cc.check(); err != nil {
		return nil, err
	}
	ch := make(chan *serverFrame, 1)
	cc.mu.Lock()
	cc.pending[id] = ch
	cc.mu.Unlock()
	defer func() {
		cc.mu.Lock()
		delete(cc.pending, id)
		cc.mu.Unlock()
	}()
	wctx, cancel := context.WithTimeout(context.Background(), cc.cl.opts.WriteTimeout)
	err := cc.ws.Write(wctx, websocket.MessageText, frame)
	cancel()
	if err != nil {
		if err := cc.check(); err != nil {
			return nil, err
		}
		return nil, lostError(op+": write failed", err)
	}
	select {
	case f := <-ch:
		if f.Type == typeError {
			if f.Error == nil {
				return nil, pubsub.Errorf(pubsub.CodeInternal, "network: %s: error frame without an error", op)
			}
			return nil, f.Error.err()
		}
		return f, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("network: %s: %w", op, ctx.Err())
	case <-cc.done:
		return nil, cc.check()
	}
}

// Publish sends a publish frame and returns the message as the hub
// confirmed it. Invalid requests fail locally, without a round trip.
func (cc *clientConn) Publish(ctx context.Context, req pubsub.PublishRequest) (pubsub.Message, error) {
	if err := pubsub.CheckPublish(&req); err != nil {
		return pubsub.Message{}, err
	}
	id := cc.newID()
	frame := appendPublish(nil, id, &req)
	if cc.serverMax > 0 && int64(len(frame)) > cc.serverMax {
		return pubsub.Message{}, pubsub.Errorf(pubsub.CodePayloadTooLarge, "publish frame is %d bytes; the server accepts %d", len(frame), cc.serverMax)
	}
	f, err := cc.call(ctx, "publish", id, frame)
	if err != nil {
		return pubsub.Message{}, err
	}
	if f.Message == nil {
		return pubsub.Message{}, pubsub.Errorf(pubsub.CodeInternal, "network: publish reply without a message")
	}
	if f.Message.Err != nil {
		// Published, but the confirmation does not decode: only a server
		// that breaks the protocol sends one.
		return pubsub.Message{}, f.Message.Err
	}
	return *f.Message, nil
}

func (cc *clientConn) Subscribe(ctx context.Context, req pubsub.SubscribeRequest) error {
	id := cc.newID()
	_, err := cc.call(ctx, "subscribe", id, appendSubscribe(nil, id, &req))
	return err
}

func (cc *clientConn) Unsubscribe(ctx context.Context, topic string) error {
	id := cc.newID()
	_, err := cc.call(ctx, "unsubscribe", id, appendUnsubscribe(nil, id, topic))
	return err
}

func (cc *clientConn) History(ctx context.Context, req pubsub.HistoryRequest) (pubsub.HistoryPage, error) {
	id := cc.newID()
	f, err := cc.call(ctx, "history", id, appendHistoryRequest(nil, id, &req))
	if err != nil {
		return pubsub.HistoryPage{}, err
	}
	if f.Messages == nil {
		f.Messages = []pubsub.Message{}
	}
	return pubsub.HistoryPage{Messages: f.Messages, HasMore: f.HasMore}, nil
}
