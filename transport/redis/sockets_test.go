package redis

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// A client socket created on node A is used on node B, its uses are
// counted once for both, and it expires for both.
func TestClientSocketAcrossNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := openOn(t, srv, Options{}).Sockets(), openOn(t, srv, Options{}).Sockets()
	now := time.Now().Truncate(time.Millisecond)
	sock := ClientSocket{
		Room: "room", Topic: "user:*", Pattern: true, ClientID: "alice", Info: "subscriber",
		CredExpires: now.Add(time.Hour), MaxDur: time.Minute, Expires: now.Add(5 * time.Minute), MaxUses: 2,
	}
	token, err := a.Create(ctxT(t), sock, now, 10)
	if err != nil {
		t.Fatalf("Create on A = %v", err)
	}
	got, release, err := b.Use(ctxT(t), "room", token, now.Add(time.Second))
	if err != nil {
		t.Fatalf("Use on B = %v", err)
	}
	want := sock
	want.Uses = 1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Use on B (-want +got):\n%s", diff)
	}
	// A failed connection gives its use back; then two uses, on A and B.
	if err := release(ctxT(t)); err != nil {
		t.Fatalf("release = %v", err)
	}
	for i, node := range []*SocketStore{a, b} {
		if _, _, err := node.Use(ctxT(t), "room", token, now.Add(time.Second)); err != nil {
			t.Fatalf("use %d = %v", i+1, err)
		}
	}
	tests := []struct {
		name  string
		node  *SocketStore
		room  string
		token string
		at    time.Time
		code  pubsub.Code
	}{
		{"used up, on A", a, "room", token, now.Add(time.Second), network.CodeExhaustedClientSocket},
		{"used up, on B", b, "room", token, now.Add(time.Second), network.CodeExhaustedClientSocket},
		{"another room", b, "other", token, now, network.CodeInvalidClientSocket},
		{"unknown token", b, "room", "nope", now, network.CodeInvalidClientSocket},
	}
	for _, tt := range tests {
		_, _, err := tt.node.Use(ctxT(t), tt.room, tt.token, tt.at)
		if perr, ok := err.(*pubsub.Error); !ok || perr.Code != tt.code {
			t.Errorf("%s: Use = %v, want %s", tt.name, err, tt.code)
		}
	}

	// Expiry, judged by Peek without taking a use.
	unlimited, err := b.Create(ctxT(t), ClientSocket{Room: "room", Topic: "chat", ClientID: "bob", Expires: now.Add(time.Minute)}, now, 10)
	if err != nil {
		t.Fatalf("Create on B = %v", err)
	}
	if s, err := a.Peek(ctxT(t), "room", unlimited, now.Add(59*time.Second)); err != nil || s.Uses != 0 || s.ClientID != "bob" {
		t.Errorf("Peek before expiry = %+v, %v; want bob's socket, unused", s, err)
	}
	_, err = a.Peek(ctxT(t), "room", unlimited, now.Add(time.Minute))
	if perr, ok := err.(*pubsub.Error); !ok || perr.Code != network.CodeExpiredClientSocket {
		t.Errorf("Peek at expiry = %v, want %s", err, network.CodeExpiredClientSocket)
	}
}

// The room's cap counts the usable sockets of every node; used-up and
// expired ones make room.
func TestClientSocketRoomCap(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := openOn(t, srv, Options{}).Sockets(), openOn(t, srv, Options{}).Sockets()
	now := time.Now()
	one := ClientSocket{Room: "room", Topic: "chat", ClientID: "x", Expires: now.Add(time.Minute), MaxUses: 1}
	first, err := a.Create(ctxT(t), one, now, 2)
	if err != nil {
		t.Fatalf("Create 1 = %v", err)
	}
	short := one
	short.Expires = now.Add(time.Second)
	if _, err := b.Create(ctxT(t), short, now, 2); err != nil {
		t.Fatalf("Create 2 = %v", err)
	}
	_, err = b.Create(ctxT(t), one, now, 2)
	if perr, ok := err.(*pubsub.Error); !ok || perr.Code != pubsub.CodeRateLimitExceeded || perr.RetryAfter <= 0 {
		t.Fatalf("Create 3 over the cap = %v, want RATE_LIMIT_EXCEEDED with RetryAfter", err)
	}
	// Using up the first and letting the second expire makes room for two
	// more, and no third.
	if _, _, err := b.Use(ctxT(t), "room", first, now); err != nil {
		t.Fatalf("Use = %v", err)
	}
	later := now.Add(2 * time.Second)
	for i, node := range []*SocketStore{a, b} {
		if _, err := node.Create(ctxT(t), one, later, 2); err != nil {
			t.Errorf("Create %d after one was used up and one expired = %v", i+1, err)
		}
	}
	if _, err := a.Create(ctxT(t), one, later, 2); err == nil {
		t.Error("Create over the cap again = nil, want RATE_LIMIT_EXCEEDED")
	}
	// Other rooms have their own count.
	other := one
	other.Room = "other"
	if _, err := a.Create(ctxT(t), other, later, 2); err != nil {
		t.Errorf("Create in another room = %v", err)
	}
}
