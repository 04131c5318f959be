package network

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/plazahq/plaza/pubsub"
)

// Temporary client socket limits and defaults (GET …/client).
const (
	// DefaultClientSocketTTL is how long a new client socket may wait for
	// its connections when the request sets neither ttl nor expiry.
	DefaultClientSocketTTL = 5 * time.Minute
	// MaxClientSocketTTL is the longest ttl a request may set.
	MaxClientSocketTTL = 10 * time.Minute
	// clientSocketGrace is how long an expired or used-up client socket is
	// remembered, so that connecting with it reports why it failed rather
	// than invalid_client_socket.
	clientSocketGrace = 10 * time.Minute
	// clientSocketTokenBytes is the randomness of a token: 192 bits.
	clientSocketTokenBytes = 24
)

// The codes of a refused connection to a client socket path, with the
// HTTP statuses they come with.
const (
	CodeInvalidClientSocket   pubsub.Code = "invalid_client_socket"   // 404: no such token in this room
	CodeExpiredClientSocket   pubsub.Code = "expired_client_socket"   // 410: its ttl is over
	CodeExhaustedClientSocket pubsub.Code = "exhausted_client_socket" // 410: its max_uses are used up
)

// CodeMaxDurationReached is the code of the error frame, and of the close
// reason, with which a connection to a client socket ends when it has lasted
// the max_dur the socket was created with ([CloseMaxDuration]). The page
// needs a new path (or the same one, while it has uses left) to go on.
const CodeMaxDurationReached pubsub.Code = "max_duration_reached"

// socketStatus is the HTTP status of each client socket code.
var socketStatus = map[pubsub.Code]int{
	CodeInvalidClientSocket:   http.StatusNotFound,
	CodeExpiredClientSocket:   http.StatusGone,
	CodeExhaustedClientSocket: http.StatusGone,
}

// clientSocketParams are the query parameters of GET …/client.
type clientSocketParams struct {
	Pattern bool
	MaxDur  time.Duration // zero: unlimited
	TTL     time.Duration
	MaxUses int // zero: unlimited
}

// parseClientSocketQuery reads pattern, max_dur (ms, ≥ 0, 0 = unlimited),
// expiry or ttl (ms, 0 to 600000, default 300000; when both are given they
// must agree) and max_uses (≥ 0, default 1, 0 = unlimited).
func parseClientSocketQuery(q url.Values) (clientSocketParams, *pubsub.Error) {
	var p clientSocketParams
	var perr *pubsub.Error
	if p.Pattern, perr = queryBool(q, "pattern"); perr != nil {
		return p, perr
	}
	maxDur, perr := queryInt(q, "max_dur", 0, 0, math.MaxInt32, pubsub.CodeInvalidRequest)
	if perr != nil {
		return p, perr
	}
	p.MaxDur = time.Duration(maxDur) * time.Millisecond
	def := DefaultClientSocketTTL.Milliseconds()
	ttl, perr := queryInt(q, "ttl", -1, 0, MaxClientSocketTTL.Milliseconds(), pubsub.CodeInvalidRequest)
	if perr != nil {
		return p, perr
	}
	expiry, perr := queryInt(q, "expiry", -1, 0, MaxClientSocketTTL.Milliseconds(), pubsub.CodeInvalidRequest)
	if perr != nil {
		return p, perr
	}
	switch {
	case ttl >= 0 && expiry >= 0 && ttl != expiry:
		return p, pubsub.Errorf(pubsub.CodeInvalidRequest, "ttl %d and expiry %d disagree; they are the same parameter", ttl, expiry)
	case ttl >= 0:
		def = ttl
	case expiry >= 0:
		def = expiry
	}
	p.TTL = time.Duration(def) * time.Millisecond
	uses, perr := queryInt(q, "max_uses", 1, 0, math.MaxInt32, pubsub.CodeInvalidRequest)
	if perr != nil {
		return p, perr
	}
	p.MaxUses = int(uses)
	return p, nil
}

// times spells out n times: "once", "twice", "3 times".
func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return strconv.Itoa(n) + " times"
}

// serveClientSocketCreate answers GET /{room}/pubsub/{topic}/client: it
// creates a temporary client socket for the topic (or, with pattern=true,
// the pattern) and answers with its path and expiry.
func (s *Server) serveClientSocketCreate(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	id, perr := s.httpIdentity(r)
	if perr != nil {
		fail(w, perr)
		return
	}
	name, _, perr := routeTopic(r)
	if perr != nil {
		fail(w, perr)
		return
	}
	p, perr := parseClientSocketQuery(r.URL.Query())
	if perr != nil {
		fail(w, perr)
		return
	}
	if err := pubsub.CheckTopic(room); err != nil {
		fail(w, pubsub.Errorf(pubsub.CodeInvalidRequest, "invalid room name %q", clip(room, 64)))
		return
	}
	if err := s.authorize(r.Context(), id, pubsub.Access{Action: pubsub.ActionSubscribe, Room: room, Topic: name, ClientID: id.ClientID}); err != nil {
		fail(w, err)
		return
	}
	now := s.opts.Clock.Now()
	sock := ClientSocket{
		Room: room, Topic: name, Pattern: p.Pattern, Identity: id,
		MaxDur: p.MaxDur, Expires: now.Add(p.TTL), MaxUses: p.MaxUses,
	}
	token, err := s.opts.Sockets.Create(r.Context(), sock, now, s.opts.MaxClientSocketsPerRoom)
	if err != nil {
		fail(w, storeError("creating a client socket", err))
		return
	}
	b := append([]byte(`{"path":`), appendString(nil, "/"+url.PathEscape(room)+"/s/"+token)...)
	b = appendSocketInfo(b, &sock)
	writeData(w, b)
}

// appendSocketInfo appends the members after "path" of a client socket's
// description, and the closing brace.
func appendSocketInfo(b []byte, sock *ClientSocket) []byte {
	b = append(b, `,"topic":`...)
	b = appendString(b, sock.Topic)
	b = append(b, `,"pattern":`...)
	b = strconv.AppendBool(b, sock.Pattern)
	b = append(b, `,"expiresAt":"`...)
	b = sock.Expires.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","maxUses":`...)
	b = strconv.AppendInt(b, int64(sock.MaxUses), 10)
	b = append(b, `,"uses":`...)
	b = strconv.AppendInt(b, int64(sock.Uses), 10)
	b = append(b, `,"maxDurMs":`...)
	b = strconv.AppendInt(b, sock.MaxDur.Milliseconds(), 10)
	return append(b, '}')
}

// serveClientSocket answers GET /{room}/s/{token}. A WebSocket handshake
// takes one use of the socket and opens a single-topic socket with the
// identity of the socket's creator; any other GET describes the socket
// without using it. A token that cannot be used is refused before the
// handshake, with an HTTP status and the error envelope.
func (s *Server) serveClientSocket(w http.ResponseWriter, r *http.Request) {
	room, token := r.PathValue("room"), r.PathValue("token")
	now := s.opts.Clock.Now()
	if !isUpgrade(r) {
		sock, err := s.opts.Sockets.Peek(r.Context(), room, token, now)
		if err != nil {
			fail(w, storeError("reading a client socket", err))
			return
		}
		writeData(w, appendSocketInfo([]byte(`{"path":`+string(appendString(nil, r.URL.Path))), &sock))
		return
	}
	sock, release, err := s.opts.Sockets.Use(r.Context(), room, token, now)
	if err != nil {
		perr := storeError("using a client socket", err)
		s.opts.Logger.Info("network: refused client socket", "room", room, "remote", r.RemoteAddr, "err", perr)
		fail(w, perr)
		return
	}
	id := sock.Identity
	c := &serverConn{room: room, bound: sock.Topic, preID: &id, maxDur: sock.MaxDur}
	if !s.accept(w, r, c) {
		// The request's context may be over once the handshake failed.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.opts.WriteTimeout)
		if err := release(ctx); err != nil {
			s.opts.Logger.Warn("network: cannot give back a client socket's use", "room", room, "err", err)
		}
		cancel()
	}
}

// serveTopicSocket answers GET /{room}/pubsub/{topic}/ws (and the legacy
// GET /{room}/ws/subscribe/{topic}): a single-topic socket, subscribed to
// the topic or, with pattern=true, the pattern on connect, that sends each
// message as a WebSocket message of its own. It authenticates as
// GET /{room}/ws does.
func (s *Server) serveTopicSocket(w http.ResponseWriter, r *http.Request) {
	name, _, perr := routeTopic(r)
	if perr != nil {
		fail(w, perr)
		return
	}
	s.accept(w, r, &serverConn{room: r.PathValue("room"), bound: name})
}
