package main

import (
	"context"
	"fmt"
	neturl "net/url"

	"github.com/plazahq/plaza/transport/redis"
)

// redisNode is what -redis opens: the connection to the Redis that the
// nodes share, the hub's Broker on it (with a node id leased for this
// process), and the key secret every node uses.
type redisNode struct {
	client *redis.Client
	broker *redis.Broker
	secret []byte
}

// openRedis connects to the Redis at url and leases the lowest free node
// id. Its errors name -redis and say what failed: an address that does not
// answer, a refused password, a Redis older than 7, no free node id.
func openRedis(ctx context.Context, url string) (*redisNode, error) {
	c, err := redis.Open(ctx, redis.Options{URL: url})
	if err != nil {
		return nil, fmt.Errorf("-redis %s: %w", redactURL(url), err)
	}
	// The key secret is shared, so that a bare key gives the same client
	// id on every node and an HTTP retry reaching another node is
	// recognized.
	secret, err := c.Secret(ctx, "key-secret", 32)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("-redis %s: %w", redactURL(url), err)
	}
	b, err := redis.NewBroker(ctx, redis.BrokerOptions{Client: c, NodeID: -1})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("-redis %s: %w", redactURL(url), err)
	}
	return &redisNode{client: c, broker: b, secret: secret}, nil
}

// close releases the node id and the connection, after the hub closed.
func (n *redisNode) close() {
	n.broker.Close()
	n.client.Close()
}

// redactURL is url without its password, for printing.
func redactURL(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return u.Redacted()
}
