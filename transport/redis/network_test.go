package redis

import (
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
	"github.com/plazahq/plaza/transport/network/statetest"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// The stores a network.Server takes keep their contract on Redis: each
// open is a client of its own, as another node would be.
func TestServerStores(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	t.Run("SocketStore", func(t *testing.T) {
		statetest.SocketStore(t, func(t *testing.T) network.SocketStore { return openOn(t, srv, Options{}).Sockets().Server() })
	})
	t.Run("PublishWindow", func(t *testing.T) {
		statetest.PublishWindow(t, func(t *testing.T) network.PublishWindow { return openOn(t, srv, Options{}).RateWindow() })
	})
}

// A socket whose identity Redis could not give back is refused, not
// stored with part of it.
func TestServerSocketsRefuseOtherInfo(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := openOn(t, srv, Options{}).Sockets().Server()
	now := time.Now()
	sock := network.ClientSocket{Room: "r", Topic: "t", Identity: network.Identity{ClientID: "alice", Info: map[string]string{"role": "admin"}}, Expires: now.Add(time.Minute)}
	if _, err := s.Create(ctxT(t), sock, now, 10); pubsub.CodeOf(err) != pubsub.CodePermissionDenied {
		t.Fatalf("Create with a map Info = %v, want PERMISSION_DENIED", err)
	}
	sock.Identity.Info = network.RoleSubscriber
	token, err := s.Create(ctxT(t), sock, now, 10)
	if err != nil {
		t.Fatalf("Create with a Role = %v", err)
	}
	got, err := s.Peek(ctxT(t), "r", token, now)
	if err != nil {
		t.Fatalf("Peek = %v", err)
	}
	if got.Identity.Info != network.RoleSubscriber || got.Identity.ClientID != "alice" {
		t.Errorf("Peek identity = %+v, want alice with RoleSubscriber", got.Identity)
	}
}
