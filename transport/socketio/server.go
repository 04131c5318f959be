package socketio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/plazahq/plaza/internal/ratewindow"
	"github.com/plazahq/plaza/pubsub"
)

// Options configure a [Server]. The zero value serves same-origin browsers
// and non-browser clients with the defaults below.
type Options struct {
	// PublishPerMinute caps each app's POST /publish requests over a rolling
	// minute: one beyond it fails with RATE_LIMIT_EXCEEDED (HTTP 429) and a
	// Retry-After of the seconds until the oldest publish of the window
	// leaves it. App.PublishPerMinute overrides it per app. The window runs
	// on Clock. Zero means DefaultPublishPerMinute; negative means no cap.
	PublishPerMinute int

	// OriginPatterns lists the browser origins, besides the server's own
	// host, that may connect with Socket.IO, as host patterns for
	// path.Match ("localhost:*", "*.example.com"), or with a scheme
	// ("https://app.example.com"). A Socket.IO request from another origin
	// gets 403, on WebSocket and polling alike; allowed origins get the CORS
	// headers polling needs. Requests without an Origin header (non-browser
	// clients) are always allowed. Nil means same-origin only.
	OriginPatterns []string

	// MaxSubscriptions is the most channels one Socket.IO client may
	// subscribe to at once; one more fails with TOO_MANY_SUBSCRIPTIONS.
	// Zero means 100; negative means no limit.
	MaxSubscriptions int

	// SendQueue is the most packets that may wait for one Socket.IO client
	// while its connection is busy (or, with polling, until its next poll).
	// A client found with more is disconnected, as a lost connection would
	// be: it reconnects and recovers what it missed from history (see
	// RecoveryWindow). Zero means 1024.
	SendQueue int

	// RecoveryWindow is how long the subscriptions of a client whose
	// connection was lost are kept for it: a socket.io-client that
	// reconnects within it is subscribed again to its channels and receives
	// the messages it missed, from the hub's history (Socket.IO's
	// connection state recovery). Zero means 2 minutes, Socket.IO's
	// default; negative turns recovery off.
	RecoveryWindow time.Duration

	// RecoveryLimit is the most missed messages a recovering client
	// receives per channel: the newest ones. Zero means 250.
	RecoveryLimit int

	// DefaultEvent is the Socket.IO event under which a Plaza message
	// without metadata "event" reaches Socket.IO clients. Empty means
	// DefaultEvent ("message").
	DefaultEvent string

	// PublisherID is the client id under which POST /publish publishes on
	// the hub: the From of those messages. ListenerID is the client id of
	// the one hub connection per app that receives the messages of every
	// channel its Socket.IO clients subscribed to; a message published
	// under ListenerID reaches no Socket.IO client (no self-echo). Empty
	// means "publish-api" and "socketio".
	PublisherID, ListenerID string

	// Token, when set, returns the credentials of the hub connections of
	// an app (pubsub.ConnectRequest.Token), for transports that
	// authenticate, such as a network.Client. Nil means none.
	Token func(appID string) string

	// Clock tells the time for the publish window and recovery. Nil means
	// pubsub.SystemClock{}.
	Clock pubsub.Clock

	// Logger receives refused connections and publishes at Info, and
	// errors of the hub connections at Warn. Nil means nothing is logged.
	Logger *slog.Logger
}

// Defaults for zero Options fields.
const (
	DefaultPublishPerMinute = 600
	DefaultMaxSubscriptions = 100
	DefaultSendQueue        = 1024
	DefaultRecoveryWindow   = 2 * time.Minute
	DefaultRecoveryLimit    = 250
	DefaultPublisherID      = "publish-api"
	DefaultListenerID       = "socketio"
)

func (o Options) withDefaults() Options {
	if o.PublishPerMinute == 0 {
		o.PublishPerMinute = DefaultPublishPerMinute
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.SendQueue <= 0 {
		o.SendQueue = DefaultSendQueue
	}
	if o.RecoveryWindow == 0 {
		o.RecoveryWindow = DefaultRecoveryWindow
	}
	if o.RecoveryLimit <= 0 {
		o.RecoveryLimit = DefaultRecoveryLimit
	}
	if o.DefaultEvent == "" {
		o.DefaultEvent = DefaultEvent
	}
	if o.PublisherID == "" {
		o.PublisherID = DefaultPublisherID
	}
	if o.ListenerID == "" {
		o.ListenerID = DefaultListenerID
	}
	if o.Token == nil {
		o.Token = func(string) string { return "" }
	}
	if o.Clock == nil {
		o.Clock = pubsub.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Paths the Server answers.
const (
	// Path is where Socket.IO clients connect, the default of
	// socket.io-client; the client bundle is served beneath it, at
	// /socket.io/socket.io.js and /socket.io/socket.io.min.js.
	Path = "/socket.io/"
	// PublishPath is where backends publish.
	PublishPath = "/publish"
)

// Server serves the apps of a [Registry] to Socket.IO clients and to HTTP
// publishers, over any pubsub.Transport. See the package documentation for
// the protocol. Create one with [New]; the zero value is not usable. It is
// an http.Handler for [Path] and [PublishPath]. A Server is safe for
// concurrent use.
type Server struct {
	t    pubsub.Transport
	reg  *Registry
	opts Options

	io      *socket.Server
	engine  http.Handler
	limiter ratewindow.Limiter
	recover *sessions // nil when recovery is off

	stopWatch func()
	closed    atomic.Bool
	closeOnce sync.Once

	mu    sync.Mutex
	gates sync.Map // engine.Socket → *connectGate, until its socket connects
	// openWrites holds, for each WebSocket connection whose OPEN packet is
	// being handed to its transport, how to know it was written; see
	// handshake.go.
	openWrites sync.Map     // engine.Socket → openWrite
	openWaits  atomic.Int64 // handshakes waiting for their OPEN packet
	// testHookDrain, when set, runs after every write an Engine.IO
	// connection hands to its transport, on the writing goroutine.
	testHookDrain atomic.Pointer[func()]

	bridges    map[string]*bridge   // app → its listener
	publishers map[string]*lazyRoom // app → its publishing Room

	stats struct {
		connected     atomic.Int64
		refused       atomic.Uint64
		published     atomic.Uint64
		rateLimited   atomic.Uint64
		delivered     atomic.Uint64
		slowConsumers atomic.Uint64
		recovered     atomic.Uint64
	}
}

// Stats are a Server's counters since it was created: a snapshot copied out
// by [Server.Stats]. The zero value is a server that has done nothing.
type Stats struct {
	Connected     int    // Socket.IO clients connected now
	Refused       uint64 // connections refused by authentication
	Published     uint64 // POST /publish requests the hub confirmed
	RateLimited   uint64 // POST /publish requests refused by the per-minute cap
	Delivered     uint64 // events sent to Socket.IO clients, one per client
	SlowConsumers uint64 // clients disconnected for a full SendQueue
	Recovered     uint64 // clients whose subscriptions were recovered
}

// Stats returns the Server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connected:     int(s.stats.connected.Load()),
		Refused:       s.stats.refused.Load(),
		Published:     s.stats.published.Load(),
		RateLimited:   s.stats.rateLimited.Load(),
		Delivered:     s.stats.delivered.Load(),
		SlowConsumers: s.stats.slowConsumers.Load(),
		Recovered:     s.stats.recovered.Load(),
	}
}

// New returns a Server for the apps of reg over the hub t. Each app is a
// room of the hub, named by its App ID; each channel a topic. New reads opts
// once. Close the Server before the hub and the registry.
func New(t pubsub.Transport, reg *Registry, opts Options) (*Server, error) {
	if t == nil || reg == nil {
		return nil, errors.New("socketio: New needs a Transport and a Registry")
	}
	opts = opts.withDefaults()
	if err := pubsub.CheckClientID(opts.PublisherID); err != nil {
		return nil, fmt.Errorf("socketio: PublisherID: %w", err)
	}
	if err := pubsub.CheckClientID(opts.ListenerID); err != nil {
		return nil, fmt.Errorf("socketio: ListenerID: %w", err)
	}
	if opts.PublisherID == opts.ListenerID {
		return nil, errors.New("socketio: PublisherID and ListenerID must differ, or Socket.IO clients would never see a publish")
	}
	if err := checkEvent(opts.DefaultEvent); err != nil {
		return nil, fmt.Errorf("socketio: DefaultEvent: %w", err)
	}
	for _, p := range opts.OriginPatterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("socketio: origin pattern %q: %w", p, err)
		}
	}
	s := &Server{
		t:          t,
		reg:        reg,
		opts:       opts,
		bridges:    make(map[string]*bridge),
		publishers: make(map[string]*lazyRoom),
	}

	sopts := socket.DefaultServerOptions()
	sopts.SetServeClient(false) // the bundle is embedded: see client.go
	sopts.SetMaxHttpBufferSize(maxClientPacket)
	// Origins are checked before anything reaches the engine (see
	// ServeHTTP); what gets there may have its CORS headers.
	sopts.SetCors(&types.Cors{Origin: func(string) bool { return true }})
	if opts.RecoveryWindow > 0 {
		s.recover = newSessions(opts.RecoveryWindow, opts.Clock)
		rec := socket.DefaultConnectionStateRecovery()
		rec.SetMaxDisconnectionDuration(opts.RecoveryWindow.Milliseconds())
		rec.SetSkipMiddlewares(false) // a recovering client proves its key again
		sopts.SetConnectionStateRecovery(rec)
		sopts.SetAdapter(&adapterBuilder{s: s})
	}
	s.io = socket.NewServer(nil, sopts)
	s.io.Use(s.authenticate)
	_ = s.io.On("connection", s.onConnection)
	s.engine = s.io.ServeHandler(nil)
	_ = s.io.Engine().On("connection", s.onEngineConnection)
	_ = s.io.Engine().On("flush", s.onEngineFlush)
	_ = s.io.Engine().On("drain", s.onEngineDrain)
	s.stopWatch = reg.watch(s.appChanged)
	return s, nil
}

// maxClientPacket bounds what a Socket.IO client may send at once: clients
// only subscribe and unsubscribe.
const maxClientPacket = 64 << 10

// ServeHTTP serves Socket.IO under [Path] (with the client bundle) and
// POST [PublishPath]; anything else gets 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.closed.Load() {
		failStatus(w, http.StatusServiceUnavailable, pubsub.Errorf(pubsub.CodeNetworkError, "the server is shutting down"))
		return
	}
	switch p := r.URL.Path; {
	case p == PublishPath:
		s.servePublish(w, r)
	case strings.HasPrefix(p, Path):
		if serveClientBundle(w, r) {
			return
		}
		if !s.originAllowed(r) {
			s.opts.Logger.Info("socketio: origin refused", "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
			fail(w, pubsub.Errorf(pubsub.CodePermissionDenied, "origin %q is not allowed", clip(r.Header.Get("Origin"), 128)))
			return
		}
		s.engine.ServeHTTP(w, r)
	default:
		failStatus(w, http.StatusNotFound, pubsub.Errorf(codeNotFound, "no such route: Socket.IO is served under %s, publishes go to POST %s", Path, PublishPath))
	}
}

// originAllowed reports whether r comes from no browser, from the server's
// own host, or from an origin of Options.OriginPatterns; it follows
// coder/websocket's AcceptOptions.OriginPatterns.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, p := range s.opts.OriginPatterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}

// Close disconnects every Socket.IO client, waits for the WebSocket
// handshakes still waiting for their OPEN packet to be written (at most
// openWriteTimeout; see handshake.go), and closes the Server's hub
// connections. It waits for neither the clients nor the hub longer than ten
// seconds. It is idempotent; requests after it get 503.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.stopWatch()
		done := make(chan struct{})
		s.io.Close(func(error) { close(done) })
		<-done
		// Each wait ends by itself within openWriteTimeout of its start,
		// and an OPEN packet nobody waits for is uncounted closedWriteGrace
		// after its transport closed; what is left after both is a write
		// whose handshake never came to wait, and never will now.
		for deadline := time.Now().Add(openWriteTimeout + closedWriteGrace); s.openWaits.Load() > 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		s.openWrites.Range(func(k, v any) bool {
			if s.openWrites.CompareAndDelete(k, v) {
				v.(*openWrite).release()
			}
			return true
		})
		s.mu.Lock()
		bridges, pubs := s.bridges, s.publishers
		s.bridges, s.publishers = map[string]*bridge{}, map[string]*lazyRoom{}
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, b := range bridges {
			b.close(ctx)
		}
		for _, p := range pubs {
			p.leave(ctx)
		}
	})
	return nil
}

// appChanged is the registry's news of a rotated key or a deleted app
// (gone == ""): Socket.IO clients of the app that used a key now refused
// are disconnected, and a deleted app's hub connections close.
func (s *Server) appChanged(appID string, gone KeyKind) {
	if gone == KeyPublish {
		return // publishers present the key with every request
	}
	s.dropClients(appID)
	if gone != "" {
		return
	}
	if s.recover != nil {
		s.recover.forgetApp(appID)
	}
	s.limiter.Forget(appID)
	s.mu.Lock()
	b, p := s.bridges[appID], s.publishers[appID]
	delete(s.bridges, appID)
	delete(s.publishers, appID)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if b != nil {
		b.close(ctx)
	}
	if p != nil {
		p.leave(ctx)
	}
}

// dropClients closes the connections of app's Socket.IO clients as a
// network failure would: socket.io-client reconnects at once, and learns
// from connect_error why its key no longer works. (A Socket.IO disconnect
// would race the closing connection, and a client that read it would stay
// disconnected without a word.)
func (s *Server) dropClients(app string) {
	nsp := s.io.Sockets()
	ids, ok := nsp.Adapter().Rooms().Load(appRoom(app))
	if !ok {
		return
	}
	for _, id := range ids.Keys() {
		if sock, ok := nsp.Sockets().Load(id); ok {
			sock.Conn().Close(true)
		}
	}
}

// lazyRoom is a Room joined on first use; concurrent first uses wait for
// one Join.
type lazyRoom struct {
	ready chan struct{} // closed when room or err is set
	room  *pubsub.Room
	err   error
}

func (l *lazyRoom) leave(ctx context.Context) {
	<-l.ready
	if l.room != nil {
		_ = l.room.Leave(ctx)
	}
}

// publisher returns the Room through which POST /publish publishes for
// app, joining it on first use.
func (s *Server) publisher(ctx context.Context, app string) (*pubsub.Room, error) {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil, pubsub.Errorf(pubsub.CodeNetworkError, "the server is shutting down")
	}
	l := s.publishers[app]
	if l == nil {
		l = &lazyRoom{ready: make(chan struct{})}
		s.publishers[app] = l
		s.mu.Unlock()
		room, err := pubsub.Join(ctx, s.t, app, &pubsub.JoinOptions{ClientID: s.opts.PublisherID, Token: s.opts.Token(app)})
		s.mu.Lock()
		switch {
		case err != nil:
			if s.publishers[app] == l {
				delete(s.publishers, app)
			}
		case s.publishers[app] != l: // the app was deleted, or the server closed, meanwhile
			defer room.Leave(context.WithoutCancel(ctx))
			room, err = nil, pubsub.Errorf(pubsub.CodeUnauthenticated, "app %q was deleted", app)
		}
		l.room, l.err = room, err
		close(l.ready)
		s.mu.Unlock()
		return room, err
	}
	s.mu.Unlock()
	select {
	case <-l.ready:
	case <-ctx.Done():
		return nil, pubsub.Errorf(pubsub.CodeNetworkError, "waiting for the hub: %w", ctx.Err())
	}
	return l.room, l.err
}
