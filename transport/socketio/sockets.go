package socketio

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/plazahq/plaza/pubsub"
)

// The events of the subscribe protocol.
const (
	// Sent by clients, with a channel name (or {"channel": name}) and an
	// optional acknowledgement callback.
	eventSubscribe   = "subscribe"
	eventUnsubscribe = "unsubscribe"
	// Sent by the server, with {"channel": name}.
	eventSubscribed   = "subscribed"
	eventUnsubscribed = "unsubscribed"
	// Sent by the server, with {"channel", "code", "message"}.
	eventSubscribeError = "subscribe_error"
)

// socketState is what the Server keeps for one Socket.IO client, as the
// socket's Data.
type socketState struct {
	app string

	mu       sync.Mutex
	closed   bool
	channels map[string]*socketChannel
	busy     int // subscribes in progress, counted against the limit

	queued   atomic.Int64 // packets waiting to be written
	dropping atomic.Bool  // disconnecting as a slow consumer

	// resume, set on a client whose connection state was recovered, is
	// what it held and the offset it saw last.
	resume *resumeState
}

// socketChannel is one channel a client subscribed to.
type socketChannel struct {
	sub   *channelSub
	since pubsub.ID // messages up to since came before the subscription
}

// connectGate holds back what a client sends after its CONNECT until the
// Socket.IO library has registered the client's socket. The library writes
// the CONNECT answer before it registers the socket, and drops (closing the
// connection) a packet that arrives in between; socket.io-client sends the
// emits it buffered, such as the seed's "subscribe", as soon as it reads
// that answer, so under load some clients lost their connection, and their
// subscription, right after connecting.
type connectGate struct {
	open  atomic.Bool
	ready chan struct{} // closed when open is set
	done  chan struct{} // closed when the connection closes
}

// connectGateTimeout bounds how long a packet waits at a connectGate: as
// long as authentication may take, and then the library decides.
const connectGateTimeout = joinTimeout

// onEngineConnection puts a connectGate in front of the library's handler
// of what a new Engine.IO connection receives.
func (s *Server) onEngineConnection(args ...any) {
	if len(args) == 0 {
		return
	}
	conn, ok := args[0].(engine.Socket)
	if !ok {
		return
	}
	g := &connectGate{ready: make(chan struct{}), done: make(chan struct{})}
	s.gates.Store(conn, g)
	handlers := conn.Listeners("data")
	conn.RemoveAllListeners("data")
	_ = conn.On("data", func(a ...any) {
		if !g.open.Load() && len(a) > 0 && !isConnectPacket(a[0]) {
			t := time.NewTimer(connectGateTimeout)
			select {
			case <-g.ready:
			case <-g.done:
			case <-t.C:
			}
			t.Stop()
		}
		for _, h := range handlers {
			h(a...)
		}
	})
	_ = conn.Once("close", func(...any) {
		s.gates.Delete(conn)
		close(g.done)
	})
	if hook := s.testHookDrain.Load(); hook != nil {
		_ = conn.On("drain", func(...any) { (*hook)() })
	}
}

// openGate lets through what the client of sock sent after its CONNECT.
func (s *Server) openGate(sock *socket.Socket) {
	if v, ok := s.gates.LoadAndDelete(sock.Conn()); ok {
		g := v.(*connectGate)
		g.open.Store(true)
		close(g.ready)
	}
}

// isConnectPacket reports whether data, a message of the Engine.IO
// connection, is a Socket.IO CONNECT packet.
func isConnectPacket(data any) bool {
	switch d := data.(type) {
	case string:
		return strings.HasPrefix(d, "0")
	case *types.StringBuffer:
		b := d.Bytes()
		return len(b) > 0 && b[0] == '0'
	}
	return false
}

// authenticate is the Socket.IO middleware that checks the handshake auth
// {appId, subscribeKey} of every connection, recovered ones included.
func (s *Server) authenticate(sock *socket.Socket, next func(*socket.ExtendedError)) {
	auth := sock.Handshake().Auth
	appID, _ := auth["appId"].(string)
	key, _ := auth["subscribeKey"].(string)
	perr := s.checkSubscriber(appID, key)
	if perr == nil {
		if st, ok := sock.Data().(*socketState); ok && st.app != appID {
			perr = pubsub.Errorf(pubsub.CodePermissionDenied, "the recovered session belongs to another app")
		}
	}
	if perr != nil {
		s.stats.refused.Add(1)
		s.opts.Logger.Info("socketio: connection refused", "app", clip(appID, 64), "remote", sock.Handshake().Address, "err", perr)
		next(socket.NewExtendedError(perr.Message, map[string]any{"code": string(perr.Code)}))
		return
	}
	if _, ok := sock.Data().(*socketState); !ok {
		sock.SetData(&socketState{app: appID, channels: make(map[string]*socketChannel)})
	}
	next(nil)
}

// checkSubscriber checks the credentials of a Socket.IO connection.
func (s *Server) checkSubscriber(appID, key string) *pubsub.Error {
	if appID == "" || key == "" {
		return pubsub.Errorf(pubsub.CodeUnauthenticated, `missing credentials: connect with io(url, {auth: {appId: "…", subscribeKey: "…"}})`)
	}
	_, kind, err := s.reg.Authenticate(appID, key)
	switch {
	case errors.Is(err, ErrUnknownApp):
		return pubsub.Errorf(pubsub.CodeUnauthenticated, "unknown appId %q", clip(appID, 64))
	case errors.Is(err, ErrWrongKey):
		return pubsub.Errorf(pubsub.CodeUnauthenticated, "wrong subscribeKey for app %q", appID)
	case err != nil:
		return asError(err)
	case kind != KeySubscribe:
		return pubsub.Errorf(pubsub.CodePermissionDenied, "this is the publish key of app %q, which must stay on servers: clients connect with the subscribe key (sub_live_…)", appID)
	}
	return nil
}

// onConnection sets up a client that passed authenticate.
func (s *Server) onConnection(args ...any) {
	sock, ok := args[0].(*socket.Socket)
	if !ok {
		return
	}
	st, ok := sock.Data().(*socketState)
	if !ok { // not through authenticate: cannot happen
		sock.Disconnect(true)
		return
	}
	s.openGate(sock)
	s.stats.connected.Add(1)
	s.watchQueue(sock, st)
	sock.Join(appRoom(st.app))
	_ = sock.On(eventSubscribe, func(args ...any) { s.onSubscribe(sock, st, args) })
	_ = sock.On(eventUnsubscribe, func(args ...any) { s.onUnsubscribe(sock, st, args) })
	_ = sock.On("disconnect", func(...any) { s.onDisconnect(st) })
	if !sock.Connected() {
		// Gone before the listener was registered: its disconnect event
		// has already fired.
		s.onDisconnect(st)
		return
	}
	if st.resume != nil {
		s.resume(sock, st)
	}
}

// watchQueue disconnects sock once more than Options.SendQueue packets wait
// for it.
func (s *Server) watchQueue(sock *socket.Socket, st *socketState) {
	conn := sock.Conn()
	limit := int64(s.opts.SendQueue)
	_ = conn.On("packetCreate", func(...any) {
		if st.queued.Add(1) > limit && !st.dropping.Swap(true) {
			s.stats.slowConsumers.Add(1)
			s.opts.Logger.Warn("socketio: slow consumer disconnected", "app", st.app, "queued", st.queued.Load())
			go conn.Close(true) // as a lost connection: the client recovers
		}
	})
	_ = conn.On("flush", func(args ...any) {
		if len(args) > 0 {
			if wbuf, ok := args[0].([]*packet.Packet); ok {
				st.queued.Add(-int64(len(wbuf)))
			}
		}
	})
}

// onSubscribe answers a "subscribe" event.
func (s *Server) onSubscribe(sock *socket.Socket, st *socketState, args []any) {
	channel, ack := channelArg(args)
	reply := replier{s: s, sock: sock, channel: channel, ack: ack}
	if err := pubsub.CheckTopic(channel); err != nil {
		reply.fail(pubsub.Errorf(pubsub.CodeInvalidTopicName, "subscribe needs a channel name: 1 to 128 characters of [a-zA-Z0-9_-:.]"))
		return
	}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	if _, ok := st.channels[channel]; ok {
		st.mu.Unlock()
		if b, err := s.bridge(st.app); err == nil { // already subscribed
			b.fanMu.Lock()
			reply.ok(eventSubscribed, b.offset())
			b.fanMu.Unlock()
		}
		return
	}
	if limit := s.opts.MaxSubscriptions; limit > 0 && len(st.channels)+st.busy >= limit {
		st.mu.Unlock()
		reply.fail(pubsub.Errorf(pubsub.CodeTooManySubscriptions, "at most %d channels per connection", limit))
		return
	}
	st.busy++
	st.mu.Unlock()

	b, err := s.bridge(st.app)
	var c *channelSub
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
		c, err = b.acquire(ctx, channel)
		cancel()
	}
	st.mu.Lock()
	st.busy--
	if err == nil && (st.closed || st.channels[channel] != nil) {
		st.mu.Unlock()
		b.release(channel, c) // disconnected, or subscribed twice at once
		return
	}
	if err != nil {
		st.mu.Unlock()
		reply.fail(err)
		return
	}
	sc := &socketChannel{sub: c}
	st.channels[channel] = sc
	st.mu.Unlock()

	b.fanMu.Lock()
	sc.since = max(b.mark, pubsub.IDAt(s.opts.Clock.Now())-1)
	sock.Join(channelRoom(st.app, channel))
	reply.ok(eventSubscribed, b.offset())
	b.fanMu.Unlock()
}

// onUnsubscribe answers an "unsubscribe" event. Unsubscribing from a
// channel the client is not subscribed to is not an error.
func (s *Server) onUnsubscribe(sock *socket.Socket, st *socketState, args []any) {
	channel, ack := channelArg(args)
	reply := replier{s: s, sock: sock, channel: channel, ack: ack}
	st.mu.Lock()
	sc := st.channels[channel]
	delete(st.channels, channel)
	st.mu.Unlock()
	if sc != nil {
		sock.Leave(channelRoom(st.app, channel))
		if b, err := s.bridge(st.app); err == nil {
			b.release(channel, sc.sub)
		}
	}
	reply.ok(eventUnsubscribed, offset{})
}

// onDisconnect releases what a client held.
// It runs once per client, however many times it is called.
func (s *Server) onDisconnect(st *socketState) {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	s.stats.connected.Add(-1)
	st.closed = true
	channels := st.channels
	st.channels = nil
	st.mu.Unlock()
	b, err := s.bridge(st.app)
	if err != nil {
		return
	}
	for name, sc := range channels {
		b.release(name, sc.sub)
	}
}

// channelArg reads the channel of a subscribe or unsubscribe event, given
// as a string or as {"channel": name}, and its acknowledgement callback.
func channelArg(args []any) (string, socket.Ack) {
	var ack socket.Ack
	if n := len(args); n > 0 {
		if f, ok := args[n-1].(socket.Ack); ok {
			ack, args = f, args[:n-1]
		}
	}
	if len(args) == 0 {
		return "", ack
	}
	switch v := args[0].(type) {
	case string:
		return v, ack
	case map[string]any:
		ch, _ := v["channel"].(string)
		return ch, ack
	}
	return "", ack
}

// replier answers one subscribe or unsubscribe event: with an event, and
// through the acknowledgement callback when the client passed one.
type replier struct {
	s       *Server
	sock    *socket.Socket
	channel string
	ack     socket.Ack
}

func (r replier) ok(event string, off offset) {
	payload := map[string]any{"channel": r.channel}
	if event == eventSubscribed && r.s.recover != nil {
		_ = r.sock.Emit(event, payload, off.String())
	} else {
		_ = r.sock.Emit(event, payload)
	}
	if r.ack != nil {
		r.ack([]any{payload}, nil)
	}
}

func (r replier) fail(err error) {
	we := toWireError(err)
	_ = r.sock.Emit(eventSubscribeError, map[string]any{"channel": r.channel, "code": string(we.Code), "message": we.Message})
	if r.ack != nil {
		r.ack([]any{map[string]any{"channel": r.channel, "error": map[string]any{"code": string(we.Code), "message": we.Message}}}, nil)
	}
}

// sortedChannels returns the names of channels in order.
func sortedChannels[V any](channels map[string]V) []string {
	names := make([]string, 0, len(channels))
	for name := range channels {
		names = append(names, name)
	}
	slices.SortFunc(names, strings.Compare)
	return names
}
