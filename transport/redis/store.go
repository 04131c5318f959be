package redis

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/pubsub"
)

var _ history.KeyStore = (*Store)(nil)

var (
	//go:embed lua/publish.lua
	publishLua    string
	publishScript = newScript(publishLua)

	//go:embed lua/walk.lua
	walkLua    string
	walkScript = newReadOnlyScript(walkLua)

	//go:embed lua/maxid.lua
	maxIDLua    string
	maxIDScript = newScript(maxIDLua)
)

// walkBudget is the most records one walk script reads before it returns
// and is called again: a query that skips many messages (a rare sender, a
// recipient's view) never holds Redis for more than a millisecond or so.
const walkBudget = 1000

// StoreOptions configure [Client.Store]. The zero value keeps history with
// package history's default retention, deduplicates for 2 minutes and
// feeds no pattern channels.
type StoreOptions struct {
	// Retention is applied as in package history: MaxMessages and MaxAge
	// per room and topic (zero means the history defaults, negative no
	// limit), Clock for MaxAge (nil means the Client's clock).
	Retention history.Options
	// DedupWindow is how long Publish remembers an idempotency key. Zero
	// means 2 minutes, the hub's default; negative turns deduplication
	// off.
	DedupWindow time.Duration
	// Patterns makes Publish also publish every message on its room's
	// pattern channel, which subscribers with patterns read
	// ([Subscriber.SubscribePattern]). It costs one more PUBLISH per
	// message, and on Redis Cluster a broadcast to every node (classic
	// pub/sub has no shards): leave it off unless some client subscribes
	// with a pattern.
	Patterns bool
}

// Store is a history that lives in Redis, shared by every hub on that
// Redis, and the publish path that confirms messages across hubs: it
// implements [history.KeyStore], and [Store.Publish] is the hub's seam.
//
// Each room and topic is a handful of keys that share one hash tag
// (prefix:{len:room:topic}), so that on Redis Cluster the topic lives on
// one shard and a single Lua script confirms a message atomically:
//
//	…}:z  sorted set: every stored id, score 0, as 20 digits (lexical order is id order)
//	…}:m  hash: id → record: a fixed header (format, persisted, timestamp),
//	      length-prefixed sender, key, recipients and metadata, then the
//	      payload as the hub received it
//	…}:l  the topic's last id, kept after retention drops its messages
//	…}:d:… one key per idempotency key, expiring after DedupWindow
//	…}:c  the shard channel the topic's messages are published on
//
// Create a Store with [Client.Store]; the zero value is not usable. A
// Store is safe for concurrent use.
type Store struct {
	c           *Client
	maxMessages int           // negative: no limit
	maxAge      time.Duration // zero or negative: no limit
	clock       pubsub.Clock
	dedup       time.Duration // zero or negative: off
	patterns    bool
	closed      atomic.Bool
}

// Store returns the Redis history and publish path of opts.
func (c *Client) Store(opts StoreOptions) *Store {
	s := &Store{c: c, maxMessages: opts.Retention.MaxMessages, maxAge: opts.Retention.MaxAge,
		clock: opts.Retention.Clock, dedup: opts.DedupWindow, patterns: opts.Patterns}
	switch {
	case s.maxMessages == 0:
		s.maxMessages = history.DefaultMaxMessages
	case s.maxMessages < 0:
		s.maxMessages = -1
	}
	if s.maxAge == 0 {
		s.maxAge = history.DefaultMaxAge
	}
	if s.clock == nil {
		s.clock = c.clock
	}
	if s.dedup == 0 {
		s.dedup = 2 * time.Minute
	}
	return s
}

var errStoreClosed = &pubsub.Error{Code: pubsub.CodeInternal, Message: "redis: store closed"}

// topicKeys are the names of one room and topic's keys.
type topicKeys struct {
	base string // prefix:{len:room:topic}
}

func (s *Store) keys(room, topic string) (topicKeys, error) {
	// Topics never hold a brace (pubsub.CheckTopic), so the hash tag ends
	// after the topic and the length of the room keeps every pair apart.
	if err := pubsub.CheckTopic(topic); err != nil {
		return topicKeys{}, err
	}
	return topicKeys{base: s.c.prefix + ":{" + strconv.Itoa(len(room)) + ":" + room + ":" + topic + "}"}, nil
}

func (k topicKeys) set() string     { return k.base + ":z" }
func (k topicKeys) hash() string    { return k.base + ":m" }
func (k topicKeys) last() string    { return k.base + ":l" }
func (k topicKeys) channel() string { return k.base + ":c" }
func (k topicKeys) dedup(client, key string) string {
	return k.base + ":d:" + strconv.Itoa(len(client)) + ":" + client + ":" + key
}

// patternChannel is the channel of room's pattern subscribers that a
// message of topic goes to: prefix:p:len:room:topic, which a PSUBSCRIBE
// to prefix:p:len:room:<glob> matches exactly when the glob matches topic.
func (c *Client) patternChannel(room, topic string) string {
	return c.prefix + ":p:" + strconv.Itoa(len(room)) + ":" + room + ":" + topic
}

// maxIDKey holds the highest id any Append stored (see MaxID).
func (c *Client) maxIDKey() string { return c.prefix + ":maxid" }

// cutoffKey is the timestamp key before which messages have expired, or
// "0…0" (nothing has) without MaxAge.
func (s *Store) cutoffKey() string {
	if s.maxAge <= 0 {
		return "00000000000000000000"
	}
	return tsKey(s.clock.Now().Add(-s.maxAge))
}

// Append stores m with its id, as history.Store specifies: an id below the
// topic's newest is inserted in place, an id already stored replaces that
// message. It runs the publish script in append mode, which publishes
// nothing.
func (s *Store) Append(ctx context.Context, room string, m pubsub.Message) error {
	return s.AppendKey(ctx, room, m, "")
}

// AppendKey implements [history.KeyStore]: Append, with key stored in m's
// record.
func (s *Store) AppendKey(ctx context.Context, room string, m pubsub.Message, key string) error {
	if s.closed.Load() {
		return errStoreClosed
	}
	if m.ID <= 0 {
		return &pubsub.Error{Code: pubsub.CodeInternal, Message: "redis: message has no id"}
	}
	k, err := s.keys(room, m.Topic)
	if err != nil {
		return err
	}
	m.Persisted = true
	id := idKey(m.ID)
	res := publishScript.Exec(ctx, s.c.rc, []string{k.set(), k.hash(), k.last(), k.last()},
		[]string{"a", id, string(encodeRecord(&m, key)), "1", strconv.Itoa(s.maxMessages), s.cutoffArg(), "0", "", "", "0:"})
	if err := res.Error(); err != nil {
		return classify(s.c.addr, "appending to history on", err)
	}
	return s.raiseMaxID(ctx, id)
}

// cutoffArg is the publish script's retention cutoff argument.
func (s *Store) cutoffArg() string {
	if s.maxAge <= 0 {
		return ""
	}
	return s.cutoffKey()
}

// raiseMaxID raises the deployment's highest appended id to id.
func (s *Store) raiseMaxID(ctx context.Context, id string) error {
	err := maxIDScript.Exec(ctx, s.c.rc, []string{s.c.maxIDKey()}, []string{id}).Error()
	return classify(s.c.addr, "raising the highest id on", err)
}

// MaxID returns the highest id Append has stored on this Redis, by any
// hub, including ids that retention has dropped since. Ids that Publish
// confirms do not raise it: Publish keeps ids increasing per topic on its
// own (see the package documentation), and a hub on this Store needs no
// floor from history.
func (s *Store) MaxID(ctx context.Context) (pubsub.ID, error) {
	if s.closed.Load() {
		return 0, errStoreClosed
	}
	v, err := s.c.rc.Do(ctx, s.c.rc.B().Get().Key(s.c.maxIDKey()).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, classify(s.c.addr, "reading the highest id on", err)
	}
	return parseIDKey(v)
}

// Close marks the store closed: its methods fail after it. It closes
// nothing of the Client's and is idempotent.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// Query returns one page of room's history for q.
func (s *Store) Query(ctx context.Context, room string, q history.Query) (pubsub.HistoryPage, error) {
	if s.closed.Load() {
		return pubsub.HistoryPage{}, errStoreClosed
	}
	if q.Before != 0 && q.After != 0 {
		return pubsub.HistoryPage{}, pubsub.Errorf(pubsub.CodeInvalidHistoryOpts, "redis: before and after are both set")
	}
	if q.Before < 0 || q.After < 0 {
		return pubsub.HistoryPage{}, pubsub.Errorf(pubsub.CodeInvalidHistoryOpts, "redis: negative message id")
	}
	if q.Limit <= 0 {
		q.Limit = pubsub.DefaultHistoryLimit
	}
	k, err := s.keys(room, q.Topic)
	if err != nil {
		return pubsub.HistoryPage{}, err
	}
	mode, anchor := "b", ""
	switch {
	case q.After != 0:
		mode, anchor = "f", idKey(q.After)
	case q.Before != 0:
		anchor = idKey(q.Before)
	}
	args := []string{mode, anchor, "", s.cutoffKey(), strconv.Itoa(walkBudget), q.Viewer, "0"}
	if len(q.From) > 0 {
		args[6] = "1"
		args = append(args, q.From...)
	}
	// One more than the page, to learn HasMore.
	msgs, err := s.walk(ctx, k, q.Topic, args, q.Limit+1)
	if err != nil {
		return pubsub.HistoryPage{}, err
	}
	page := pubsub.HistoryPage{Messages: make([]pubsub.Message, 0, min(len(msgs), q.Limit))}
	if len(msgs) > q.Limit {
		page.HasMore = true
		msgs = msgs[:q.Limit]
	}
	for _, km := range msgs {
		page.Messages = append(page.Messages, km.Message)
	}
	if mode == "b" {
		slices.Reverse(page.Messages) // walked newest first
	}
	return page, nil
}

// Keys implements [history.KeyStore].
func (s *Store) Keys(ctx context.Context, room string, q history.KeyQuery) ([]history.KeyedMessage, error) {
	if s.closed.Load() {
		return nil, errStoreClosed
	}
	k, err := s.keys(room, q.Topic)
	if err != nil {
		return nil, err
	}
	since := s.cutoffKey()
	if !q.Since.IsZero() {
		since = max(since, tsKey(q.Since))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = math.MaxInt32
	}
	msgs, err := s.walk(ctx, k, q.Topic, []string{"k", "", "", since, strconv.Itoa(walkBudget), "", "0"}, limit)
	if len(msgs) == 0 {
		return nil, err
	}
	return msgs, err
}

// walk runs the walk script with args until it has want records or the
// walk is over, calling it again from its cursor each time it runs out of
// budget. args[1] is the anchor and args[2] the count, which walk sets.
func (s *Store) walk(ctx context.Context, k topicKeys, topic string, args []string, want int) ([]history.KeyedMessage, error) {
	var out []history.KeyedMessage
	keys := []string{k.set(), k.hash()}
	for {
		args[2] = strconv.Itoa(want - len(out))
		vals, err := walkScript.Exec(ctx, s.c.rc, keys, args).ToArray()
		if err != nil {
			return nil, classify(s.c.addr, "reading history on", err)
		}
		if len(vals) < 2 || len(vals)%2 != 0 {
			return nil, errRecord("walk answered %d values", len(vals))
		}
		done, _ := vals[0].AsInt64()
		cursor, _ := vals[1].ToString()
		for i := 2; i < len(vals); i += 2 {
			idStr, _ := vals[i].ToString()
			rec, _ := vals[i+1].ToString()
			id, err := parseIDKey(idStr)
			if err != nil {
				return nil, err
			}
			m, key, err := decodeRecord(id, topic, []byte(rec))
			if err != nil {
				return nil, err
			}
			m.Persisted = true
			out = append(out, history.KeyedMessage{Key: key, Message: m})
		}
		if done == 1 || len(out) >= want {
			return out, nil
		}
		args[1] = cursor
	}
}

// Publication is one message for [Store.Publish].
type Publication struct {
	Room string
	// Message is the message a hub has validated: From, Topic, Payload,
	// To, Metadata, Timestamp and Persisted as the hub made them, and ID
	// the id the hub proposes (a snowflake of its own).
	Message pubsub.Message
	// Key is the publish's idempotency key, or empty; Message.From is the
	// client it belongs to.
	Key string
	// Origin names the publishing connection (for example node id and
	// connection number), handed back with every delivery of the message
	// ([Delivery.Origin]) so that the hub that published it can skip the
	// publisher's own connection: no self-echo. It is not stored in
	// history.
	Origin string
	// Propose, if not nil, returns a new proposal above last when the
	// topic's last id is at or above Message.ID: a new id of the hub's
	// generator ([memory.Receiver].Propose), which keeps every id it gives
	// unique. Nil raises the id to the smallest one above last with the
	// node bits of Message.ID; the caller must then keep its own later ids
	// above the id confirmed.
	Propose func(last pubsub.ID) pubsub.ID
}

// Publish confirms p.Message for every hub on this Redis with an atomic
// script: the confirmed message gets the proposed id if it is above the
// topic's last id, and otherwise an id above that last id of the
// proposing node's own (Publication.Propose's, or the smallest with the
// node bits of the proposed one), so that ids strictly increase per
// topic whichever hub publishes, even one whose clock is behind, and stay
// unique across topics: an id carries the node id of the hub that proposed
// it, never another's (see Publication.Propose). Raising an id costs a
// round trip more (the script answers the conflict; Publish proposes
// again, the deduplication checked first each time); after 16 attempts
// overtaken by other publishes of the topic it fails with
// RATE_LIMIT_EXCEEDED, retriable, and stores nothing. Unless
// Message.Persisted is false the message joins the topic's history, which
// is trimmed by retention. It is then published on the topic's shard
// channel (and its pattern channel with StoreOptions.Patterns), in the
// order of the ids: history order is delivery order.
//
// A Key that Message.From used within the dedup window gets the message it
// confirmed then, and dup is true: nothing is stored or published again.
//
// A Redis that cannot be reached fails with NETWORK_ERROR: retry the
// publish with its key, on this hub or another, and it is confirmed once.
func (s *Store) Publish(ctx context.Context, p Publication) (confirmed pubsub.Message, dup bool, err error) {
	if s.closed.Load() {
		return pubsub.Message{}, false, errStoreClosed
	}
	m := p.Message
	k, err := s.keys(p.Room, m.Topic)
	if err != nil {
		return pubsub.Message{}, false, err
	}
	dkey, ttl := k.last(), "0"
	if p.Key != "" && s.dedup > 0 {
		dkey, ttl = k.dedup(m.From, p.Key), strconv.FormatInt(s.dedup.Milliseconds(), 10)
	}
	persist := "0"
	if m.Persisted {
		persist = "1"
	}
	pch := ""
	if s.patterns {
		pch = s.c.patternChannel(p.Room, m.Topic)
	}
	rec := encodeRecord(&m, p.Key)
	keys := []string{k.set(), k.hash(), k.last(), dkey}
	args := []string{"p", "", string(rec), persist, strconv.Itoa(s.maxMessages), s.cutoffArg(), ttl,
		k.channel(), pch, string(appendField(nil, p.Origin))}
	for range maxPublishAttempts {
		args[1] = idKey(m.ID)
		vals, err := publishScript.Exec(ctx, s.c.rc, keys, args).ToArray()
		if err != nil {
			return pubsub.Message{}, false, classify(s.c.addr, "publishing on", err)
		}
		if len(vals) != 2 {
			return pubsub.Message{}, false, errRecord("publish answered %d values", len(vals))
		}
		flag, _ := vals[0].AsInt64()
		v, _ := vals[1].ToString()
		switch flag {
		case 0: // a duplicate: v is what the original published
			orig, _, err := decodeWire(m.Topic, v)
			return orig, true, err
		case 1:
			id, err := parseIDKey(v)
			if err != nil {
				return pubsub.Message{}, false, err
			}
			m.ID = id
			return m, false, nil
		}
		// The proposal was at or below the topic's last id v: propose
		// again above it, an id of the proposer's own node.
		last, err := parseIDKey(v)
		if err != nil {
			return pubsub.Message{}, false, err
		}
		var id pubsub.ID
		var ok bool
		if p.Propose != nil {
			id = p.Propose(last)
			ok = id > last
		} else {
			id, ok = raiseID(last, m.ID)
		}
		if !ok {
			return pubsub.Message{}, false, pubsub.Errorf(pubsub.CodeInternal,
				"redis: topic %q: no id above %d is left for node %d", m.Topic, last, m.ID.Node())
		}
		m.ID = id
	}
	return pubsub.Message{}, false, &pubsub.Error{Code: pubsub.CodeRateLimitExceeded, RetryAfter: time.Millisecond,
		Message: fmt.Sprintf("redis: topic %q: other publishes took the id proposed %d times in a row; nothing was stored", m.Topic, maxPublishAttempts)}
}

// maxPublishAttempts bounds the round trips of one [Store.Publish] whose
// proposed id other publishes keep overtaking on a busy topic. Each attempt
// proposes above the last id the one before saw, so a second attempt
// fails only when another publish of the topic was confirmed in between.
const maxPublishAttempts = 16

// decodeWire decodes what the publish script sends on a channel and keeps
// for an idempotency key: an id, an origin and a record. It returns the
// message and the origin.
func decodeWire(topic, v string) (pubsub.Message, string, error) {
	if len(v) < idWidth {
		return pubsub.Message{}, "", errRecord("message of %d bytes", len(v))
	}
	id, err := parseIDKey(v[:idWidth])
	if err != nil {
		return pubsub.Message{}, "", err
	}
	d := decoder{b: []byte(v[idWidth:])}
	origin := d.field()
	if d.err != nil {
		return pubsub.Message{}, "", d.err
	}
	m, _, err := decodeRecord(id, topic, d.b)
	return m, origin, err
}
