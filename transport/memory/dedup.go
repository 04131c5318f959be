package memory

import (
	"hash/maphash"
	"math/bits"

	"github.com/plazahq/plaza/pubsub"
)

// dedupSet remembers the messages confirmed for idempotency keys in one
// topic for a window of time, and forgets them oldest first: each publish
// expires what has aged out at the front of a FIFO, so no timer is needed.
//
// The entries live in the FIFO itself; a map from a 64-bit hash of client
// and key to an entry's position finds them. A hit is checked against the
// client and key stored in the entry, so a hash collision costs at most a
// missed deduplication, never a wrong answer. A dedupSet is guarded by its
// topic's lock.
type dedupSet struct {
	pos        map[uint64]uint64 // hash → position of its entry
	ring       []dedupEntry      // entry at position p is ring[p&(len(ring)-1)]
	head, tail uint64            // the live entries are at positions [head, tail)
}

type dedupEntry struct {
	h    uint64
	at   int64 // Unix nanoseconds
	msg  *pubsub.Message
	key  string
	gone bool // replaced by a later entry with the same hash
}

// dedupHash is the hash of key from a client whose id hashes to idHash.
func dedupHash(seed maphash.Seed, idHash uint64, key string) uint64 {
	return maphash.String(seed, key) + idHash*0x9e3779b97f4a7c15
}

// expire forgets the entries at least window old at now, oldest first.
func (d *dedupSet) expire(now, window int64) {
	for d.head < d.tail && now-d.at(d.head).at >= window {
		d.dropOldest()
	}
}

// dropOldest forgets the entry at the front of the FIFO.
func (d *dedupSet) dropOldest() {
	e := d.at(d.head)
	if !e.gone {
		delete(d.pos, e.h)
	}
	*e = dedupEntry{}
	d.head++
}

// at returns the entry at position p.
func (d *dedupSet) at(p uint64) *dedupEntry {
	return &d.ring[p&uint64(len(d.ring)-1)]
}

// lookup returns the message confirmed for key from client from within
// window before now, or nil. It also reports whether an entry with hash h
// exists, which add needs to know.
func (d *dedupSet) lookup(h uint64, from, key string, now, window int64) (m *pubsub.Message, exists bool) {
	p, ok := d.pos[h]
	if !ok {
		return nil, false
	}
	e := d.at(p)
	if e.key != key || e.msg.From != from || now-e.at >= window {
		return nil, true
	}
	return e.msg, true
}

// add remembers that key was confirmed with m at now; exists is what lookup
// reported for h.
func (d *dedupSet) add(h uint64, exists bool, key string, m *pubsub.Message, now int64, limit int) {
	if d.pos == nil {
		d.pos = make(map[uint64]uint64)
	}
	for d.tail-d.head >= uint64(limit) {
		d.dropOldest()
	}
	if exists {
		d.at(d.pos[h]).gone = true
	}
	if d.tail-d.head == uint64(len(d.ring)) {
		d.grow()
	}
	d.pos[h] = d.tail
	*d.at(d.tail) = dedupEntry{h: h, at: now, msg: m, key: key}
	d.tail++
}

// grow doubles the ring.
func (d *dedupSet) grow() { d.resize(max(2*len(d.ring), 16)) }

// reserve makes room for n more entries at once.
func (d *dedupSet) reserve(n int) {
	live := int(d.tail - d.head)
	if d.pos == nil {
		d.pos = make(map[uint64]uint64, n)
	}
	if live+n > len(d.ring) {
		d.resize(max(1<<bits.Len(uint(live+n-1)), 16))
	}
}

// resize moves the entries to a ring of size n, a power of two that holds
// them.
func (d *dedupSet) resize(n int) {
	old := d.ring
	d.ring = make([]dedupEntry, n)
	for p := d.head; p < d.tail; p++ {
		*d.at(p) = old[p&uint64(len(old)-1)]
	}
}

// len returns how many keys are remembered.
func (d *dedupSet) len() int { return len(d.pos) }
