package redis

import (
	"bytes"
	"testing"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// Two nodes asking for the same secret get the same bytes; another name
// is another secret, and a length that does not match what is stored is
// an error, not a shorter secret.
func TestSecretShared(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := openOn(t, srv, Options{}), openOn(t, srv, Options{})
	sa, err := a.Secret(ctxT(t), "key-secret", 32)
	if err != nil {
		t.Fatalf("Secret on A = %v", err)
	}
	sb, err := b.Secret(ctxT(t), "key-secret", 32)
	if err != nil {
		t.Fatalf("Secret on B = %v", err)
	}
	if len(sa) != 32 || !bytes.Equal(sa, sb) {
		t.Errorf("Secret on A = %x, on B = %x: want the same 32 bytes", sa, sb)
	}
	other, err := b.Secret(ctxT(t), "other", 32)
	if err != nil || bytes.Equal(other, sa) {
		t.Errorf("Secret(other) = %x, %v: want another secret", other, err)
	}
	if _, err := a.Secret(ctxT(t), "key-secret", 16); pubsub.CodeOf(err) != pubsub.CodeInternal {
		t.Errorf("Secret of another length = %v, want INTERNAL_ERROR", err)
	}
}
