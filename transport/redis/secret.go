package redis

import (
	"context"
	"crypto/rand"

	"github.com/redis/rueidis"

	"github.com/plazahq/plaza/pubsub"
)

// Secret returns the secret called name that every node on this Redis (and
// Prefix) shares: n random bytes, made by the first node that asks and kept
// in Redis without expiry, so that every later call, on any node, returns
// the same. network.Options.KeySecret is one: nodes that share it give a
// bare key the same client id, so that an HTTP retry reaching another node
// is deduplicated. A stored secret of another length fails with
// INTERNAL_ERROR rather than be used.
func (c *Client) Secret(ctx context.Context, name string, n int) ([]byte, error) {
	if n <= 0 {
		return nil, pubsub.Errorf(pubsub.CodeInvalidRequest, "redis: a secret of %d bytes", n)
	}
	key := c.prefix + ":secret:" + name
	fresh := make([]byte, n)
	rand.Read(fresh)
	err := c.rc.Do(ctx, c.rc.B().Set().Key(key).Value(rueidis.BinaryString(fresh)).Nx().Build()).Error()
	if err != nil && !rueidis.IsRedisNil(err) { // nil: another node made it first
		return nil, classify(c.addr, "storing secret "+name, err)
	}
	got, err := c.rc.Do(ctx, c.rc.B().Get().Key(key).Build()).AsBytes()
	if err != nil {
		return nil, classify(c.addr, "reading secret "+name, err)
	}
	if len(got) != n {
		return nil, pubsub.Errorf(pubsub.CodeInternal, "redis: secret %s holds %d bytes, want %d", name, len(got), n)
	}
	return got, nil
}
