package collections

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
)

// Close codes of the collections WebSocket, besides the standard ones
// (1001 when the server shuts down, 1009 for a frame over MaxFrameBytes).
// They are network's codes, with a reason that starts with the error code.
const (
	// CloseUnauthenticated (4001): the token is missing, malformed, badly
	// signed, expired or not yet valid; the reason says which.
	CloseUnauthenticated = network.CloseUnauthenticated
	// CloseTokenExpired (4003): the token expired while connected; the
	// reason is "UNAUTHENTICATED: token expired".
	CloseTokenExpired = network.CloseCredentialsExpired
	// CloseSlowConsumer (4008): the client did not read its events fast
	// enough.
	CloseSlowConsumer = network.CloseSlowConsumer
	// CloseHubEnded (4009): the hub ended the connection.
	CloseHubEnded = network.CloseHubEnded
)

// DefaultRoom is the room events travel in when Options.Room is empty.
const DefaultRoom = "collections"

// Defaults for zero Options fields.
const (
	DefaultMaxSubscriptions = 100
	DefaultHeartbeat        = 30 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxFrameBytes    = 4096
	DefaultMaxFrameRate     = 1000
)

// Options configure a [Server]. Authenticate is required; every other
// field has a default.
type Options struct {
	// Room is the room whose topics carry the events: one topic per
	// collection, named as the collection. Zero means DefaultRoom.
	Room string

	// Authenticate turns the token of the ?token= query parameter (or of
	// an "Authorization: Bearer" header) into an identity, as
	// network.Options.Authenticate does; jwtauth.Verifier.Authenticate
	// fits. An error refuses the connection: the server accepts the
	// WebSocket and closes it at once with CloseUnauthenticated and a
	// reason that says why, which browsers can read. An identity whose
	// Expires is set is closed with CloseTokenExpired when it expires.
	Authenticate func(ctx context.Context, r *http.Request, credential string) (network.Identity, error)

	// Authorize is asked before every subscribe, with
	// pubsub.Access{Action: pubsub.ActionSubscribe, Room: Room, Topic:
	// <collection>}; an error refuses that subscribe (a *pubsub.Error keeps
	// its code, anything else becomes PERMISSION_DENIED) and the connection
	// stays. jwtauth.Verifier.Authorize fits, and reads the token's
	// "topics" claim as the collections it may read. Nil means every
	// authenticated connection may read every collection.
	Authorize func(ctx context.Context, id network.Identity, a pubsub.Access) error

	// Token is passed to the hub as pubsub.ConnectRequest.Token, for a
	// Transport that needs credentials. The in-process hub needs none.
	Token string

	// MaxSubscriptions is the most collections one connection may
	// subscribe to at once; one more is refused with TOO_MANY_SUBSCRIPTIONS.
	// Zero means 100; negative means no limit.
	MaxSubscriptions int

	// Heartbeat is how often the server sends {"type":"heartbeat"} to
	// every connection. Zero means 30 seconds; negative turns heartbeats
	// off. It runs on Clock.
	Heartbeat time.Duration

	// WriteTimeout is how long one write to a connection may take; a
	// client that does not take its data in time is closed with
	// CloseSlowConsumer. It runs on the system clock. Zero means 10 seconds.
	WriteTimeout time.Duration

	// MaxFrameBytes is the largest frame a client may send; a larger one
	// closes the connection with 1009. Zero means 4096.
	MaxFrameBytes int64

	// MaxFrameRate is how many frames per second one connection may send,
	// in bursts of as many; a connection that sends faster is closed with
	// 1008 (policy violation), reason "RATE_LIMIT_EXCEEDED: …". It runs on
	// Clock. Zero means 1000; negative means no limit.
	MaxFrameRate float64

	// OriginPatterns lists the browser origins besides the server's own
	// that may connect, as websocket.AcceptOptions.OriginPatterns. Nil
	// means same-origin only; requests without Origin are always allowed.
	OriginPatterns []string

	// Clock tells the time of heartbeats and token expiry. Nil means
	// pubsub.SystemClock{}.
	Clock pubsub.Clock

	// Logger receives refused and dropped connections. Nil means nothing
	// is logged.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Room == "" {
		o.Room = DefaultRoom
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if o.MaxFrameRate == 0 {
		o.MaxFrameRate = DefaultMaxFrameRate
	}
	if o.Clock == nil {
		o.Clock = pubsub.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Server is the http.Handler of the collections WebSocket. Mount it where
// clients expect it, /api/v1/realtime/ws in the seed's layout. Each
// connection is one pubsub.Conn on the Transport, subscribed to the topics
// of the collections the client subscribed to.
//
// A Server is safe for concurrent use. Close it to end its connections.
type Server struct {
	t    pubsub.Transport
	opts Options

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a Server that serves the collection events of t. It
// fails with INVALID_REQUEST without Options.Authenticate or with an
// invalid Options.Room.
func NewServer(t pubsub.Transport, o Options) (*Server, error) {
	if t == nil {
		return nil, pubsub.Errorf(pubsub.CodeInvalidRequest, "collections: nil Transport")
	}
	if o.Authenticate == nil {
		return nil, pubsub.Errorf(pubsub.CodeInvalidRequest, "collections: Options.Authenticate is required")
	}
	o = o.withDefaults()
	if err := pubsub.CheckTopic(o.Room); err != nil {
		return nil, pubsub.Errorf(pubsub.CodeInvalidRequest, "collections: invalid Room %q", o.Room)
	}
	return &Server{t: t, opts: o, conns: make(map[*conn]struct{})}, nil
}

// Close closes every connection with 1001 (going away), refuses new
// connections and waits for the handlers to return: for each connection,
// until its client answered the close or 5 seconds passed. It is
// idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.close(websocket.StatusGoingAway, "server shutting down")
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// credential returns the token of ?token= or of an Authorization header.
func credential(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
		return strings.TrimSpace(h)
	}
	return r.URL.Query().Get("token")
}

// ServeHTTP upgrades the request to the collections WebSocket. A request
// that is not a WebSocket upgrade gets 426.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, `{"error":{"code":"NETWORK_ERROR","message":"server shutting down"}}`, http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	o := &s.opts
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: o.OriginPatterns})
	if err != nil {
		o.Logger.Info("collections: handshake refused", "remote", r.RemoteAddr, "err", err)
		return // Accept wrote the answer
	}
	ws.SetReadLimit(o.MaxFrameBytes)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	actx, acancel := context.WithTimeout(ctx, network.DefaultAuthTimeout)
	id, err := o.Authenticate(actx, r, credential(r))
	acancel()
	if err == nil && id.ClientID != "" {
		err = pubsub.CheckClientID(id.ClientID)
	}
	if err == nil && !id.Expires.IsZero() && !id.Expires.After(o.Clock.Now()) {
		err = pubsub.Errorf(pubsub.CodeUnauthenticated, "token expired")
	}
	if err != nil {
		perr := asError(err)
		if perr.Code == pubsub.CodeInternal {
			perr = &pubsub.Error{Code: pubsub.CodeUnauthenticated, Message: err.Error(), Err: err}
		}
		o.Logger.Info("collections: authentication refused", "remote", r.RemoteAddr, "err", perr)
		closeWith(ctx, ws, CloseUnauthenticated, perr, o.WriteTimeout)
		return
	}
	hc, err := s.t.Connect(ctx, pubsub.ConnectRequest{Room: o.Room, ClientID: id.ClientID, Token: o.Token})
	if err != nil {
		closeWith(ctx, ws, CloseHubEnded, asError(err), o.WriteTimeout)
		return
	}
	c := &conn{s: s, ws: ws, hc: hc, id: id, ctx: ctx, cancel: cancel, subs: make(map[string]ops)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		hc.Close()
		ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.serve()
}

// closeWith sends the error frame of err and closes ws with code and a
// reason "<CODE>: <message>".
func closeWith(ctx context.Context, ws *websocket.Conn, code websocket.StatusCode, err *pubsub.Error, timeout time.Duration) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	_ = ws.Write(wctx, websocket.MessageText, errorFrame(err, Frame{}))
	cancel()
	ws.Close(code, closeReason(err))
}

// closeReason fits "<CODE>: <message>" in the 123 bytes a close reason has.
func closeReason(err *pubsub.Error) string {
	r := string(err.Code)
	if err.Message != "" {
		r += ": " + err.Message
	}
	if len(r) > 123 {
		r = r[:120] + "..."
	}
	return r
}

// conn is one connection.
type conn struct {
	s      *Server
	ws     *websocket.Conn
	hc     pubsub.Conn
	id     network.Identity
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	subs     map[string]ops // collection → operations wanted
	hb       pubsub.Timer
	expiry   pubsub.Timer
	stopped  bool
	timers   sync.WaitGroup // running or pending timer callbacks
	closing  sync.WaitGroup // the close handshake, once started
	closeErr sync.Once
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	o := &c.s.opts
	defer c.hc.Close()
	defer c.closing.Wait()
	defer c.timers.Wait()
	defer c.stopTimers()

	c.mu.Lock()
	if !c.id.Expires.IsZero() {
		c.timers.Add(1)
		c.expiry = o.Clock.AfterFunc(c.id.Expires.Sub(o.Clock.Now()), func() {
			defer c.timers.Done()
			c.fail(CloseTokenExpired, pubsub.Errorf(pubsub.CodeUnauthenticated, "token expired"))
		})
	}
	c.mu.Unlock()
	c.armHeartbeat()

	done := make(chan struct{})
	go func() {
		defer close(done)
		c.deliver()
	}()
	c.read()
	c.cancel()
	<-done
}

// read handles client frames until the connection ends.
func (c *conn) read() {
	o := &c.s.opts
	var lim *rate.Limiter
	if o.MaxFrameRate > 0 {
		lim = rate.NewLimiter(rate.Limit(o.MaxFrameRate), max(1, int(o.MaxFrameRate)))
	}
	for {
		_, data, err := c.ws.Read(c.ctx)
		if err != nil {
			c.close(websocket.StatusNormalClosure, "") // no-op if already closing
			return
		}
		if lim != nil && !lim.AllowN(o.Clock.Now(), 1) {
			c.fail(websocket.StatusPolicyViolation, pubsub.Errorf(pubsub.CodeRateLimitExceeded, "more than %g frames per second", o.MaxFrameRate))
			return
		}
		f, err := ParseFrame(data)
		if err != nil {
			c.write(errorFrame(err, f))
			continue
		}
		switch f.Action {
		case ActionPing:
			c.write(pongFrame)
		case ActionSubscribe:
			if err := c.subscribe(f); err != nil {
				c.write(errorFrame(err, f))
				continue
			}
			c.write(statusFrame("subscribed", f.Collection))
		case ActionUnsubscribe:
			if err := c.unsubscribe(f.Collection); err != nil {
				c.write(errorFrame(err, f))
				continue
			}
			c.write(statusFrame("unsubscribed", f.Collection))
		}
	}
}

func (c *conn) subscribe(f Frame) error {
	o := &c.s.opts
	m := mask(f.Operations)
	c.mu.Lock()
	if _, ok := c.subs[f.Collection]; ok {
		c.subs[f.Collection] = m // a new filter for the same subscription
		c.mu.Unlock()
		return nil
	}
	if o.MaxSubscriptions > 0 && len(c.subs) >= o.MaxSubscriptions {
		c.mu.Unlock()
		return pubsub.Errorf(pubsub.CodeTooManySubscriptions, "at most %d subscriptions per connection", o.MaxSubscriptions)
	}
	c.mu.Unlock()
	if o.Authorize != nil {
		err := o.Authorize(c.ctx, c.id, pubsub.Access{Action: pubsub.ActionSubscribe, Room: o.Room, Topic: f.Collection, ClientID: c.id.ClientID})
		if err != nil {
			var perr *pubsub.Error
			if !errors.As(err, &perr) {
				perr = &pubsub.Error{Code: pubsub.CodePermissionDenied, Message: "may not read collection " + f.Collection, Err: err}
			}
			return perr
		}
	}
	// Only the read loop changes subs, so the count checked above holds.
	c.mu.Lock()
	c.subs[f.Collection] = m
	c.mu.Unlock()
	if err := c.hc.Subscribe(c.ctx, pubsub.SubscribeRequest{Topic: f.Collection}); err != nil {
		c.mu.Lock()
		delete(c.subs, f.Collection)
		c.mu.Unlock()
		return err
	}
	return nil
}

func (c *conn) unsubscribe(collection string) error {
	c.mu.Lock()
	_, ok := c.subs[collection]
	delete(c.subs, collection)
	c.mu.Unlock()
	if !ok {
		return nil
	}
	return c.hc.Unsubscribe(c.ctx, collection)
}

// deliver writes the hub's messages as events, in the hub's order.
func (c *conn) deliver() {
	for {
		select {
		case m := <-c.hc.Messages():
			op := Operation(m.Metadata[MetadataOperation])
			c.mu.Lock()
			want := c.subs[m.Topic]&op.bit() != 0
			c.mu.Unlock()
			if want {
				c.write(eventFrame(m, op))
			}
		case <-c.hc.Done():
			err := asError(c.hc.Err())
			code := CloseHubEnded
			if err.Code == pubsub.CodeSlowConsumer {
				code = CloseSlowConsumer
			}
			c.fail(code, err)
			return
		case <-c.ctx.Done():
			return
		}
	}
}

// write sends one frame; a write that fails or times out ends the
// connection.
func (c *conn) write(b []byte) {
	ctx, cancel := context.WithTimeout(c.ctx, c.s.opts.WriteTimeout)
	err := c.ws.Write(ctx, websocket.MessageText, b)
	cancel()
	if err != nil && c.ctx.Err() == nil {
		c.s.opts.Logger.Warn("collections: write failed", "client", c.id.ClientID, "err", err)
		c.close(CloseSlowConsumer, "SLOW_CONSUMER: write timed out")
	}
}

func (c *conn) armHeartbeat() {
	o := &c.s.opts
	if o.Heartbeat < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.timers.Add(1)
	c.hb = o.Clock.AfterFunc(o.Heartbeat, func() {
		defer c.timers.Done()
		c.write(heartbeatFrame(o.Clock.Now()))
		c.armHeartbeat()
	})
}

func (c *conn) stopTimers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.hb != nil && c.hb.Stop() {
		c.timers.Done()
	}
	if c.expiry != nil && c.expiry.Stop() {
		c.timers.Done()
	}
}

// fail sends the error frame of err and closes the connection with code,
// in the background: the close handshake waits for the client.
func (c *conn) fail(code websocket.StatusCode, err *pubsub.Error) {
	c.closeErr.Do(func() {
		c.closing.Go(func() {
			closeWith(context.Background(), c.ws, code, err, c.s.opts.WriteTimeout)
		})
	})
}

// close closes the connection with code and reason, once.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closeErr.Do(func() {
		c.closing.Go(func() { c.ws.Close(code, reason) })
	})
}
