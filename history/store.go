// Package history keeps the messages a hub has confirmed, per room and topic,
// and answers paged queries over them.
//
// Use [NewMemory] for a store that lives as long as the process; use
// [OpenBolt] for one that survives restarts. Both implement [Store], and
// package historytest checks any Store against the same specification.
//
// # Queries
//
// A page holds at most Query.Limit messages, oldest first. Without Before or
// After it is the newest page; with Before it is the messages just older than
// Before, with After the ones just newer than After (the anchor need not be a
// stored id). HasMore reports whether more messages exist beyond the page in
// that direction: older ones for the newest page and for Before, newer ones
// for After. Only messages the query may see count, for the page and for
// HasMore: those from a sender in Query.From (when set) and visible to
// Query.Viewer (see pubsub.Message.VisibleTo). An unknown topic is an empty
// page, not an error.
//
// # Retention
//
// Every store keeps at most [Options.MaxMessages] messages per room and topic
// and drops messages older than [Options.MaxAge]; the oldest go first. Stores
// apply retention as they append and query, not on a timer: Query never
// returns an expired message, but one may stay in memory or on disk until its
// topic is touched again. Retention never lowers MaxID.
//
// The defaults, 100,000 messages and 30 days per room and topic, are a
// chat-sized backlog: a month of scrolling back through a busy topic, at most
// about 18 MB in memory or 16 MB on disk per topic of 100-byte messages, so
// that neither a runaway publisher nor a forgotten topic can fill a machine.
// A hub that must keep everything sets both to a negative value; one that
// keeps only recent context (cursors, presence) publishes with
// Persist(false) instead.
//
// # Idempotency keys
//
// A store that implements [KeyStore], as both stores here do, keeps the
// idempotency key of a publish with its message, in the same commit, and
// lists the keyed messages of a topic newest first. A hub opened on such a
// store answers the retry of a publish the store already holds (one whose
// reply was lost when the previous hub stopped or crashed) with the
// original message instead of storing a second copy.
//
// # Concurrency
//
// Stores are safe for concurrent use. The hub calls Append for one room and
// topic in increasing id order; calls for different topics may run at the
// same time. Both stores also accept concurrent calls for one topic and ids
// that arrive out of order, which they insert in place; appending an id that
// is already stored replaces that message.
package history

import (
	"context"
	"math"
	"time"

	"github.com/plazahq/plaza/pubsub"
)

// Store keeps messages and answers history queries.
type Store interface {
	// Append stores m, a message of room that the hub has just confirmed.
	// For one room and topic, ids arrive in increasing order. When Append
	// returns nil the message is visible to Query, and a durable store has
	// it on stable storage. A store may keep m's Payload, To and Metadata
	// without copying them: a confirmed message never changes, and callers
	// must not modify them after Append.
	Append(ctx context.Context, room string, m pubsub.Message) error

	// Query returns one page of room's history for q. The request has been
	// validated; q.Limit is 1 to pubsub.MaxHistoryLimit.
	Query(ctx context.Context, room string, q Query) (pubsub.HistoryPage, error)

	// MaxID returns the highest id the store has ever held, or zero. A hub
	// never assigns an id at or below it.
	MaxID(ctx context.Context) (pubsub.ID, error)

	// Close releases the store. It is idempotent; other methods fail after
	// it.
	Close() error
}

// Query is a validated history request.
type Query struct {
	Topic  string
	Before pubsub.ID // zero: not set
	After  pubsub.ID // zero: not set
	Limit  int       // 1 to pubsub.MaxHistoryLimit
	From   []string  // only these senders; none means all
	// Viewer is the client asking. Messages addressed with To are returned
	// only when Viewer is their sender or one of their recipients.
	Viewer string
}

// Options configure retention, the same way for every store.
type Options struct {
	// MaxMessages is the most messages kept per room and topic; the oldest
	// are dropped first. Zero means DefaultMaxMessages; negative means no
	// limit.
	MaxMessages int
	// MaxAge drops messages older than this. Zero means DefaultMaxAge;
	// negative means no limit.
	MaxAge time.Duration
	// Clock tells the time for MaxAge. Nil means the system clock.
	Clock pubsub.Clock
}

// Retention defaults. A chat-sized backlog: enough to scroll back through a
// busy topic for weeks, bounded so that a runaway publisher cannot fill a disk.
const (
	DefaultMaxMessages = 100_000
	DefaultMaxAge      = 30 * 24 * time.Hour
)

// Errors the stores return.
var (
	errClosed = &pubsub.Error{Code: pubsub.CodeInternal, Message: "history: store closed"}
	errNoID   = &pubsub.Error{Code: pubsub.CodeInternal, Message: "history: message has no id"}
)

// retention is Options with the defaults applied.
type retention struct {
	maxMessages int           // negative: no limit
	maxAge      time.Duration // zero or negative: no limit
	clock       pubsub.Clock
}

func (o Options) retention() retention {
	r := retention{maxMessages: o.MaxMessages, maxAge: o.MaxAge, clock: o.Clock}
	switch {
	case r.maxMessages == 0:
		r.maxMessages = DefaultMaxMessages
	case r.maxMessages < 0:
		r.maxMessages = -1
	}
	if r.maxAge == 0 {
		r.maxAge = DefaultMaxAge
	}
	if r.clock == nil {
		r.clock = pubsub.SystemClock{}
	}
	return r
}

// cutoff returns the Unix nanosecond time before which messages have
// expired: messages older than maxAge are dropped, those exactly maxAge old
// are kept.
func (r *retention) cutoff() int64 {
	if r.maxAge <= 0 {
		return math.MinInt64
	}
	return r.clock.Now().Add(-r.maxAge).UnixNano()
}

// checkQuery rejects what the hub should have rejected already and applies
// the default Limit.
func checkQuery(q *Query) error {
	if q.Before != 0 && q.After != 0 {
		return pubsub.Errorf(pubsub.CodeInvalidHistoryOpts, "history: before and after are both set")
	}
	if q.Before < 0 || q.After < 0 {
		return pubsub.Errorf(pubsub.CodeInvalidHistoryOpts, "history: negative message id")
	}
	if q.Limit <= 0 {
		q.Limit = pubsub.DefaultHistoryLimit
	}
	return nil
}

// emptyPage is the answer for a topic without visible messages.
func emptyPage() pubsub.HistoryPage {
	return pubsub.HistoryPage{Messages: []pubsub.Message{}}
}

// Pipeliner is implemented by stores whose Append waits for stable storage,
// so that a hub can let many publishes share one commit.
//
// Enqueue queues m for the store's next commit and returns at once, with a
// function that waits until m is durable or its commit failed. Messages
// become visible to Query in the order they were enqueued, never one without
// all those enqueued before it. A hub calls Enqueue in id order under its
// topic lock and waits outside it.
//
// key is the idempotency key m was published with, or empty. A store that
// is also a [KeyStore] commits it with m, as AppendKey does; others ignore
// it.
type Pipeliner interface {
	Store
	Enqueue(room string, m pubsub.Message, key string) (wait func(ctx context.Context) error)
}

// KeyStore is implemented by stores that keep the idempotency key of a
// publish with its message, in the same commit, so that a hub opened on the
// store after a restart or a crash still recognizes a retry of a publish the
// store holds, and answers it with the original message instead of
// publishing a second copy. Both stores of this package implement it.
//
// A hub opened on the store calls Keys for a topic when the first keyed
// publish reaches it, asking for the messages within its deduplication
// window: a walk back from the topic's newest message, paid once per topic
// that is published to. Opening a hub reads no keys, however many topics
// the store holds.
type KeyStore interface {
	Store

	// AppendKey is Append for a message published with the idempotency key
	// key: when it returns nil, m and key are stored together (for a
	// durable store, in the same commit) and Keys finds them. An empty key
	// makes it Append.
	AppendKey(ctx context.Context, room string, m pubsub.Message, key string) error

	// Keys returns the messages of room and q.Topic that were stored with
	// a key, newest first. It walks the topic back from its newest message
	// in id order and stops at the first message stamped before q.Since,
	// or once it has q.Limit keyed messages; messages without a key are
	// skipped but still end the walk when they are too old. Retention
	// applies as for Query: an expired message is never returned. An
	// unknown topic has no keys, not an error.
	Keys(ctx context.Context, room string, q KeyQuery) ([]KeyedMessage, error)
}

// KeyQuery asks for the keyed messages of one topic.
type KeyQuery struct {
	Topic string
	Since time.Time // only messages stamped at Since or later
	Limit int       // at most this many; zero or negative means no limit
}

// KeyedMessage is a stored message with the idempotency key it was
// published with. Its From is the client the key belongs to.
type KeyedMessage struct {
	Key     string
	Message pubsub.Message
}
