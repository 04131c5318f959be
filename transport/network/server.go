package network

import (
	"context"
	"crypto/rand"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
)

// Server serves a pubsub.Transport, normally a memory.Hub, to clients in other
// processes and browsers, on the routes of the package documentation. It is
// an http.Handler; mount it at the root of a mux or under a prefix with
// http.StripPrefix.
//
// Create one with [NewServer]; the zero value is not usable. A Server is safe
// for concurrent use. Call [Server.Shutdown] to end its connections: they
// are hijacked from net/http, so http.Server.Shutdown does not see them.
type Server struct {
	t        pubsub.Transport
	opts     Options
	mux      *http.ServeMux
	cache    encodeCache // "messages" frames
	sseCache encodeCache // SSE events
	keyMAC   []byte      // secret for the client ids of bare keys

	mu       sync.Mutex
	conns    map[*serverConn]struct{}
	streams  map[*sseStream]struct{}
	shutdown bool
	beat     pubsub.Timer // the heartbeat; nil while there is no connection
	wg       sync.WaitGroup
}

// NewServer returns a Server that serves t with opts. It starts nothing: the
// Server does its work in the goroutines of the requests it handles and of
// the connections they open.
func NewServer(t pubsub.Transport, opts Options) *Server {
	s := &Server{
		t:       t,
		opts:    opts.withDefaults(),
		mux:     http.NewServeMux(),
		conns:   make(map[*serverConn]struct{}),
		streams: make(map[*sseStream]struct{}),
	}
	if opts.Keys != nil {
		s.opts.Authenticate = s.authenticateKeys
		s.keyMAC = slices.Clone(opts.KeySecret)
		if len(s.keyMAC) == 0 {
			s.keyMAC = make([]byte, 32)
			_, _ = rand.Read(s.keyMAC)
		}
	}
	s.sseCache.encode = appendEvent
	s.routes()
	return s
}

// routes registers every route of the server. Paths start with the room;
// each route is a Go 1.22 ServeMux pattern.
func (s *Server) routes() {
	s.mux.HandleFunc("GET /{room}/ws", s.serveWebSocket)
	s.mux.HandleFunc("POST /{room}/pubsub/{topic}/publish", s.servePublish)
	s.mux.HandleFunc("GET /{room}/pubsub/{topic}/subscribe", s.serveSSE)
	s.mux.HandleFunc("GET /{room}/pubsub/{topic}/ws", s.serveTopicSocket)
	s.mux.HandleFunc("GET /{room}/pubsub/{topic}/client", s.serveClientSocketCreate)
	s.mux.HandleFunc("GET /{room}/pubsub/{topic}/history", s.serveHistory)
	s.mux.HandleFunc("GET /{room}/s/{token}", s.serveClientSocket)
	// Legacy aliases.
	s.mux.HandleFunc("POST /{room}/publish/{topic}", s.servePublish)
	s.mux.HandleFunc("GET /{room}/subscribe/{topic}", s.serveSSE)
	s.mux.HandleFunc("GET /{room}/ws/subscribe/{topic}", s.serveTopicSocket)
	s.mux.HandleFunc("GET "+ScriptPath, serveScript(plazaJS, "text/javascript; charset=utf-8"))
	s.mux.HandleFunc("GET "+TypesPath, serveScript(plazaDTS, "application/typescript; charset=utf-8"))
	s.mux.HandleFunc("/", s.serveNotFound)
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// serveWebSocket upgrades GET /{room}/ws to a connection of the frame
// protocol.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	s.accept(w, r, &serverConn{room: r.PathValue("room")})
}

// accept upgrades r to a WebSocket served as c and hands the connection to
// its own goroutine, so that the request's goroutine, and the buffers
// net/http keeps with it, go away. c has its room and, for single-topic
// sockets, its topic and perhaps its identity; unless it has an identity,
// the credential comes from the request or the first frame. It reports
// whether the connection was accepted; if not, the response is written.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, c *serverConn) bool {
	if err := s.admit(); err != nil {
		fail(w, err)
		return false
	}
	c.s, c.req = s, r
	if c.preID == nil {
		c.cred, c.hasCred = credential(r)
	}
	sw := &smallBuffers{ResponseWriter: w}
	ws, err := websocket.Accept(sw, r, &websocket.AcceptOptions{
		OriginPatterns: s.opts.OriginPatterns,
		OnPongReceived: func(context.Context, []byte) { c.seen() },
	})
	if err != nil {
		s.opts.Logger.Info("network: refused WebSocket handshake", "room", c.room, "remote", r.RemoteAddr, "err", err)
		return false // Accept wrote the response
	}
	ws.SetReadLimit(s.opts.MaxFrameBytes)
	c.ws, c.nc, c.br, c.hw = ws, sw.conn, sw.br, sw.hw
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.seen()
	if !s.add(c) {
		c.cancel()
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		ws.Close(CloseGoingAway, "server is shutting down")
		return true
	}
	go c.run()
	return true
}

// credential finds the credential of an upgrade request: an Authorization
// bearer token or a token query parameter.
func credential(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		const prefix = "Bearer "
		if len(h) > len(prefix) && equalFoldASCII(h[:len(prefix)], prefix) {
			return h[len(prefix):], true
		}
		return h, true
	}
	if t := r.URL.Query().Get("token"); t != "" {
		return t, true
	}
	return "", false
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// admit reports why a new connection or event stream may not open now: the
// server is shutting down, or holds Options.MaxConnections already. The
// check is before the upgrade, so a refusal is a plain HTTP 503.
func (s *Server) admit() *pubsub.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.shutdown:
		return pubsub.Errorf(pubsub.CodeNetworkError, "server is shutting down")
	case len(s.conns)+len(s.streams) >= s.opts.MaxConnections:
		err := pubsub.Errorf(pubsub.CodeNetworkError, "server is full: %d connections and event streams", s.opts.MaxConnections)
		err.RetryAfter = time.Second
		return err
	}
	return nil
}

// add registers c and counts its reader goroutine. It reports false when the
// server is shutting down.
func (s *Server) add(c *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.armBeat()
	return true
}

// remove forgets c.
func (s *Server) remove(c *serverConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	s.idleBeat()
}

// addStream registers an event stream, whose request goroutine Shutdown
// then waits for. It reports false when the server is shutting down.
func (s *Server) addStream(st *sseStream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown {
		return false
	}
	s.streams[st] = struct{}{}
	s.wg.Add(1)
	s.armBeat()
	return true
}

// removeStream forgets an event stream whose handler is returning.
func (s *Server) removeStream(st *sseStream) {
	s.mu.Lock()
	delete(s.streams, st)
	s.idleBeat()
	s.mu.Unlock()
	s.wg.Done()
}

// armBeat starts the heartbeat if it is not running. Call it with mu held.
func (s *Server) armBeat() {
	if s.beat == nil && s.opts.Heartbeat > 0 {
		s.beat = s.opts.Clock.AfterFunc(s.opts.Heartbeat, s.heartbeat)
	}
}

// idleBeat stops the heartbeat once nothing is connected. Call it with mu
// held.
func (s *Server) idleBeat() {
	if len(s.conns) == 0 && len(s.streams) == 0 && s.beat != nil {
		s.beat.Stop()
		s.beat = nil
		// Nobody is left to receive what the caches hold.
		s.cache.sweep()
		s.cache.sweep()
		s.sseCache.sweep()
		s.sseCache.sweep()
	}
}

// goConn runs f in a goroutine that Shutdown waits for, if c is still
// registered; otherwise f does not run, since c's goroutines are ending.
func (s *Server) goConn(c *serverConn, f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// heartbeat pings every connection and drops those that have been silent
// for two heartbeats, and has every event stream send a comment. It re-arms
// itself while there are connections or streams.
func (s *Server) heartbeat() {
	now := s.opts.Clock.Now()
	s.mu.Lock()
	if s.beat == nil || s.shutdown {
		s.mu.Unlock()
		return
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	for st := range s.streams {
		st.poke()
	}
	s.beat = s.opts.Clock.AfterFunc(s.opts.Heartbeat, s.heartbeat)
	s.mu.Unlock()
	s.cache.sweep()
	s.sseCache.sweep()
	dead := now.Add(-2 * s.opts.Heartbeat).UnixNano()
	for _, c := range conns {
		if c.lastSeen.Load() <= dead {
			s.opts.Logger.Warn("network: dropping silent connection", "room", c.room, "client", c.clientID())
			c.drop()
			continue
		}
		if c.pinging.CompareAndSwap(false, true) {
			s.goConn(c, func() {
				defer c.pinging.Store(false)
				// Ping writes under a deadline, then waits until the pong
				// arrives (OnPongReceived records it) or the connection
				// closes.
				_ = c.writing(func() error { return c.ws.Ping(context.Background()) })
			})
		}
	}
}

// Shutdown stops accepting connections and event streams, lets every
// connection finish the request it is handling, closes it with
// CloseGoingAway (with a close handshake), ends every event stream with an
// error event (NETWORK_ERROR) and waits until all their goroutines are done,
// or until ctx is done, in which case it cuts the remaining connections off
// and returns ctx's error. Plain HTTP requests are left to the
// http.Server's own Shutdown. It does not close the transport. Call it
// once; later calls wait the same way.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	if s.beat != nil {
		s.beat.Stop()
		s.beat = nil
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	streams := make([]*sseStream, 0, len(s.streams))
	for st := range s.streams {
		st.end(pubsub.Errorf(pubsub.CodeNetworkError, "server is shutting down"))
		streams = append(streams, st)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.goAway()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.drop()
		}
		for _, st := range streams {
			st.cancel()
		}
		<-done
		return ctx.Err()
	}
}

// Stats are a server's gauges and counters.
type Stats struct {
	Connections   int    // open WebSocket connections
	Streams       int    // open Server-Sent Events streams
	ClientSockets int    // temporary client sockets remembered; zero unless Options.Sockets has a Len method, as a MemorySocketStore does
	Encoded       uint64 // messages encoded for WebSockets, once per publish
	EncodedEvents uint64 // messages encoded as SSE events, once per publish
}

// Stats returns the server's current figures.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n, m := len(s.conns), len(s.streams)
	s.mu.Unlock()
	sockets := 0
	if l, ok := s.opts.Sockets.(interface{ Len() int }); ok {
		sockets = l.Len()
	}
	return Stats{
		Connections:   n,
		Streams:       m,
		ClientSockets: sockets,
		Encoded:       s.cache.encodes.Load(),
		EncodedEvents: s.sseCache.encodes.Load(),
	}
}
