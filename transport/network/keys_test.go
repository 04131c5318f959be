package network

import (
	"errors"
	"testing"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

// The client id of a bare key cannot be computed from the key alone, nor
// claimed as a name by another key holder.
func TestBareKeyIdentityIsNotClaimable(t *testing.T) {
	s1 := NewServer(nil, Options{Keys: testKeys})
	s2 := NewServer(nil, Options{Keys: testKeys})
	id1, err := s1.keyIdentity("lobby", lobbyPub)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s2.keyIdentity("lobby", lobbyPub)
	if err != nil {
		t.Fatal(err)
	}
	if id1.ClientID == id2.ClientID {
		t.Errorf("two servers gave the bare key the same id %q: it is derivable from the key", id1.ClientID)
	}
	if again, _ := s1.keyIdentity("lobby", lobbyPub); again.ClientID != id1.ClientID {
		t.Errorf("the bare key's id changed within one server: %q, then %q", id1.ClientID, again.ClientID)
	}
	if _, err := s1.keyIdentity("lobby", lobbySub+":"+id1.ClientID); !errors.Is(err, pubsub.ErrUnauthenticated) {
		t.Errorf("a subscribe key claiming the name %q = %v, want UNAUTHENTICATED", id1.ClientID, err)
	}
}

// With Options.KeySecret, a bare key keeps its client id across servers,
// and so across a restart; without one, each server draws its own.
func TestKeySecretKeepsBareKeyIDs(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := NewServer(nil, Options{Keys: testKeys, KeySecret: secret})
	b := NewServer(nil, Options{Keys: testKeys, KeySecret: secret})
	other := NewServer(nil, Options{Keys: testKeys, KeySecret: []byte("another secret, of 32 bytes, too")})
	ida, err := a.keyIdentity("lobby", lobbyPub)
	if err != nil {
		t.Fatal(err)
	}
	idb, _ := b.keyIdentity("lobby", lobbyPub)
	ido, _ := other.keyIdentity("lobby", lobbyPub)
	if ida.ClientID != idb.ClientID {
		t.Errorf("two servers with one KeySecret gave the bare key ids %q and %q, want one", ida.ClientID, idb.ClientID)
	}
	if ida.ClientID == ido.ClientID {
		t.Errorf("servers with different KeySecrets both gave the bare key the id %q", ida.ClientID)
	}
}

// An HTTP publish with a bare key and an idempotency key, retried after the
// server and hub restart on the same history, is answered with the original
// message when the server keeps its KeySecret.
func TestKeySecretRetryAcrossRestart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret []byte
		same   bool
	}{
		{"stable secret", []byte("0123456789abcdef0123456789abcdef"), true},
		{"random secret", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := fakeclock.New(t0) // the store's retention runs on the hub's clock
			store := history.NewMemory(history.Options{Clock: clock})
			body := `{"message":"once","idempotencyKey":"order-42"}`
			first := newKeyFixture(t, memory.Options{Store: store}, Options{KeySecret: tc.secret, Clock: clock})
			m1 := first.publish(t, "lobby", "orders", lobbyPub, body)
			restarted := newKeyFixture(t, memory.Options{Store: store}, Options{KeySecret: tc.secret, Clock: clock})
			m2 := restarted.publish(t, "lobby", "orders", lobbyPub, body)
			if got := m1.ID == m2.ID; got != tc.same {
				t.Errorf("retry after restart: ids %s (from %s) then %s (from %s); same = %v, want %v", m1.ID, m1.From, m2.ID, m2.From, got, tc.same)
			}
		})
	}
}
