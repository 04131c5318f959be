package redis

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/plazahq/plaza/pubsub"
)

var (
	//go:embed lua/lease.lua
	leaseLua    string
	leaseScript = newScript(leaseLua)
)

// MaxNodeID is the highest snowflake node id (10 bits).
const MaxNodeID = 1023

// DefaultLeaseTTL is how long a node-id lease lasts without renewal.
const DefaultLeaseTTL = 15 * time.Second

// Lease is a hub's claim on a snowflake node id, held in Redis so that no
// two hubs on one Redis make ids with the same node id at the same time:
// two hubs with one node id could make the same id in the same
// millisecond. It is renewed every third of its length until Close
// releases it.
//
// Get a Lease with [Client.AcquireNode]; the zero value is not usable. A
// Lease is safe for concurrent use.
type Lease struct {
	c     *Client
	node  int
	key   string
	token string
	ttl   time.Duration

	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once

	mu   sync.Mutex
	lost error // set when a renewal found the lease gone or taken
	done chan struct{}
}

// LeaseOptions configure [Client.AcquireNode]. The zero value is a lease of
// DefaultLeaseTTL that nobody is told of losing (watch [Lease.Done]).
type LeaseOptions struct {
	// TTL is how long the lease lasts without renewal: after a hub dies,
	// its node id is free again after at most TTL. Zero means
	// DefaultLeaseTTL; it must be at least a second.
	TTL time.Duration
	// OnLost, if set, is called once if the lease is lost (Redis lost it,
	// or it lapsed while Redis was unreachable and another hub took it):
	// the hub must stop making ids with this node id.
	OnLost func(error)
}

// AcquireNode takes the lease on node id node (0 to MaxNodeID). If another
// hub holds it, it fails with an error caused by [ErrNodeIDTaken] whose
// message names the node id and its holder (host and process id); a
// negative node takes the lowest free one.
func (c *Client) AcquireNode(ctx context.Context, node int, opts LeaseOptions) (*Lease, error) {
	if node > MaxNodeID {
		return nil, pubsub.Errorf(pubsub.CodeInvalidRequest, "redis: node id %d is above %d", node, MaxNodeID)
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultLeaseTTL
	}
	if opts.TTL < time.Second {
		return nil, pubsub.Errorf(pubsub.CodeInvalidRequest, "redis: a lease TTL of %v is under a second", opts.TTL)
	}
	var raw [8]byte
	rand.Read(raw[:])
	host, _ := os.Hostname()
	token := fmt.Sprintf("%s pid %d (%s)", host, os.Getpid(), hex.EncodeToString(raw[:]))
	first, last := node, node
	if node < 0 {
		first, last = 0, MaxNodeID
	}
	var err error
	for n := first; n <= last; n++ {
		l := &Lease{c: c, node: n, key: c.prefix + ":node:" + strconv.Itoa(n), token: token, ttl: opts.TTL}
		var holder string
		holder, err = l.call(ctx, "take")
		if err != nil {
			return nil, err
		}
		if holder == "" {
			l.stop, l.stopped, l.done = make(chan struct{}), make(chan struct{}), make(chan struct{})
			go l.renew(opts.OnLost)
			return l, nil
		}
		err = &pubsub.Error{Code: pubsub.CodeInternal, Err: ErrNodeIDTaken,
			Message: fmt.Sprintf("redis: node id %d is taken by another hub (%s) on %s: give each hub its own node id, or wait up to %v for a dead hub's lease to lapse", n, holderName(holder), c.addr, opts.TTL)}
	}
	if node < 0 {
		return nil, &pubsub.Error{Code: pubsub.CodeInternal, Err: ErrNodeIDTaken,
			Message: fmt.Sprintf("redis: all %d node ids are taken on %s", MaxNodeID+1, c.addr)}
	}
	return nil, err
}

// holderName is the host and process of a lease token, without its random
// part.
func holderName(token string) string {
	if i := strings.LastIndex(token, " ("); i > 0 {
		return token[:i]
	}
	return token
}

// call runs the lease script; it returns the other holder, or "" when the
// operation succeeded.
func (l *Lease) call(ctx context.Context, op string) (string, error) {
	vals, err := leaseScript.Exec(ctx, l.c.rc, []string{l.key}, []string{op, l.token, strconv.FormatInt(l.ttl.Milliseconds(), 10)}).ToArray()
	if err != nil {
		return "", classify(l.c.addr, "leasing node id "+strconv.Itoa(l.node)+" on", err)
	}
	if ok, _ := vals[0].AsInt64(); ok == 1 {
		return "", nil
	}
	holder, _ := vals[1].ToString()
	return holder, nil
}

// Node is the leased node id.
func (l *Lease) Node() int { return l.node }

// Done is closed when the lease is lost; Err then says why.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Err is nil while the lease is held (or after Close), and the reason it
// was lost after Done is closed.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// renew renews the lease every third of its TTL. A renewal that fails for
// want of Redis is retried at the next tick, and one that finds the key
// gone (it lapsed while Redis was slow or away, or Redis lost it) takes it
// again; one that finds another holder loses the lease.
func (l *Lease) renew(onLost func(error)) {
	defer close(l.stopped)
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		holder, err := l.call(ctx, "renew")
		cancel()
		if err != nil || holder == "" {
			continue
		}
		lost := &pubsub.Error{Code: pubsub.CodeInternal, Err: ErrNodeIDTaken,
			Message: fmt.Sprintf("redis: lost the lease on node id %d on %s; it is held by %s", l.node, l.c.addr, holderName(holder))}
		l.mu.Lock()
		l.lost = lost
		l.mu.Unlock()
		close(l.done)
		if onLost != nil {
			onLost(lost)
		}
		return
	}
}

// releaseAttempts bounds the tries of a release on broken connections. The
// client pipelines commands over up to 4 connections to a server (rueidis's
// default on a machine with 4 cores or more) and picks one at random for each
// command; after a Redis restart each of them fails once, with EOF, before
// the client replaces it, so the fifth try at the latest reaches the new
// server.
const releaseAttempts = 5

// Close stops renewing and releases the lease, so that the node id is free
// at once. It is idempotent. A release that fails on a broken connection
// (Redis restarted since the client last used it: the client replaces a
// dead connection only after a command failed on it) is tried again, up to
// releaseAttempts times in all and within 5 seconds, which is safe because
// releasing twice is the same as releasing once. The error is Redis's, if
// the lease could not be released: it then lapses by itself after its TTL.
func (l *Lease) Close() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.stopped
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for range releaseAttempts {
			if _, err = l.call(ctx, "release"); !errors.Is(err, pubsub.ErrNetwork) || ctx.Err() != nil {
				break
			}
		}
	})
	return err
}
