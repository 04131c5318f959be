package history

import (
	"bytes"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// A topic as queries see it: its records in the bolt file, then those of
// the overlay (the log not yet checkpointed), less the oldest ones that
// retention by count hides until a checkpoint deletes them.

// topicView reads one topic of a read transaction and an overlay snapshot
// taken with it. tail holds the overlay's parts of the topic, older first,
// each in ascending id order and newer than everything in bk.
type topicView struct {
	s     *Bolt
	name  []byte
	txid  int          // of the file state read
	bk    *bolt.Bucket // nil when the file has no bucket for the topic
	count int64        // records in bk
	tail  [][]boltAppend
}

// view calls f with the topic bucket name as one consistent snapshot of the
// file and the overlay shows it.
//
// The overlay is read first, then the file: a checkpoint may commit in
// between, and the file then holds some of the overlay's records too.
// Those are exactly the overlay's records at or below the file's newest id
// (every record entered the overlay newer than everything its topic held),
// so the view leaves them out of its tail.
func (s *Bolt) view(name []byte, f func(v *topicView) error) error {
	var tail [][]boltAppend
	s.ovMu.Lock()
	for _, m := range s.frozen {
		if t := m[string(name)]; t != nil {
			tail = append(tail, t.recs)
		}
	}
	if t := s.active[string(name)]; t != nil {
		tail = append(tail, t.recs)
	}
	s.ovMu.Unlock()

	return s.db.View(func(tx *bolt.Tx) error {
		v := topicView{s: s, name: name, txid: tx.ID(), tail: tail}
		if len(name) <= bolt.MaxKeySize {
			v.bk = tx.Bucket(bucketTopics).Bucket(name)
			v.count = getCount(tx.Bucket(bucketCounts), name)
		}
		if v.bk != nil && len(tail) > 0 {
			if k, _ := v.bk.Cursor().Last(); k != nil {
				last := keyID(k)
				for len(v.tail) > 0 {
					p := v.tail[0]
					i := sort.Search(len(p), func(i int) bool { return p[i].id > last })
					if i < len(p) {
						v.tail[0] = p[i:]
						break
					}
					v.tail = v.tail[1:]
				}
			}
		}
		return f(&v)
	})
}

// cursor returns a cursor over the records the view shows, hiding the
// oldest ones beyond maxMessages (negative: no limit).
func (v *topicView) cursor(maxMessages int) *viewCursor {
	c := &viewCursor{tail: v.tail}
	for _, p := range v.tail {
		c.n += len(p)
	}
	if v.bk != nil {
		c.bc = v.bk.Cursor()
	}
	if maxMessages < 0 {
		return c
	}
	excess := v.count + int64(c.n) - int64(maxMessages)
	switch {
	case excess <= 0:
	case excess < v.count && c.bc != nil:
		// The walk is bounded by what was appended since the last
		// checkpoint, which deletes the hidden records.
		// Queries between two checkpoints take up the walk where the
		// last one left it.
		k, done := v.s.floorFrom(v.txid, v.name, excess)
		if k != nil {
			k, _ = c.bc.Seek(k)
		} else {
			k, _ = c.bc.First()
		}
		for i := done; i < excess && k != nil; i++ {
			k, _ = c.bc.Next()
		}
		c.floor = k
		c.noFile = k == nil
		if k != nil {
			v.s.setFloor(v.txid, v.name, excess, k)
		}
	default:
		c.noFile = true
		c.start = int(min(excess-v.count, int64(c.n)))
	}
	return c
}

// viewCursor walks a topicView in id order, like a bolt.Cursor: the file's
// keys from floor on, then the tail's records from start on. Keys and
// values are valid until the transaction ends.
type viewCursor struct {
	bc     *bolt.Cursor // nil: no file records
	floor  []byte       // the file's first visible key; nil: its first
	noFile bool         // every file record is hidden
	tail   [][]boltAppend
	n      int // records in tail
	start  int // index of the first visible tail record
	pos    int // index in tail of the current record; -1 in the file
}

func (c *viewCursor) at(i int) *boltAppend {
	for _, p := range c.tail {
		if i < len(p) {
			return &p[i]
		}
		i -= len(p)
	}
	return nil
}

// tailAt moves to tail record i, or off either end when there is none.
func (c *viewCursor) tailAt(i int) ([]byte, []byte) {
	if i < c.start || i >= c.n {
		c.pos = max(min(i, c.n), c.start-1)
		return nil, nil
	}
	c.pos = i
	r := c.at(i)
	return r.key[:], r.value
}

func (c *viewCursor) file() bool { return c.bc != nil && !c.noFile }

// visible cuts a file key below floor.
func (c *viewCursor) visible(k, v []byte) ([]byte, []byte) {
	if k != nil && c.floor != nil && bytes.Compare(k, c.floor) < 0 {
		return nil, nil
	}
	return k, v
}

func (c *viewCursor) fileLast() ([]byte, []byte) {
	c.pos = -1
	if !c.file() {
		return nil, nil
	}
	return c.visible(c.bc.Last())
}

// First moves to the first visible record.
func (c *viewCursor) First() ([]byte, []byte) {
	if c.file() {
		c.pos = -1
		var k, v []byte
		if c.floor != nil {
			k, v = c.bc.Seek(c.floor)
		} else {
			k, v = c.bc.First()
		}
		if k != nil {
			return k, v
		}
	}
	return c.tailAt(c.start)
}

// Last moves to the last visible record.
func (c *viewCursor) Last() ([]byte, []byte) {
	if c.n > c.start {
		return c.tailAt(c.n - 1)
	}
	return c.fileLast()
}

// Next moves to the next record.
func (c *viewCursor) Next() ([]byte, []byte) {
	if c.pos < 0 && c.file() {
		if k, v := c.bc.Next(); k != nil {
			return k, v
		}
		return c.tailAt(c.start)
	}
	return c.tailAt(max(c.pos+1, c.start))
}

// Prev moves to the previous record.
func (c *viewCursor) Prev() ([]byte, []byte) {
	if c.pos < 0 {
		if !c.file() {
			return nil, nil
		}
		return c.visible(c.bc.Prev())
	}
	if c.pos-1 >= c.start {
		return c.tailAt(c.pos - 1)
	}
	return c.fileLast()
}

// Seek moves to the first visible record at or after key, an id.
func (c *viewCursor) Seek(key []byte) ([]byte, []byte) {
	if c.file() {
		if c.floor != nil && bytes.Compare(key, c.floor) < 0 {
			key = c.floor
		}
		c.pos = -1
		if k, v := c.bc.Seek(key); k != nil {
			return k, v
		}
	}
	id := keyID(key)
	i := c.start + sort.Search(c.n-c.start, func(i int) bool { return c.at(c.start+i).id >= id })
	return c.tailAt(i)
}

// floorMark is where a walk for the first visible record of a topic ended:
// the key excess records after the topic's first in the file.
type floorMark struct {
	excess int64
	key    [8]byte
}

// floorFrom returns the key and excess of the last walk that went no
// further than excess in the file state txid, or nil and 0.
func (s *Bolt) floorFrom(txid int, name []byte, excess int64) ([]byte, int64) {
	s.floorMu.Lock()
	defer s.floorMu.Unlock()
	if s.floorsTx != txid {
		return nil, 0
	}
	m, ok := s.floors[string(name)]
	if !ok || m.excess > excess {
		return nil, 0
	}
	return m.key[:], m.excess
}

// setFloor records that the key excess records into the topic is key, in
// the file state txid. A newer state forgets the older one's marks.
func (s *Bolt) setFloor(txid int, name []byte, excess int64, key []byte) {
	s.floorMu.Lock()
	defer s.floorMu.Unlock()
	if txid < s.floorsTx {
		return
	}
	if txid > s.floorsTx || s.floors == nil {
		s.floorsTx, s.floors = txid, make(map[string]floorMark)
	}
	s.floors[string(name)] = floorMark{excess: excess, key: [8]byte(key)}
}
