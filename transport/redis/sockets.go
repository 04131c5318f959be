package redis

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
)

var (
	//go:embed lua/socket.lua
	socketLua    string
	socketScript = newScript(socketLua)
)

// socketGrace is how long an expired or used-up client socket is kept, so
// that connecting with it says why it failed rather than that it does not
// exist, as network.Server does.
const socketGrace = 10 * time.Minute

// ClientSocket is a temporary client socket (network.Server's GET
// …/{topic}/client): a token bound to one room and one topic or pattern,
// with the identity of whoever created it, usable MaxUses times before
// Expires.
type ClientSocket struct {
	Room    string
	Topic   string // a topic, or a pattern when Pattern is set
	Pattern bool
	// ClientID, Info and CredExpires are the creator's identity
	// (network.Identity with Info as a string, such as a key's role).
	ClientID    string
	Info        string
	CredExpires time.Time // zero: never
	MaxDur      time.Duration
	Expires     time.Time // connections must start before it (kept to the millisecond)
	MaxUses     int       // zero: unlimited
	Uses        int       // successful connections so far
}

// SocketStore keeps temporary client sockets in Redis, so that a socket
// created on one node can be used on any: its uses and expiry are counted
// once for all. A socket is a hash under its room's hash tag, named by the
// SHA-256 of its token (a token is never stored), kept for ten minutes
// past its expiry; the room's usable sockets are counted in a sorted set
// beside it.
//
// Get one with [Client.Sockets]; the zero value is not usable. A
// SocketStore is safe for concurrent use.
type SocketStore struct {
	c *Client
}

// Sockets returns the client socket store of c.
func (c *Client) Sockets() *SocketStore { return &SocketStore{c: c} }

func (s *SocketStore) keys(room, token string) (set, hash, name string) {
	sum := sha256.Sum256([]byte(token))
	name = hex.EncodeToString(sum[:])
	set = s.c.prefix + ":sock:{" + strconv.Itoa(len(room)) + ":" + room + "}"
	return set, set + ":" + name, name
}

// Create stores sock and returns its token (192 random bits, base64url)
// unless sock.Room already holds perRoom sockets that can still be used,
// which fails with RATE_LIMIT_EXCEEDED, as network.Server does.
func (s *SocketStore) Create(ctx context.Context, sock ClientSocket, now time.Time, perRoom int) (string, error) {
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", pubsub.Errorf(pubsub.CodeInternal, "redis: no randomness for a token: %v", err)
	}
	token := base64.RawURLEncoding.EncodeToString(raw[:])
	set, hash, name := s.keys(sock.Room, token)
	pattern, credExp := "0", "0"
	if sock.Pattern {
		pattern = "1"
	}
	if !sock.CredExpires.IsZero() {
		credExp = strconv.FormatInt(sock.CredExpires.UnixNano(), 10)
	}
	expires := strconv.FormatInt(sock.Expires.UnixMilli(), 10)
	args := []string{"create", strconv.FormatInt(now.UnixMilli(), 10), strconv.Itoa(perRoom), expires,
		strconv.FormatInt(socketGrace.Milliseconds(), 10), name,
		"room", sock.Room, "topic", sock.Topic, "pattern", pattern, "client", sock.ClientID, "info", sock.Info,
		"credExpires", credExp, "maxDur", strconv.FormatInt(int64(sock.MaxDur), 10), "expires", expires,
		"maxUses", strconv.Itoa(sock.MaxUses), "uses", "0", "name", name}
	vals, err := socketScript.Exec(ctx, s.c.rc, []string{set, hash}, args).ToArray()
	if err != nil {
		return "", classify(s.c.addr, "creating a client socket on", err)
	}
	if st, _ := vals[0].ToString(); st == "full" {
		perr := pubsub.Errorf(pubsub.CodeRateLimitExceeded, "room %s has %d usable client sockets, the most a room may hold", sock.Room, perRoom)
		perr.RetryAfter = time.Minute
		return "", perr
	}
	return token, nil
}

// Use takes one use of the socket of token in room, at now, on whichever
// node: it fails with network's invalid_client_socket (no such token in
// this room), exhausted_client_socket or expired_client_socket codes. On
// success it returns the socket and a function that gives the use back,
// for a connection that then fails to open.
func (s *SocketStore) Use(ctx context.Context, room, token string, now time.Time) (ClientSocket, func(context.Context) error, error) {
	sock, err := s.call(ctx, "use", room, token, now)
	if err != nil {
		return ClientSocket{}, nil, err
	}
	release := func(ctx context.Context) error {
		_, err := s.call(ctx, "release", room, token, now)
		return err
	}
	return sock, release, nil
}

// Peek returns the socket of token in room as Use would judge it, without
// taking a use.
func (s *SocketStore) Peek(ctx context.Context, room, token string, now time.Time) (ClientSocket, error) {
	return s.call(ctx, "peek", room, token, now)
}

func (s *SocketStore) call(ctx context.Context, op, room, token string, now time.Time) (ClientSocket, error) {
	set, hash, _ := s.keys(room, token)
	vals, err := socketScript.Exec(ctx, s.c.rc, []string{set, hash}, []string{op, strconv.FormatInt(now.UnixMilli(), 10)}).ToArray()
	if err != nil {
		return ClientSocket{}, classify(s.c.addr, "using a client socket on", err)
	}
	st, _ := vals[0].ToString()
	switch st {
	case "ok":
	case "invalid":
		return ClientSocket{}, pubsub.Errorf(network.CodeInvalidClientSocket, "no such client socket in this room")
	case "exhausted":
		return ClientSocket{}, pubsub.Errorf(network.CodeExhaustedClientSocket, "the client socket has used up its max_uses")
	case "expired":
		return ClientSocket{}, pubsub.Errorf(network.CodeExpiredClientSocket, "the client socket has expired")
	default:
		return ClientSocket{}, pubsub.Errorf(pubsub.CodeInternal, "redis: client socket script answered %q", st)
	}
	if op == "release" {
		return ClientSocket{}, nil
	}
	f := make(map[string]string, len(vals)/2)
	for i := 1; i+1 < len(vals); i += 2 {
		k, _ := vals[i].ToString()
		v, _ := vals[i+1].ToString()
		f[k] = v
	}
	return parseSocket(f)
}

// parseSocket reads a socket's hash.
func parseSocket(f map[string]string) (ClientSocket, error) {
	var bad string
	num := func(name string) int64 {
		n, err := strconv.ParseInt(f[name], 10, 64)
		if err != nil && bad == "" {
			bad = fmt.Sprintf("%s = %q", name, f[name])
		}
		return n
	}
	sock := ClientSocket{
		Room: f["room"], Topic: f["topic"], Pattern: f["pattern"] == "1",
		ClientID: f["client"], Info: f["info"],
		MaxDur:  time.Duration(num("maxDur")),
		Expires: time.UnixMilli(num("expires")),
		MaxUses: int(num("maxUses")), Uses: int(num("uses")),
	}
	if ns := num("credExpires"); ns != 0 {
		sock.CredExpires = time.Unix(0, ns)
	}
	if bad != "" {
		return ClientSocket{}, pubsub.Errorf(pubsub.CodeInternal, "redis: bad client socket field %s", bad)
	}
	return sock, nil
}
