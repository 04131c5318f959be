package redis

import (
	"context"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
)

// Server returns s as a network.SocketStore, for network.Options.Sockets:
// the network.Servers of every node that share one Redis then share their
// temporary client sockets. A socket's identity keeps its ClientID and
// Expires, and an Info that is a network.Role (what network.Options.Keys
// gives); Create refuses, with PERMISSION_DENIED, a socket whose Info is
// of any other type, since Redis could not give it back. The per-room cap
// counts every node's sockets; network.Options.MaxClientSockets does not
// apply (it bounds the memory store).
func (s *SocketStore) Server() network.SocketStore { return serverSockets{s} }

// serverSockets adapts a SocketStore to network.SocketStore.
type serverSockets struct{ s *SocketStore }

var (
	_ network.SocketStore   = serverSockets{}
	_ network.PublishWindow = (*RateWindow)(nil)
)

func (a serverSockets) Create(ctx context.Context, sock network.ClientSocket, now time.Time, perRoom int) (string, error) {
	var info string
	switch v := sock.Identity.Info.(type) {
	case nil:
	case network.Role:
		info = string(v)
	default:
		return "", pubsub.Errorf(pubsub.CodePermissionDenied, "redis: a client socket's identity can keep a network.Role, not a %T", v)
	}
	return a.s.Create(ctx, ClientSocket{
		Room:        sock.Room,
		Topic:       sock.Topic,
		Pattern:     sock.Pattern,
		ClientID:    sock.Identity.ClientID,
		Info:        info,
		CredExpires: sock.Identity.Expires,
		MaxDur:      sock.MaxDur,
		Expires:     sock.Expires,
		MaxUses:     sock.MaxUses,
	}, now, perRoom)
}

func (a serverSockets) Use(ctx context.Context, room, token string, now time.Time) (network.ClientSocket, func(context.Context) error, error) {
	sock, release, err := a.s.Use(ctx, room, token, now)
	if err != nil {
		return network.ClientSocket{}, nil, err
	}
	return fromRedis(sock), release, nil
}

func (a serverSockets) Peek(ctx context.Context, room, token string, now time.Time) (network.ClientSocket, error) {
	sock, err := a.s.Peek(ctx, room, token, now)
	if err != nil {
		return network.ClientSocket{}, err
	}
	return fromRedis(sock), nil
}

func fromRedis(sock ClientSocket) network.ClientSocket {
	id := network.Identity{ClientID: sock.ClientID, Expires: sock.CredExpires}
	if sock.Info != "" {
		id.Info = network.Role(sock.Info)
	}
	return network.ClientSocket{
		Room:     sock.Room,
		Topic:    sock.Topic,
		Pattern:  sock.Pattern,
		Identity: id,
		MaxDur:   sock.MaxDur,
		Expires:  sock.Expires,
		MaxUses:  sock.MaxUses,
		Uses:     sock.Uses,
	}
}
