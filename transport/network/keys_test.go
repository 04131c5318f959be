package network

import (
	"errors"
	"testing"

	"github.com/plazahq/plaza/pubsub"
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
