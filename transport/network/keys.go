package network

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/plazahq/plaza/pubsub"
)

// RoomKeys are the credentials of one room, or of one tenant whose rooms
// share them: keys that may publish and keys that may only subscribe. A
// publish key can do everything a subscribe key can, and publish. Keys are
// compared in constant time.
//
// The zero value has no keys: nobody gets in.
type RoomKeys struct {
	// Publish keys may publish (over HTTP and WebSocket), subscribe, read
	// history and create temporary client sockets. Keep them on servers.
	Publish []string
	// Subscribe keys may subscribe, read history and create temporary
	// client sockets, and never publish: a publish with one fails with
	// PERMISSION_DENIED (HTTP 403). They are meant for clients.
	Subscribe []string
	// PublishPerMinute caps the HTTP publishes of the room, whoever sends
	// them, over a rolling minute; zero means Options.PublishPerMinute.
	// Negative means no cap for this room.
	PublishPerMinute int
}

// Names are claimed, not proven: whoever holds a key of a room may connect
// under any name but the reserved "key-…" ones, so a subscribe key can read
// what is addressed with To to any name. When identities matter, issue a
// token per user and check it in Options.Authenticate instead of using Keys.

// Role is what a key allows. With Options.Keys, it is the Info of every
// Identity the server makes.
type Role string

// The roles of Options.Keys.
const (
	RolePublisher  Role = "publisher"  // a publish key
	RoleSubscriber Role = "subscriber" // a subscribe key
)

// keyIdentity authenticates a credential against the keys of a room. The
// credential is "<key>" or "<key>:<name>": the name, when there is one,
// becomes the client id; a bare key gets "key-" and 12 hex digits of an HMAC
// of it under a secret of the server's (Options.KeySecret), the same for every
// request with that key, so that idempotency keys of HTTP publishes made with
// it work across retries, and not computable by anyone else. Names
// starting with "key-" are reserved for those ids.
func (s *Server) keyIdentity(room, cred string) (Identity, error) {
	keys, ok := s.opts.Keys(room)
	if !ok {
		return Identity{}, pubsub.Errorf(pubsub.CodeUnauthenticated, "unknown room or key")
	}
	key, name, named := strings.Cut(cred, ":")
	var role Role
	switch {
	case key == "":
	case anyKey(keys.Publish, key):
		role = RolePublisher
	case anyKey(keys.Subscribe, key):
		role = RoleSubscriber
	}
	if role == "" {
		return Identity{}, pubsub.Errorf(pubsub.CodeUnauthenticated, "unknown room or key")
	}
	if !named {
		mac := hmac.New(sha256.New, s.keyMAC)
		mac.Write([]byte(key))
		name = "key-" + hex.EncodeToString(mac.Sum(nil)[:6])
	} else if strings.HasPrefix(name, "key-") {
		return Identity{}, pubsub.Errorf(pubsub.CodeUnauthenticated, "names starting with \"key-\" are reserved")
	}
	if err := pubsub.CheckClientID(name); err != nil {
		return Identity{}, err
	}
	return Identity{ClientID: name, Info: role}, nil
}

// anyKey reports whether key is one of keys, comparing each in constant time.
func anyKey(keys []string, key string) bool {
	found := 0
	for _, k := range keys {
		if k != "" {
			found |= subtle.ConstantTimeCompare([]byte(k), []byte(key))
		}
	}
	return found == 1
}

// authenticateKeys is the Authenticate of a server with Options.Keys. The
// room is the request's {room} path value.
func (s *Server) authenticateKeys(_ context.Context, r *http.Request, cred string) (Identity, error) {
	return s.keyIdentity(r.PathValue("room"), cred)
}

// authorize asks the server's authorization about one action of id: the
// key's role first, with Options.Keys, then Options.Authorize. A refusal is a
// *pubsub.Error; anything but one from the hooks becomes PERMISSION_DENIED.
func (s *Server) authorize(ctx context.Context, id Identity, a pubsub.Access) error {
	if s.opts.Keys != nil && a.Action == pubsub.ActionPublish && id.Info != RolePublisher {
		return pubsub.Errorf(pubsub.CodePermissionDenied, "a subscribe key cannot publish")
	}
	auth := s.opts.Authorize
	if auth == nil {
		return nil
	}
	err := auth(ctx, id, a)
	if err == nil {
		return nil
	}
	if perr := (*pubsub.Error)(nil); errors.As(err, &perr) {
		return perr
	}
	return &pubsub.Error{Code: pubsub.CodePermissionDenied, Message: err.Error(), Err: err}
}

// publishLimit is the HTTP publish cap of room per rolling minute; zero or
// less means none.
func (s *Server) publishLimit(room string) int {
	limit := s.opts.PublishPerMinute
	if s.opts.Keys != nil {
		if keys, ok := s.opts.Keys(room); ok && keys.PublishPerMinute != 0 {
			limit = keys.PublishPerMinute
		}
	}
	return limit
}
