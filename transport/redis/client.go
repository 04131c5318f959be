package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/plazahq/plaza/pubsub"
)

// Options configure [Open]. The zero value connects to [DefaultURL] with
// the defaults below.
type Options struct {
	// URL is the Redis server: redis://[user:password@]host:port[/db], or
	// rediss:// for TLS. The address of any node of a Redis Cluster works
	// too: the client finds the others and routes each topic to its
	// shard. Empty means redis://127.0.0.1:6379.
	URL string
	// Prefix starts the name of every key and channel the package uses, so
	// that several deployments can share one Redis. Empty means "plaza".
	Prefix string
	// DialTimeout bounds connecting to Redis, and Open's first round trip.
	// Zero means 5 seconds.
	DialTimeout time.Duration
	// Clock tells the time for leases, rate windows and client sockets.
	// Nil means the system clock. Every node must agree on the time to
	// within a second or so (run NTP): rate windows and retention compare
	// times stamped on different machines.
	Clock pubsub.Clock
}

// DefaultURL is the Redis server of Options with no URL.
const DefaultURL = "redis://127.0.0.1:6379"

// Client is a connection to one Redis deployment, shared by everything the
// package offers: history stores, node-id leases, rate windows, client
// sockets and subscribers. Commands issued concurrently are pipelined on
// the same connections.
//
// Create a Client with [Open]; the zero value is not usable. A Client is
// safe for concurrent use.
type Client struct {
	rc      rueidis.Client // counted, as a rueidis.Client
	counted *countedClient
	// sc carries the subscriptions, on one connection per Redis server,
	// so that messages of different topics on one server arrive in the
	// order Redis published them (rc spreads commands over several).
	sc     rueidis.Client
	prefix string
	clock  pubsub.Clock
	addr   string

	closeOnce sync.Once
}

// Open connects to the Redis of opts and checks that it answers and runs
// Redis 7 or newer (the scripts use sharded pub/sub and script flags). A
// server that cannot be reached fails with NETWORK_ERROR, a refused
// password with UNAUTHENTICATED, an older server with INTERNAL_ERROR; each
// error names the address.
func Open(ctx context.Context, opts Options) (*Client, error) {
	if opts.URL == "" {
		opts.URL = DefaultURL
	}
	if opts.Prefix == "" {
		opts.Prefix = "plaza"
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = pubsub.SystemClock{}
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, pubsub.Errorf(pubsub.CodeInvalidRequest, "redis: Prefix %q contains a brace, which would change the keys' hash slots", opts.Prefix)
	}
	co, err := rueidis.ParseURL(opts.URL)
	if err != nil {
		return nil, pubsub.Errorf(pubsub.CodeInvalidRequest, "redis: bad URL: %w", err)
	}
	addr := strings.Join(co.InitAddress, ",")
	co.Dialer.Timeout = opts.DialTimeout
	co.ConnWriteTimeout = opts.DialTimeout
	co.DisableCache = true // no client-side caching: nothing here reads a key twice
	rc, err := rueidis.NewClient(co)
	if err != nil {
		return nil, classify(addr, "connecting", err)
	}
	co.PipelineMultiplex = -1
	sc, err := rueidis.NewClient(co)
	if err != nil {
		rc.Close()
		return nil, classify(addr, "connecting", err)
	}
	counted := &countedClient{Client: rc}
	c := &Client{rc: counted, counted: counted, sc: sc, prefix: opts.Prefix, clock: opts.Clock, addr: addr}
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	info, err := rc.Do(pctx, rc.B().Info().Section("server").Build()).ToString()
	if err != nil {
		rc.Close()
		sc.Close()
		return nil, classify(addr, "asking for the server's version", err)
	}
	if v := serverVersion(info); v < 7 {
		rc.Close()
		sc.Close()
		return nil, pubsub.Errorf(pubsub.CodeInternal, "redis: %s runs Redis %d; this package needs Redis 7 or newer (sharded pub/sub, script flags)", addr, v)
	}
	return c, nil
}

// serverVersion returns the major version in the server section of INFO.
func serverVersion(info string) int {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			major, _, _ := strings.Cut(v, ".")
			n, _ := strconv.Atoi(major)
			return n
		}
	}
	return 0
}

// Close closes the connections to Redis, after the commands in flight. It
// is idempotent. Close the stores, leases and subscribers that use the
// Client first.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.sc.Close()
		c.rc.Close()
	})
	return nil
}

// Addr is the address of the Redis server the Client was opened on.
func (c *Client) Addr() string { return c.addr }

// Ping checks that Redis answers, for a readiness probe: nil, or the error
// a command would get (NETWORK_ERROR while Redis is unreachable).
func (c *Client) Ping(ctx context.Context) error {
	if err := c.rc.Do(ctx, c.rc.B().Ping().Build()).Error(); err != nil {
		return classify(c.addr, "pinging", err)
	}
	return nil
}

// Sentinels for errors.Is, besides the pubsub codes every error carries.
var (
	// ErrRedisFull is the cause of a write that Redis refused because it
	// reached its maxmemory (OOM). The error's code is INTERNAL_ERROR: the
	// operator must give Redis memory or lower retention.
	ErrRedisFull = errors.New("redis: out of memory (maxmemory reached)")
	// ErrNodeIDTaken is the cause of a node-id lease that another hub
	// holds; see [Client.AcquireNode].
	ErrNodeIDTaken = errors.New("redis: node id taken")
)

// classify turns an error of the Redis client into a *pubsub.Error whose
// message names addr and what was being done:
//
//   - unreachable, refused, timed out or closed connections: NETWORK_ERROR
//     (retriable: Redis may come back);
//   - a refused password or user: UNAUTHENTICATED;
//   - OOM: INTERNAL_ERROR, caused by [ErrRedisFull];
//   - a canceled or expired ctx: the context's error itself;
//   - anything else Redis answered: INTERNAL_ERROR with Redis's message.
func classify(addr, doing string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// A deadline that expired while Redis did not answer is how an
		// unreachable server shows; keep the context's error reachable.
		return &pubsub.Error{Code: pubsub.CodeNetworkError, Message: fmt.Sprintf("redis: %s %s: %v", doing, addr, err), Err: err}
	}
	var rerr *rueidis.RedisError
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		switch {
		case strings.HasPrefix(msg, "OOM"):
			return &pubsub.Error{Code: pubsub.CodeInternal, Message: fmt.Sprintf("redis: %s %s: Redis is out of memory (maxmemory reached): %s", doing, addr, msg), Err: ErrRedisFull}
		case strings.HasPrefix(msg, "NOAUTH"), strings.HasPrefix(msg, "WRONGPASS"), strings.Contains(msg, "invalid password"), strings.Contains(msg, "without any password configured"):
			return &pubsub.Error{Code: pubsub.CodeUnauthenticated, Message: fmt.Sprintf("redis: %s %s: authentication failed: %s", doing, addr, msg), Err: err}
		case strings.HasPrefix(msg, "LOADING"), strings.HasPrefix(msg, "TRYAGAIN"), strings.HasPrefix(msg, "CLUSTERDOWN"), strings.HasPrefix(msg, "MASTERDOWN"):
			return &pubsub.Error{Code: pubsub.CodeNetworkError, Message: fmt.Sprintf("redis: %s %s: %s", doing, addr, msg), Err: err}
		}
		return &pubsub.Error{Code: pubsub.CodeInternal, Message: fmt.Sprintf("redis: %s %s: %s", doing, addr, msg), Err: err}
	}
	// Not an answer of Redis: the connection failed (refused, reset, timed
	// out, closed). Redis may come back.
	return &pubsub.Error{Code: pubsub.CodeNetworkError, Message: fmt.Sprintf("redis: %s %s: %v", doing, addr, err), Err: err}
}
