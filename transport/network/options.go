package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
)

// Identity is who a connection's credentials prove it to be.
type Identity struct {
	// ClientID is the identity the hub sees: the From of every message the
	// connection publishes. It must satisfy pubsub.CheckClientID.
	ClientID string
	// Expires, when set, is when the credentials stop being valid: the
	// server closes the connection then (CloseCredentialsExpired) unless the
	// client sent newer credentials in an auth frame first. Zero means never.
	Expires time.Time
	// Info is anything the application wants to keep with the connection,
	// such as roles; the server hands it back to Options.Authorize.
	Info any
}

// Options configure a [Server]. The zero value serves anonymous clients with
// the defaults below.
type Options struct {
	// Authenticate turns a connection's credential into an Identity. The
	// credential is the token of an "Authorization: Bearer <token>" header,
	// the ?token= query parameter, or the "auth" member of the first frame,
	// whichever the client used (in that order of precedence); it is "" if
	// the first frame is {"auth": ""}. r is the WebSocket upgrade request;
	// read its headers, remote address or URL, but not its Context, which ends
	// with the handshake: use ctx. When a connected client renews its
	// credentials with another auth frame, r holds only the remote address
	// and the path. Returning an error refuses the connection:
	// a *pubsub.Error keeps its code, anything else becomes UNAUTHENTICATED.
	// The server never uses an identity the client merely claims.
	//
	// Nil means every connection is anonymous: it gets a fresh random
	// ClientID ("anon-" and 16 hex digits), whatever it sends.
	Authenticate func(ctx context.Context, r *http.Request, credential string) (Identity, error)

	// Keys, when set, authenticates with per-room publish and subscribe
	// keys instead of Authenticate, which is then not called: it returns
	// the keys of a room, or false for a room that does not exist (every
	// request for it fails with UNAUTHENTICATED). A credential is "<key>"
	// or "<key>:<name>"; see [RoomKeys] for what each key may do and
	// [Role] for the Identity's Info. Authorize, when set too, is asked
	// after the key's role allowed an action. Keys is called on every
	// request and connection and should be fast.
	Keys func(room string) (RoomKeys, bool)

	// KeySecret is the secret under which a bare key ("<key>" without a
	// name) is turned into its client id, "key-" and 12 hex digits of an
	// HMAC of the key. Give a stable secret of at least 32 random bytes,
	// kept beside the history, so that those ids stay the same across
	// restarts: the hub recognizes a retried publish by client id and
	// idempotency key, so with a new secret a retry that straddles a
	// restart is published again. Nil means a random secret per Server.
	// Only used with Keys.
	KeySecret []byte

	// PublishPerMinute caps the HTTP publishes (POST …/publish) of each
	// room, whoever sends them, over a rolling minute: a publish beyond it
	// fails with RATE_LIMIT_EXCEEDED (HTTP 429) and a Retry-After of the
	// seconds until the oldest publish of the window leaves it.
	// RoomKeys.PublishPerMinute overrides it per room. The window runs on
	// Clock and is counted by PublishWindow. Zero means no cap.
	PublishPerMinute int

	// PublishWindow counts the publishes that PublishPerMinute caps. Give
	// Servers that serve one scaled-out hub the same window (such as
	// transport/redis's RateWindow), so that the cap holds for a room's
	// publishes on all of them together. Nil means a MemoryPublishWindow
	// of the Server's own.
	PublishWindow PublishWindow

	// Sockets keeps the temporary client sockets (GET …/client). Give
	// Servers that serve one scaled-out hub the same store, so that a
	// socket created on one can be used on any. Nil means
	// NewMemorySocketStore(MaxClientSockets), of the Server's own.
	Sockets SocketStore

	// MaxClientSockets is the most temporary client sockets (GET
	// …/client) the server remembers at once, used or not, and
	// MaxClientSocketsPerRoom the most one room may hold of them; creating
	// one more fails with RATE_LIMIT_EXCEEDED (HTTP 429). A socket is
	// forgotten ten minutes after it expires, or at once when a limit is
	// reached and it can no longer be used. Zero means 100000 and 1000.
	// MaxClientSockets is only used when Sockets is nil.
	MaxClientSockets        int
	MaxClientSocketsPerRoom int

	// MaxConnections is the most WebSocket connections and event streams
	// the server holds at once; beyond it, new ones are refused before the
	// upgrade with NETWORK_ERROR (HTTP 503, Retry-After). Zero means 50000.
	MaxConnections int

	// Authorize, when set, is asked before every publish, subscribe (the
	// topic may be a pattern) and history request. An error fails that
	// request, and only that request: a *pubsub.Error keeps its code,
	// anything else becomes PERMISSION_DENIED. The hub may apply its own
	// authorization after this one. Nil means everything is allowed.
	Authorize func(ctx context.Context, id Identity, a pubsub.Access) error

	// MaxFrameBytes is the largest frame a client may send: a publish with
	// the largest payload (pubsub.MaxPayloadBytes) plus room for its
	// envelope. A larger frame closes the connection with CloseTooBig.
	// Zero means DefaultMaxFrameBytes.
	MaxFrameBytes int64

	// MaxSubscriptions is the most topics and patterns one connection may
	// subscribe to at once; one more fails with TOO_MANY_SUBSCRIPTIONS.
	// Zero means 100; negative means no limit.
	MaxSubscriptions int

	// AuthTimeout is how long a client that sent no credentials with the
	// upgrade request has to send its auth frame, and how long Authenticate
	// may take. Zero means 10 seconds.
	AuthTimeout time.Duration

	// Heartbeat is how often the server pings every connection (WebSocket
	// ping frames, which browsers and the Go client answer by themselves)
	// and writes a comment line to every event stream. A connection from
	// which nothing, not even a pong, has arrived for two heartbeats is
	// dropped as dead. Zero means 30 seconds; negative turns heartbeats off.
	Heartbeat time.Duration

	// QueueBytes bounds how far one connection or event stream may fall
	// behind while its socket is busy: the bytes of the messages waiting to
	// be written (with transport/memory, those beyond the 128 its hub
	// connection's channel holds). The server passes it to the hub as the
	// connection's pubsub.ConnectRequest.QueueBytes, so that the hub's queue
	// is the only one and this is the only bound: a client that would go
	// beyond it is dropped by the hub with SLOW_CONSUMER and closed with
	// CloseSlowConsumer; other connections are not affected. See
	// memory.Options.QueueBytes for how a message is counted. The queue
	// grows on demand: an idle connection holds no backlog. Zero (or
	// negative) means the hub's own bound (memory.Options.QueueBytes, 1 MiB unless set there).
	QueueBytes int

	// WriteTimeout is how long one write to a connection's socket, or to an
	// event stream, may take. A client that does not accept its data in
	// time is cut off as a slow consumer. It runs on the system clock. Zero means 10 seconds.
	WriteTimeout time.Duration

	// MaxFrameRate is how many frames per second one connection may send,
	// in bursts of as many. A connection that sends faster is closed with
	// ClosePolicyViolation. Zero means 1000; negative means no limit.
	MaxFrameRate float64

	// OriginPatterns lists the browser origins, besides the server's own
	// host, allowed to open WebSockets, as host patterns for path.Match
	// ("localhost:*", or with a scheme, "http://127.0.0.1:*"). A
	// handshake from another origin gets 403. Requests without an Origin
	// header (non-browser clients) are always allowed. Nil means same-origin
	// only.
	OriginPatterns []string

	// Clock tells the time for authentication timeouts, credential expiry,
	// heartbeats and the frame rate cap. Nil means pubsub.SystemClock{}.
	Clock pubsub.Clock

	// Logger receives connection-level events: connections and event
	// streams opened and closed, refused handshakes and authentications at
	// Info, dropped connections at Warn. Each names the room, the client id
	// and the remote address, and a closed WebSocket its close code; none
	// holds a payload or a credential. Nil means nothing is logged.
	Logger *slog.Logger

	// OnConnEvent, when set, is called when a WebSocket connection has
	// authenticated and when it closes, and when an event stream starts
	// and ends, on the connection's own goroutine: it must not block. A
	// program uses it to count connections and closes by code. Nil means
	// no calls.
	OnConnEvent func(ConnEvent)
}

// ConnEvent is a connection or event stream opening or closing, as
// Options.OnConnEvent and Options.Logger see it. A connection refused
// before it authenticated has no events.
type ConnEvent struct {
	Closed   bool   // false: opened
	Protocol string // "websocket" or "sse"
	Room     string
	ClientID string
	Remote   string // the client's address, as net/http reports it
	// Code is the close code of a closed WebSocket: the one the server
	// sent when it closed the connection, else the client's, else 1006
	// (StatusAbnormalClosure) for a connection lost without a close
	// frame. Zero for an opened connection and for event streams.
	Code websocket.StatusCode
}

// connEvent logs ev and hands it to Options.OnConnEvent.
func (s *Server) connEvent(ev ConnEvent) {
	if l := s.opts.Logger; l.Enabled(context.Background(), slog.LevelInfo) {
		attrs := []any{"protocol", ev.Protocol, "room", ev.Room, "client", ev.ClientID, "remote", ev.Remote}
		msg := "network: connection opened"
		if ev.Closed {
			msg = "network: connection closed"
			if ev.Code != 0 {
				attrs = append(attrs, "code", int(ev.Code))
			}
		}
		l.Info(msg, attrs...)
	}
	if f := s.opts.OnConnEvent; f != nil {
		f(ev)
	}
}

// closeCode is the close code of a WebSocket connection that is over:
// the server's, when it asked for a close (pending), else the client's
// from the error that ended reading, else StatusAbnormalClosure.
func closeCode(pending *closeRequest, readErr error) websocket.StatusCode {
	if pending != nil {
		return pending.code
	}
	if code := websocket.CloseStatus(readErr); code != -1 {
		return code
	}
	return websocket.StatusAbnormalClosure
}

// Defaults for zero Options fields.
const (
	// DefaultMaxFrameBytes is pubsub.MaxPayloadBytes (32 KiB) plus 32 KiB
	// of envelope: topic, recipients, metadata and their JSON escaping.
	DefaultMaxFrameBytes           = pubsub.MaxPayloadBytes + 32<<10
	DefaultMaxSubscriptions        = 100
	DefaultAuthTimeout             = 10 * time.Second
	DefaultHeartbeat               = 30 * time.Second
	DefaultWriteTimeout            = 10 * time.Second
	DefaultMaxFrameRate            = 1000
	DefaultMaxClientSockets        = 100000
	DefaultMaxClientSocketsPerRoom = 1000
	DefaultMaxConnections          = 50000
)

func (o Options) withDefaults() Options {
	if o.Authenticate == nil {
		o.Authenticate = anonymous
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.AuthTimeout <= 0 {
		o.AuthTimeout = DefaultAuthTimeout
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxFrameRate == 0 {
		o.MaxFrameRate = DefaultMaxFrameRate
	}
	if o.MaxClientSockets <= 0 {
		o.MaxClientSockets = DefaultMaxClientSockets
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxClientSocketsPerRoom <= 0 {
		o.MaxClientSocketsPerRoom = DefaultMaxClientSocketsPerRoom
	}
	if o.Clock == nil {
		o.Clock = pubsub.SystemClock{}
	}
	if o.PublishWindow == nil {
		o.PublishWindow = new(MemoryPublishWindow)
	}
	if o.Sockets == nil {
		o.Sockets = NewMemorySocketStore(o.MaxClientSockets)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// anonymous is the Authenticate of a server without one.
func anonymous(context.Context, *http.Request, string) (Identity, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return Identity{ClientID: "anon-" + hex.EncodeToString(b[:])}, nil
}
