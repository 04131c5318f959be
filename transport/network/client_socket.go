package network

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
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

// clientSocket is a temporary client socket: a token bound to one room and
// one topic or pattern, with the identity of whoever created it.
type clientSocket struct {
	room    string
	topic   string
	pattern bool
	id      Identity
	maxDur  time.Duration
	expires time.Time // connections must start before it
	maxUses int       // zero: unlimited
	uses    int       // successful connections so far
}

// socketTable holds the temporary client sockets by the SHA-256 of their
// token, so that looking one up takes no time that depends on how much of a
// guessed token is right. Expired and used-up sockets stay for
// clientSocketGrace; a sweep, at most once a minute when a socket is
// created, forgets older ones. It is safe for concurrent use.
type socketTable struct {
	mu        sync.Mutex
	m         map[[sha256.Size]byte]*clientSocket
	rooms     map[string]int // sockets in m per room
	nextSweep time.Time
}

func (t *socketTable) init() {
	t.m = make(map[[sha256.Size]byte]*clientSocket)
	t.rooms = make(map[string]int)
}

// sweep forgets the sockets past their grace period; under pressure, also
// every socket that can no longer be used. Call it with mu held.
func (t *socketTable) sweep(now time.Time, pressure bool) {
	for k, s := range t.m {
		dead := !now.Before(s.expires.Add(clientSocketGrace))
		if pressure {
			dead = !now.Before(s.expires) || (s.maxUses > 0 && s.uses >= s.maxUses)
		}
		if dead {
			delete(t.m, k)
			if t.rooms[s.room]--; t.rooms[s.room] <= 0 {
				delete(t.rooms, s.room)
			}
		}
	}
}

// add stores sock and returns its token, unless the table holds max sockets,
// or perRoom of sock's room, even after a sweep.
func (t *socketTable) add(sock *clientSocket, now time.Time, max, perRoom int) (string, *pubsub.Error) {
	var raw [clientSocketTokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", pubsub.Errorf(pubsub.CodeInternal, "no randomness for a token: %v", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	t.mu.Lock()
	defer t.mu.Unlock()
	if !now.Before(t.nextSweep) {
		t.sweep(now, false)
		t.nextSweep = now.Add(time.Minute)
	}
	if len(t.m) >= max || t.rooms[sock.room] >= perRoom {
		t.sweep(now, true)
	}
	var err *pubsub.Error
	switch {
	case t.rooms[sock.room] >= perRoom:
		err = pubsub.Errorf(pubsub.CodeRateLimitExceeded, "room %s has %d usable client sockets, the most a room may hold", sock.room, perRoom)
	case len(t.m) >= max:
		err = pubsub.Errorf(pubsub.CodeRateLimitExceeded, "%d usable client sockets exist, the most this server keeps", max)
	}
	if err != nil {
		err.RetryAfter = time.Minute
		return "", err
	}
	t.m[sha256.Sum256([]byte(token))] = sock
	t.rooms[sock.room]++
	return token, nil
}

// use takes one use of the socket of token in room, at now. On success it
// returns a copy of the socket and a function that gives the use back, for
// a connection that then fails to open.
func (t *socketTable) use(room, token string, now time.Time) (clientSocket, func(), *pubsub.Error) {
	k := sha256.Sum256([]byte(token))
	t.mu.Lock()
	defer t.mu.Unlock()
	sock := t.m[k]
	switch {
	case sock == nil || sock.room != room:
		return clientSocket{}, nil, pubsub.Errorf(CodeInvalidClientSocket, "no such client socket in this room")
	case sock.maxUses > 0 && sock.uses >= sock.maxUses:
		return clientSocket{}, nil, pubsub.Errorf(CodeExhaustedClientSocket, "the client socket has been used %s, its max_uses", times(sock.maxUses))
	case !now.Before(sock.expires):
		return clientSocket{}, nil, pubsub.Errorf(CodeExpiredClientSocket, "the client socket expired at %s", sock.expires.UTC().Format(time.RFC3339))
	}
	sock.uses++
	release := func() {
		t.mu.Lock()
		sock.uses--
		t.mu.Unlock()
	}
	return *sock, release, nil
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

// peek returns the state of the socket of token in room, as use would
// judge it, without taking a use.
func (t *socketTable) peek(room, token string, now time.Time) (clientSocket, *pubsub.Error) {
	sock, release, err := t.use(room, token, now)
	if err == nil {
		release()
		sock.uses--
	}
	return sock, err
}

func (t *socketTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
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
	sock := &clientSocket{
		room: room, topic: name, pattern: p.Pattern, id: id,
		maxDur: p.MaxDur, expires: now.Add(p.TTL), maxUses: p.MaxUses,
	}
	token, perr := s.sockets.add(sock, now, s.opts.MaxClientSockets, s.opts.MaxClientSocketsPerRoom)
	if perr != nil {
		fail(w, perr)
		return
	}
	b := append([]byte(`{"path":`), appendString(nil, "/"+url.PathEscape(room)+"/s/"+token)...)
	b = appendSocketInfo(b, sock)
	writeData(w, b)
}

// appendSocketInfo appends the members after "path" of a client socket's
// description, and the closing brace.
func appendSocketInfo(b []byte, sock *clientSocket) []byte {
	b = append(b, `,"topic":`...)
	b = appendString(b, sock.topic)
	b = append(b, `,"pattern":`...)
	b = strconv.AppendBool(b, sock.pattern)
	b = append(b, `,"expiresAt":"`...)
	b = sock.expires.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","maxUses":`...)
	b = strconv.AppendInt(b, int64(sock.maxUses), 10)
	b = append(b, `,"uses":`...)
	b = strconv.AppendInt(b, int64(sock.uses), 10)
	b = append(b, `,"maxDurMs":`...)
	b = strconv.AppendInt(b, sock.maxDur.Milliseconds(), 10)
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
		sock, perr := s.sockets.peek(room, token, now)
		if perr != nil {
			fail(w, perr)
			return
		}
		writeData(w, appendSocketInfo([]byte(`{"path":`+string(appendString(nil, r.URL.Path))), &sock))
		return
	}
	sock, release, perr := s.sockets.use(room, token, now)
	if perr != nil {
		s.opts.Logger.Info("network: refused client socket", "room", room, "remote", r.RemoteAddr, "err", perr)
		fail(w, perr)
		return
	}
	id := sock.id
	c := &serverConn{room: room, bound: sock.topic, preID: &id, maxDur: sock.maxDur}
	if !s.accept(w, r, c) {
		release()
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
