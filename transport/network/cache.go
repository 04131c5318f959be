package network

import (
	"bytes"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/plazahq/plaza/pubsub"
)

// The encoding cache is set-associative: a message's id picks one of
// cacheSets sets, and the set keeps the cacheWays messages encoded into it
// last. A message is encoded again only when cacheWays newer messages landed
// in its set before its slowest receiver's writer got to it, which takes
// thousands of messages in between.
const (
	cacheSetBits = 10
	cacheSets    = 1 << cacheSetBits
	cacheWays    = 4
)

// encodeCache encodes each delivered message once per server, however many
// connections receive it. The hub hands every receiver of one publish the same
// *pubsub.Message, so the pointer is the key. A hit costs at most cacheWays
// atomic loads and no lock.
type encodeCache struct {
	// encode appends one message in the cache's format; nil means
	// appendMessage, the JSON object of a message in a "messages" frame,
	// and all of a single-topic socket's WebSocket message.
	encode  func(b []byte, m *pubsub.Message) []byte
	sets    [cacheSets]cacheSet
	encodes atomic.Uint64 // messages encoded, for tests and benchmarks
	age     atomic.Uint64 // advanced by sweep
}

type cacheSet struct {
	mu   sync.Mutex // serializes encoding into this set
	next int        // the way to replace next, guarded by mu
	ways [cacheWays]atomic.Pointer[cacheEntry]
	_    [16]byte // keep sets on separate cache lines
}

type cacheEntry struct {
	m   *pubsub.Message
	enc []byte
	age uint64 // the cache's age when it was stored
}

func (s *cacheSet) lookup(m *pubsub.Message) []byte {
	for i := range s.ways {
		if e := s.ways[i].Load(); e != nil && e.m == m {
			return e.enc
		}
	}
	return nil
}

// get returns m encoded as JSON. The bytes are shared: never modify them.
func (c *encodeCache) get(m *pubsub.Message) []byte {
	s := &c.sets[setOf(m.ID)]
	if enc := s.lookup(m); enc != nil {
		return enc
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if enc := s.lookup(m); enc != nil {
		return enc
	}
	encode := c.encode
	if encode == nil {
		encode = appendMessage
	}
	enc := encode(make([]byte, 0, 176+len(m.Payload)), m)
	if !utf8.Valid(enc) {
		// Only a payload from an in-process publisher can get here with
		// invalid UTF-8, which browsers refuse in text frames. In valid JSON
		// it can only sit inside strings, where U+FFFD keeps it valid.
		enc = bytes.ToValidUTF8(enc, []byte("\uFFFD"))
	}
	c.encodes.Add(1)
	s.ways[s.next].Store(&cacheEntry{m: m, enc: enc, age: c.age.Load()})
	s.next = (s.next + 1) % cacheWays
	return enc
}

// sweep forgets the entries stored before the previous sweep, so that a
// burst of large messages does not stay in memory once it has gone out. The
// server sweeps on every heartbeat; a message still queued for a slow
// reader after that is encoded again when its turn comes.
func (c *encodeCache) sweep() {
	age := c.age.Add(1)
	for i := range c.sets {
		for w := range c.sets[i].ways {
			way := &c.sets[i].ways[w]
			if e := way.Load(); e != nil && e.age+1 < age {
				way.CompareAndSwap(e, nil)
			}
		}
	}
}

// setOf spreads ids over the sets: the low bits of a snowflake id are a
// per-millisecond sequence that restarts at zero, so hash the whole id.
func setOf(id pubsub.ID) uint64 {
	return (uint64(id) * 0x9E3779B97F4A7C15) >> (64 - cacheSetBits)
}
