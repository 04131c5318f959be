// Package statetest checks implementations of the stores a network.Server
// keeps its state in between requests: [network.SocketStore] (temporary
// client sockets) and [network.PublishWindow] (the per-minute cap of HTTP
// publishes). Several Servers that share one store act as one; these
// suites hold a store to what the Server relies on, the way
// transport/transporttest holds a pubsub.Transport.
//
// Use [SocketStore] and [PublishWindow] from a test of the implementation:
//
//	func TestSocketStore(t *testing.T) {
//		statetest.SocketStore(t, func(t *testing.T) network.SocketStore {
//			return network.NewMemorySocketStore(0)
//		})
//	}
//
// Each named subtest gets a fresh store from open. The suites pass every
// time explicitly, starting at the current second of the system clock (a
// store outside the process may expire its keys on its own clock), and
// never sleep. Rooms and keys carry a random part, so stores that share
// a backend between subtests do not see each other's state.
package statetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
)

// waitTimeout bounds each call to a store.
const waitTimeout = 20 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// unique returns prefix with a random suffix.
func unique(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// start is the time the suites begin at: now, to the second.
func start() time.Time { return time.Now().Truncate(time.Second) }

func wantCode(t *testing.T, what string, err error, code pubsub.Code) {
	t.Helper()
	var perr *pubsub.Error
	if !errors.As(err, &perr) || perr.Code != code {
		t.Errorf("%s = %v, want a *pubsub.Error with code %s", what, err, code)
	}
}

// SocketStore runs the conformance suite of network.SocketStore against
// the stores open returns, one for each subtest.
func SocketStore(t *testing.T, open func(t *testing.T) network.SocketStore) {
	cases := []struct {
		name string
		run  func(t *testing.T, s network.SocketStore)
	}{
		{"RoundTrip", socketRoundTrip},
		{"Tokens", socketTokens},
		{"MaxUses", socketMaxUses},
		{"Unlimited", socketUnlimited},
		{"Release", socketRelease},
		{"Expiry", socketExpiry},
		{"OtherRoom", socketOtherRoom},
		{"PerRoom", socketPerRoom},
		{"ConcurrentUse", socketConcurrentUse},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, open(t)) })
	}
}

// newSocket is a socket of a fresh room that expires a minute after now.
func newSocket(now time.Time, maxUses int) network.ClientSocket {
	return network.ClientSocket{
		Room:    unique("room"),
		Topic:   "chat",
		MaxDur:  90 * time.Second,
		Expires: now.Add(time.Minute),
		MaxUses: maxUses,
		Identity: network.Identity{
			ClientID: "alice",
			Expires:  now.Add(time.Hour),
			Info:     network.RoleSubscriber,
		},
	}
}

func create(t *testing.T, s network.SocketStore, sock network.ClientSocket, now time.Time) string {
	t.Helper()
	token, err := s.Create(ctxT(t), sock, now, 100)
	if err != nil {
		t.Fatalf("Create(%s) = %v", sock.Room, err)
	}
	return token
}

func use(t *testing.T, s network.SocketStore, room, token string, now time.Time) (network.ClientSocket, func(context.Context) error) {
	t.Helper()
	sock, release, err := s.Use(ctxT(t), room, token, now)
	if err != nil {
		t.Fatalf("Use() = %v, want success", err)
	}
	if release == nil {
		t.Fatal("Use() returned no release function")
	}
	return sock, release
}

// socketRoundTrip: what Create stored, Peek and Use give back.
func socketRoundTrip(t *testing.T, s network.SocketStore) {
	now := start()
	for _, pattern := range []bool{false, true} {
		want := newSocket(now, 2)
		want.Pattern = pattern
		if pattern {
			want.Topic = "user:*"
		}
		token := create(t, s, want, now)
		got, err := s.Peek(ctxT(t), want.Room, token, now)
		if err != nil {
			t.Fatalf("Peek() = %v", err)
		}
		check := func(what string, got network.ClientSocket, uses int) {
			t.Helper()
			w := want
			w.Uses = uses
			if got.Room != w.Room || got.Topic != w.Topic || got.Pattern != w.Pattern ||
				got.MaxDur != w.MaxDur || !got.Expires.Equal(w.Expires) || got.MaxUses != w.MaxUses || got.Uses != w.Uses ||
				got.Identity.ClientID != w.Identity.ClientID || !got.Identity.Expires.Equal(w.Identity.Expires) ||
				got.Identity.Info != w.Identity.Info {
				t.Errorf("%s = %+v, want %+v", what, got, w)
			}
		}
		check("Peek()", got, 0)
		got, _ = use(t, s, want.Room, token, now)
		check("Use()", got, 1)
		got, err = s.Peek(ctxT(t), want.Room, token, now)
		if err != nil {
			t.Fatalf("Peek() after a use = %v", err)
		}
		check("Peek() after a use", got, 1)
	}
}

// socketTokens: tokens differ, carry at least 128 bits and need no escaping.
func socketTokens(t *testing.T, s network.SocketStore) {
	now := start()
	seen := make(map[string]bool)
	sock := newSocket(now, 1)
	for range 20 {
		token := create(t, s, sock, now)
		if seen[token] {
			t.Fatalf("Create() returned %q twice", token)
		}
		seen[token] = true
		if len(token) < 22 {
			t.Errorf("token %q is shorter than 128 bits of base64", token)
		}
		if url.PathEscape(token) != token {
			t.Errorf("token %q needs escaping in a URL path", token)
		}
	}
}

// socketMaxUses: MaxUses uses, then exhausted_client_socket, which Peek
// reports too.
func socketMaxUses(t *testing.T, s network.SocketStore) {
	now := start()
	sock := newSocket(now, 2)
	token := create(t, s, sock, now)
	use(t, s, sock.Room, token, now)
	use(t, s, sock.Room, token, now.Add(time.Second))
	_, _, err := s.Use(ctxT(t), sock.Room, token, now.Add(2*time.Second))
	wantCode(t, "Use() beyond max_uses", err, network.CodeExhaustedClientSocket)
	_, err = s.Peek(ctxT(t), sock.Room, token, now.Add(2*time.Second))
	wantCode(t, "Peek() of a used-up socket", err, network.CodeExhaustedClientSocket)
	// Used up takes precedence over expired.
	_, _, err = s.Use(ctxT(t), sock.Room, token, sock.Expires.Add(time.Second))
	wantCode(t, "Use() of a used-up, expired socket", err, network.CodeExhaustedClientSocket)
}

// socketUnlimited: MaxUses zero never runs out.
func socketUnlimited(t *testing.T, s network.SocketStore) {
	now := start()
	sock := newSocket(now, 0)
	token := create(t, s, sock, now)
	for i := range 5 {
		got, _ := use(t, s, sock.Room, token, now)
		if got.Uses != i+1 {
			t.Errorf("use #%d: Uses = %d, want %d", i+1, got.Uses, i+1)
		}
	}
}

// socketRelease: a released use can be taken again, and counts no more.
func socketRelease(t *testing.T, s network.SocketStore) {
	now := start()
	sock := newSocket(now, 1)
	token := create(t, s, sock, now)
	_, release := use(t, s, sock.Room, token, now)
	_, _, err := s.Use(ctxT(t), sock.Room, token, now)
	wantCode(t, "Use() of a socket with max_uses 1, twice", err, network.CodeExhaustedClientSocket)
	if err := release(ctxT(t)); err != nil {
		t.Fatalf("release() = %v", err)
	}
	got, err := s.Peek(ctxT(t), sock.Room, token, now)
	if err != nil || got.Uses != 0 {
		t.Fatalf("Peek() after release = %+v, %v; want Uses 0", got, err)
	}
	use(t, s, sock.Room, token, now)
}

// socketExpiry: a socket can be used until just before Expires.
func socketExpiry(t *testing.T, s network.SocketStore) {
	now := start()
	sock := newSocket(now, 0)
	token := create(t, s, sock, now)
	use(t, s, sock.Room, token, sock.Expires.Add(-time.Millisecond))
	_, _, err := s.Use(ctxT(t), sock.Room, token, sock.Expires)
	wantCode(t, "Use() at Expires", err, network.CodeExpiredClientSocket)
	_, err = s.Peek(ctxT(t), sock.Room, token, sock.Expires.Add(time.Minute))
	wantCode(t, "Peek() a minute after Expires", err, network.CodeExpiredClientSocket)
}

// socketOtherRoom: a token belongs to its room; an unknown one to none.
func socketOtherRoom(t *testing.T, s network.SocketStore) {
	now := start()
	sock := newSocket(now, 0)
	token := create(t, s, sock, now)
	_, _, err := s.Use(ctxT(t), unique("room"), token, now)
	wantCode(t, "Use() in another room", err, network.CodeInvalidClientSocket)
	_, err = s.Peek(ctxT(t), unique("room"), token, now)
	wantCode(t, "Peek() in another room", err, network.CodeInvalidClientSocket)
	_, _, err = s.Use(ctxT(t), sock.Room, token[:len(token)-1]+"A", now)
	if token[len(token)-1] == 'A' {
		_, _, err = s.Use(ctxT(t), sock.Room, token[:len(token)-1]+"B", now)
	}
	wantCode(t, "Use() of a token one character off", err, network.CodeInvalidClientSocket)
	_, _, err = s.Use(ctxT(t), sock.Room, "", now)
	wantCode(t, `Use("")`, err, network.CodeInvalidClientSocket)
}

// socketPerRoom: a room holds perRoom usable sockets; used-up and expired
// ones make way; other rooms are not affected.
func socketPerRoom(t *testing.T, s network.SocketStore) {
	now := start()
	sock := newSocket(now, 1)
	const perRoom = 3
	var tokens []string
	for i := range perRoom {
		token, err := s.Create(ctxT(t), sock, now, perRoom)
		if err != nil {
			t.Fatalf("Create #%d of %d = %v", i+1, perRoom, err)
		}
		tokens = append(tokens, token)
	}
	_, err := s.Create(ctxT(t), sock, now, perRoom)
	wantCode(t, "Create() beyond perRoom", err, pubsub.CodeRateLimitExceeded)
	other := sock
	other.Room = unique("room")
	if _, err := s.Create(ctxT(t), other, now, perRoom); err != nil {
		t.Errorf("Create() in another room = %v, want success", err)
	}
	use(t, s, sock.Room, tokens[0], now) // used up
	if _, err := s.Create(ctxT(t), sock, now, perRoom); err != nil {
		t.Errorf("Create() after one socket was used up = %v, want success", err)
	}
	_, err = s.Create(ctxT(t), sock, now, perRoom)
	wantCode(t, "Create() beyond perRoom again", err, pubsub.CodeRateLimitExceeded)
	later := sock.Expires // every socket so far has expired
	sock.Expires = later.Add(time.Minute)
	if _, err := s.Create(ctxT(t), sock, later, perRoom); err != nil {
		t.Errorf("Create() after the room's sockets expired = %v, want success", err)
	}
}

// socketConcurrentUse: of many Uses at once of a socket with max_uses 3,
// three succeed.
func socketConcurrentUse(t *testing.T, s network.SocketStore) {
	now := start()
	sock := newSocket(now, 3)
	token := create(t, s, sock, now)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, _, err := s.Use(ctxT(t), sock.Room, token, now)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
			continue
		}
		wantCode(t, "a concurrent Use()", err, network.CodeExhaustedClientSocket)
	}
	if ok != 3 {
		t.Errorf("%d of %d concurrent Uses succeeded, want max_uses = 3", ok, n)
	}
}

// PublishWindow runs the conformance suite of network.PublishWindow
// against the windows open returns, one for each subtest.
func PublishWindow(t *testing.T, open func(t *testing.T) network.PublishWindow) {
	cases := []struct {
		name string
		run  func(t *testing.T, w network.PublishWindow)
	}{
		{"Limit", windowLimit},
		{"Rolling", windowRolling},
		{"Keys", windowKeys},
		{"NoLimit", windowZero},
		{"Concurrent", windowConcurrent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, open(t)) })
	}
}

func allow(t *testing.T, w network.PublishWindow, key string, limit int, now time.Time) (bool, time.Duration) {
	t.Helper()
	ok, after, err := w.Allow(ctxT(t), key, limit, now)
	if err != nil {
		t.Fatalf("Allow(%s, %d, %v) = %v", key, limit, now, err)
	}
	return ok, after
}

// windowLimit: limit events a minute, then a refusal until the first leaves.
func windowLimit(t *testing.T, w network.PublishWindow) {
	now := start()
	key := unique("room")
	for i := range 3 {
		if ok, _ := allow(t, w, key, 3, now.Add(time.Duration(i)*100*time.Millisecond)); !ok {
			t.Fatalf("event %d of 3 refused", i+1)
		}
	}
	ok, after := allow(t, w, key, 3, now.Add(500*time.Millisecond))
	if ok {
		t.Fatal("the 4th event of a minute with limit 3 was allowed")
	}
	if want := time.Minute - 500*time.Millisecond; after != want {
		t.Errorf("retry after = %v, want %v (when the first event's second leaves the window)", after, want)
	}
	if ok, _ := allow(t, w, key, 3, now.Add(time.Minute-time.Millisecond)); ok {
		t.Error("an event just before a minute passed was allowed")
	}
	if ok, _ := allow(t, w, key, 3, now.Add(time.Minute)); !ok {
		t.Error("an event a minute after the first ones was refused")
	}
}

// windowRolling: the window rolls by the second, without a fixed minute's
// double burst at its boundary.
func windowRolling(t *testing.T, w network.PublishWindow) {
	now := start()
	key := unique("room")
	allow(t, w, key, 2, now)
	allow(t, w, key, 2, now.Add(30*time.Second))
	ok, after := allow(t, w, key, 2, now.Add(59*time.Second))
	if ok {
		t.Fatal("a 3rd event within 59 s with limit 2 was allowed")
	}
	if after != time.Second {
		t.Errorf("retry after = %v, want 1s", after)
	}
	if ok, _ := allow(t, w, key, 2, now.Add(60*time.Second)); !ok {
		t.Error("an event when the first had left the window was refused")
	}
	if ok, _ := allow(t, w, key, 2, now.Add(61*time.Second)); ok {
		t.Error("an event with two in the last minute (30 s and 60 s) was allowed")
	}
}

// windowKeys: each key has a window of its own.
func windowKeys(t *testing.T, w network.PublishWindow) {
	now := start()
	a, b := unique("room"), unique("room")
	allow(t, w, a, 1, now)
	if ok, _ := allow(t, w, a, 1, now); ok {
		t.Error("a 2nd event of a key with limit 1 was allowed")
	}
	if ok, _ := allow(t, w, b, 1, now); !ok {
		t.Error("the first event of another key was refused")
	}
}

// windowZero: a limit of zero allows nothing, and records nothing.
func windowZero(t *testing.T, w network.PublishWindow) {
	now := start()
	key := unique("room")
	if ok, after := allow(t, w, key, 0, now); ok || after <= 0 {
		t.Errorf("Allow() with limit 0 = %v, %v; want false and a positive retry", ok, after)
	}
	if ok, _ := allow(t, w, key, 1, now); !ok {
		t.Error("a refused event was counted")
	}
}

// windowConcurrent: of many events at once, limit are allowed.
func windowConcurrent(t *testing.T, w network.PublishWindow) {
	now := start()
	key := unique("room")
	const n, limit = 32, 10
	var wg sync.WaitGroup
	oks := make(chan bool, n)
	for range n {
		wg.Go(func() {
			ok, _, err := w.Allow(ctxT(t), key, limit, now)
			if err != nil {
				t.Errorf("Allow() = %v", err)
			}
			oks <- ok
		})
	}
	wg.Wait()
	close(oks)
	allowed := 0
	for ok := range oks {
		if ok {
			allowed++
		}
	}
	if allowed != limit {
		t.Errorf("%d of %d concurrent events allowed, want the limit, %d", allowed, n, limit)
	}
}
