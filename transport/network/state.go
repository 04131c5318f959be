package network

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"github.com/plazahq/plaza/internal/ratewindow"
	"github.com/plazahq/plaza/pubsub"
)

// The state a Server keeps between requests, beside its connections, sits
// behind two small interfaces, so that several Servers in front of one
// scaled-out hub (one Redis) act as one: a temporary client socket created
// on one node can be used on any, and a room's HTTP publish cap counts
// every node's publishes. Options.Sockets and Options.PublishWindow take
// them; nil means a store of the Server's own, in its memory.
// Package statetest holds their conformance suite.

// ClientSocket is a temporary client socket (GET …/{topic}/client): a
// token bound to one room and one topic or pattern, with the identity of
// whoever created it, usable MaxUses times before Expires.
type ClientSocket struct {
	Room    string
	Topic   string // a topic, or a pattern when Pattern is set
	Pattern bool
	// Identity is the creator's: every connection opened with the socket
	// has it. A store gives back its ClientID and Expires (to the
	// millisecond at least), and an Info that is a [Role], as Options.Keys
	// makes, as that Role; a store outside the process may refuse to
	// Create a socket whose Info it cannot keep.
	Identity Identity
	MaxDur   time.Duration // how long each connection may last; zero: unlimited
	Expires  time.Time     // connections must start before it
	MaxUses  int           // zero: unlimited
	Uses     int           // successful connections so far
}

// SocketStore keeps the temporary client sockets of a [Server]
// (Options.Sockets). The default is a [MemorySocketStore] of the Server's
// own; a store shared by several Servers makes a socket created on one
// usable on any, its uses and expiry counted once for all.
//
// A store never keeps a token in the clear, only a hash of it, and looks
// tokens up in time that does not depend on how much of a guessed one is
// right. It keeps a socket that expired or was used up for a while (the
// memory store: ten minutes), so that connecting with it says why it
// failed. Its methods return a *pubsub.Error: the codes below, or
// NETWORK_ERROR when the store cannot be reached, which the Server passes
// on to the client (HTTP 503, retriable). A SocketStore must be safe for
// concurrent use.
type SocketStore interface {
	// Create stores sock (with Uses zero) and returns a new token for it:
	// at least 128 random bits, in characters that need no escaping in a
	// URL path. It fails with RATE_LIMIT_EXCEEDED when sock.Room already
	// holds perRoom sockets that can still be used (neither expired nor
	// used up).
	Create(ctx context.Context, sock ClientSocket, now time.Time, perRoom int) (token string, err error)
	// Use takes one use of the socket of token in room, at now, and returns
	// the socket with this use counted and a function that gives the use
	// back, for a connection that then fails to open. It fails with
	// CodeInvalidClientSocket (no such token in room),
	// CodeExhaustedClientSocket (its MaxUses are used up) or
	// CodeExpiredClientSocket (now is not before its Expires), in that
	// order of precedence.
	Use(ctx context.Context, room, token string, now time.Time) (ClientSocket, func(context.Context) error, error)
	// Peek returns the socket of token in room as Use would judge it,
	// without taking a use.
	Peek(ctx context.Context, room, token string, now time.Time) (ClientSocket, error)
}

// PublishWindow counts the HTTP publishes of each room over a rolling
// minute, for Options.PublishPerMinute and RoomKeys.PublishPerMinute. The
// default is a [MemoryPublishWindow] of the Server's own; a window shared by
// several Servers caps a room's publishes on all of them together.
// transport/redis's RateWindow is one, as it is.
//
// A PublishWindow must be safe for concurrent use.
type PublishWindow interface {
	// Allow records an event for key (the Server passes the room) at now
	// if fewer than limit events of key lie in the minute before now, and
	// reports true. Otherwise it records nothing and returns false and how
	// long after now the oldest of those events leaves the window, when
	// one more would fit. A limit of zero or less allows nothing. An event
	// at second s of Unix time counts until second s+60 begins. An error
	// means the window could not be counted: the Server refuses the
	// publish with it (a *pubsub.Error keeps its code; anything else
	// becomes NETWORK_ERROR, HTTP 503), so that the cap holds.
	Allow(ctx context.Context, key string, limit int, now time.Time) (bool, time.Duration, error)
}

var (
	_ SocketStore   = (*MemorySocketStore)(nil)
	_ PublishWindow = (*MemoryPublishWindow)(nil)
)

// MemoryPublishWindow is the in-process [PublishWindow]: a rolling minute
// per key in 60 one-second buckets, forgotten a minute after its last
// event. Its Allow never fails.
//
// The zero value is a window with no events. It is safe for concurrent
// use. Two Servers of one process share a cap by sharing one.
type MemoryPublishWindow struct {
	l ratewindow.Limiter
}

// Allow implements [PublishWindow]; ctx is not used.
func (w *MemoryPublishWindow) Allow(_ context.Context, key string, limit int, now time.Time) (bool, time.Duration, error) {
	ok, after := w.l.Allow(key, limit, now)
	return ok, after, nil
}

// MemorySocketStore is the in-process [SocketStore]: a map keyed by the
// SHA-256 of each token. Expired and used-up sockets are kept for ten
// minutes past their expiry; a sweep, at most once a minute when a socket
// is created, forgets older ones, and when a limit is reached, every
// socket that can no longer be used. Its methods never fail but for the
// store's own reasons (the codes of [SocketStore], RATE_LIMIT_EXCEEDED).
//
// The zero value holds up to DefaultMaxClientSockets sockets. It is safe
// for concurrent use. Two Servers of one process share their sockets by
// sharing one.
type MemorySocketStore struct {
	max int // zero: DefaultMaxClientSockets

	mu        sync.Mutex
	m         map[[sha256.Size]byte]*ClientSocket
	rooms     map[string]int // sockets in m per room
	nextSweep time.Time
}

// NewMemorySocketStore returns a store that holds at most max sockets, used
// or not; creating one more fails with RATE_LIMIT_EXCEEDED. Zero or less
// means DefaultMaxClientSockets.
func NewMemorySocketStore(max int) *MemorySocketStore {
	return &MemorySocketStore{max: max}
}

// Len returns how many sockets the store remembers, usable or not.
func (t *MemorySocketStore) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// sweep forgets the sockets past their grace period; under pressure, also
// every socket that can no longer be used. Call it with mu held.
func (t *MemorySocketStore) sweep(now time.Time, pressure bool) {
	for k, s := range t.m {
		dead := !now.Before(s.Expires.Add(clientSocketGrace))
		if pressure {
			dead = !now.Before(s.Expires) || (s.MaxUses > 0 && s.Uses >= s.MaxUses)
		}
		if dead {
			delete(t.m, k)
			if t.rooms[s.Room]--; t.rooms[s.Room] <= 0 {
				delete(t.rooms, s.Room)
			}
		}
	}
}

// Create implements [SocketStore]; ctx is not used. Besides perRoom, it
// fails when the store holds its max sockets even after a sweep.
func (t *MemorySocketStore) Create(_ context.Context, sock ClientSocket, now time.Time, perRoom int) (string, error) {
	var raw [clientSocketTokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", pubsub.Errorf(pubsub.CodeInternal, "network: no randomness for a token: %v", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	sock.Uses = 0
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[[sha256.Size]byte]*ClientSocket)
		t.rooms = make(map[string]int)
	}
	max := t.max
	if max <= 0 {
		max = DefaultMaxClientSockets
	}
	if !now.Before(t.nextSweep) {
		t.sweep(now, false)
		t.nextSweep = now.Add(time.Minute)
	}
	if len(t.m) >= max || t.rooms[sock.Room] >= perRoom {
		t.sweep(now, true)
	}
	var perr *pubsub.Error
	switch {
	case t.rooms[sock.Room] >= perRoom:
		perr = pubsub.Errorf(pubsub.CodeRateLimitExceeded, "room %s has %d usable client sockets, the most a room may hold", sock.Room, perRoom)
	case len(t.m) >= max:
		perr = pubsub.Errorf(pubsub.CodeRateLimitExceeded, "%d usable client sockets exist, the most this server keeps", max)
	}
	if perr != nil {
		perr.RetryAfter = time.Minute
		return "", perr
	}
	t.m[sha256.Sum256([]byte(token))] = &sock
	t.rooms[sock.Room]++
	return token, nil
}

// Use implements [SocketStore]; ctx is not used, nor is the context of the
// function it returns, which gives the use back once however often it is
// called.
func (t *MemorySocketStore) Use(_ context.Context, room, token string, now time.Time) (ClientSocket, func(context.Context) error, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sock, perr := t.lookup(room, token, now)
	if perr != nil {
		return ClientSocket{}, nil, perr
	}
	sock.Uses++
	released := false
	release := func(context.Context) error {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !released {
			released = true
			sock.Uses--
		}
		return nil
	}
	return *sock, release, nil
}

// Peek implements [SocketStore]; ctx is not used.
func (t *MemorySocketStore) Peek(_ context.Context, room, token string, now time.Time) (ClientSocket, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sock, perr := t.lookup(room, token, now)
	if perr != nil {
		return ClientSocket{}, perr
	}
	return *sock, nil
}

// lookup finds the socket of token in room and judges whether it can be
// used at now. Call it with mu held.
func (t *MemorySocketStore) lookup(room, token string, now time.Time) (*ClientSocket, *pubsub.Error) {
	sock := t.m[sha256.Sum256([]byte(token))]
	switch {
	case sock == nil || sock.Room != room:
		return nil, pubsub.Errorf(CodeInvalidClientSocket, "no such client socket in this room")
	case sock.MaxUses > 0 && sock.Uses >= sock.MaxUses:
		return nil, pubsub.Errorf(CodeExhaustedClientSocket, "the client socket has been used %s, its max_uses", times(sock.MaxUses))
	case !now.Before(sock.Expires):
		return nil, pubsub.Errorf(CodeExpiredClientSocket, "the client socket expired at %s", sock.Expires.UTC().Format(time.RFC3339))
	}
	return sock, nil
}

// storeError is the error a client gets when a store failed: a
// *pubsub.Error as it is, a context's end or anything else as NETWORK_ERROR.
func storeError(what string, err error) *pubsub.Error {
	if perr := (*pubsub.Error)(nil); errors.As(err, &perr) {
		return perr
	}
	return lostError("network: "+what+": "+err.Error(), err)
}
