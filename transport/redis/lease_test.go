package redis

import (
	"errors"
	"testing"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// TestLeaseCloseAfterRestart: a hub that closes right after Redis restarted
// still frees its node id at once, although the client's connection died
// with the old server; with Redis gone, Close says so with NETWORK_ERROR
// (the lease then lapses after its TTL).
func TestLeaseCloseAfterRestart(t *testing.T) {
	c, srv := open(t, redistest.Options{AOF: true})
	ctx := ctxT(t)
	l, err := c.AcquireNode(ctx, 1, LeaseOptions{})
	if err != nil {
		t.Fatalf("AcquireNode(1) = %v", err)
	}
	srv.Restart()
	if err := l.Close(); err != nil {
		t.Fatalf("Lease.Close() after a Redis restart = %v, want nil", err)
	}
	n, err := c.rc.Do(ctx, c.rc.B().Exists().Key(l.key).Build()).AsInt64()
	if err != nil || n != 0 {
		t.Errorf("EXISTS %s after Close = %d, %v; want 0, nil (the lease released)", l.key, n, err)
	}

	l, err = c.AcquireNode(ctx, 1, LeaseOptions{})
	if err != nil {
		t.Fatalf("AcquireNode(1) after the release = %v", err)
	}
	srv.Stop()
	if err := l.Close(); !errors.Is(err, pubsub.ErrNetwork) {
		t.Errorf("Lease.Close() with Redis stopped = %v, want NETWORK_ERROR", err)
	}
}
