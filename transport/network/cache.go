package network

import (
	"bytes"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/plazahq/plaza/pubsub"
)

// cacheSlots is the size of the encoding cache. A message is encoded again
// only if another message took its slot before its slowest receiver's writer
// got to it, which takes about cacheSlots messages published in between.
const cacheSlots = 1024

// encodeCache encodes each delivered message once per server, however many
// connections receive it. The hub hands every receiver of one publish the same
// *pubsub.Message, so the pointer is the key. It is direct-mapped by message
// id; a hit costs one atomic load and no lock.
type encodeCache struct {
	slots   [cacheSlots]cacheSlot
	encodes atomic.Uint64 // messages encoded, for tests and benchmarks
}

type cacheSlot struct {
	mu sync.Mutex // serializes encoding into this slot
	e  atomic.Pointer[cacheEntry]
	_  [48]byte // keep slots on separate cache lines
}

type cacheEntry struct {
	m   *pubsub.Message
	enc []byte
}

// get returns m encoded as JSON. The bytes are shared: never modify them.
func (c *encodeCache) get(m *pubsub.Message) []byte {
	s := &c.slots[slotOf(m.ID)]
	if e := s.e.Load(); e != nil && e.m == m {
		return e.enc
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.e.Load(); e != nil && e.m == m {
		return e.enc
	}
	enc := appendMessage(make([]byte, 0, 160+len(m.Payload)), m)
	if !utf8.Valid(enc) {
		// Only a payload from an in-process publisher can get here with
		// invalid UTF-8, which browsers refuse in text frames. In valid JSON
		// it can only sit inside strings, where U+FFFD keeps it valid.
		enc = bytes.ToValidUTF8(enc, []byte("\uFFFD"))
	}
	c.encodes.Add(1)
	s.e.Store(&cacheEntry{m: m, enc: enc})
	return enc
}

// slotOf spreads ids over the slots: the low bits of a snowflake id are a
// per-millisecond sequence that restarts at zero, so hash the whole id.
func slotOf(id pubsub.ID) uint64 {
	return (uint64(id) * 0x9E3779B97F4A7C15) >> (64 - 10) // 2^10 == cacheSlots
}
