package history

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plazahq/plaza/pubsub"
)

var _ KeyStore = (*Memory)(nil)

// Memory is a [Store] that keeps history in the memory of the process.
//
// For each room and topic it holds a slice of compact records sorted by id,
// so a query is a binary search for its anchor followed by a short walk. A
// message with a 100-byte payload and no recipients or metadata costs about
// 180 bytes. A message appended with an idempotency key ([Memory.AppendKey])
// keeps it, for about 50 bytes more, so that a hub opened later on the same
// Memory answers a retry of it with the original (see [KeyStore]).
//
// Append keeps the payload, recipients and metadata of the message it is
// given without copying them (see [Store].Append). Messages returned by
// Query share them with the store and with each other; treat them as
// read-only.
//
// Retention is applied when a topic is appended to or queried: messages
// beyond [Options.MaxMessages] or older than [Options.MaxAge] are dropped and
// their memory is released. A topic that is never touched again keeps its
// expired messages, but Query never returns them.
//
// Create a Memory with [NewMemory]; the zero value is not usable. A Memory is
// safe for concurrent use.
type Memory struct {
	ret   retention
	maxID atomic.Int64

	mu     sync.RWMutex
	topics map[topicKey]*memTopic // nil after Close
}

type topicKey struct{ room, topic string }

// memTopic is the history of one room and topic.
type memTopic struct {
	mu   sync.RWMutex
	recs []record // sorted by id, no duplicates
	// dead counts the slots dropped from the front of recs' backing array;
	// when they outnumber the live ones, the live records move back to the
	// front of the same array (or to a smaller one, if it has shrunk a lot).
	dead int
	base []record // the whole backing array of recs, which starts at base[dead]
}

// record is a stored message. The topic is the key it is stored under and
// Persisted is implied.
type record struct {
	id      int64
	ts      int64 // Unix nanoseconds; noTime for the zero time
	from    string
	payload []byte
	ext     *recordExt // nil when the message has no To, Metadata or key
}

// recordExt holds the parts most messages lack, so that they cost one
// pointer in a record rather than two slice and map headers and a string.
type recordExt struct {
	to  []string
	md  map[string]string
	key string // idempotency key; empty when appended without one
}

// NewMemory returns an empty in-memory store that applies the retention in
// opts.
func NewMemory(opts Options) *Memory {
	return &Memory{
		ret:    opts.retention(),
		topics: make(map[topicKey]*memTopic),
	}
}

// Append stores m. An id below the newest of its topic is inserted in place;
// an id already stored replaces that message.
func (s *Memory) Append(ctx context.Context, room string, m pubsub.Message) error {
	return s.AppendKey(ctx, room, m, "")
}

// AppendKey implements [KeyStore]: it is Append, with key kept in m's
// record.
func (s *Memory) AppendKey(ctx context.Context, room string, m pubsub.Message, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.ID <= 0 {
		return errNoID
	}
	t, err := s.topic(room, m.Topic, true)
	if err != nil {
		return err
	}
	r := newRecord(&m)
	if key != "" {
		if r.ext == nil {
			r.ext = new(recordExt)
		}
		r.ext.key = key
	}
	cutoff := s.ret.cutoff()
	t.mu.Lock()
	t.insert(r)
	t.trim(s.ret.maxMessages, cutoff)
	t.mu.Unlock()
	raise(&s.maxID, int64(m.ID))
	return nil
}

// Query returns one page of room's history for q.
func (s *Memory) Query(ctx context.Context, room string, q Query) (pubsub.HistoryPage, error) {
	if err := ctx.Err(); err != nil {
		return pubsub.HistoryPage{}, err
	}
	if err := checkQuery(&q); err != nil {
		return pubsub.HistoryPage{}, err
	}
	t, err := s.topic(room, q.Topic, false)
	if err != nil {
		return pubsub.HistoryPage{}, err
	}
	if t == nil {
		return emptyPage(), nil
	}
	cutoff := s.ret.cutoff()
	t.mu.RLock()
	page := t.query(&q, cutoff)
	expired := len(t.recs) > 0 && t.recs[0].ts < cutoff
	t.mu.RUnlock()
	if expired {
		t.mu.Lock()
		t.trim(s.ret.maxMessages, cutoff)
		t.mu.Unlock()
	}
	return page, nil
}

// Keys implements [KeyStore].
func (s *Memory) Keys(ctx context.Context, room string, q KeyQuery) ([]KeyedMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := s.topic(room, q.Topic, false)
	if err != nil || t == nil {
		return nil, err
	}
	since := max(unixNano(q.Since), s.ret.cutoff())
	limit := q.Limit
	if limit <= 0 {
		limit = math.MaxInt
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	// Count first, so that a long answer is allocated once.
	n, end := 0, len(t.recs)
	for ; end > 0 && t.recs[end-1].ts >= since && n < limit; end-- {
		if t.recs[end-1].key() != "" {
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	keyed := make([]KeyedMessage, 0, n)
	for i := len(t.recs) - 1; i >= end; i-- {
		if r := &t.recs[i]; r.key() != "" {
			keyed = append(keyed, KeyedMessage{Key: r.key(), Message: r.message(q.Topic)})
		}
	}
	return keyed, nil
}

// MaxID returns the highest id ever appended, including ids that retention
// has dropped since.
func (s *Memory) MaxID(ctx context.Context) (pubsub.ID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.RLock()
	closed := s.topics == nil
	s.mu.RUnlock()
	if closed {
		return 0, errClosed
	}
	return pubsub.ID(s.maxID.Load()), nil
}

// Close drops every message. It is idempotent.
func (s *Memory) Close() error {
	s.mu.Lock()
	s.topics = nil
	s.mu.Unlock()
	return nil
}

// topic returns the history of room and name, creating it when create is
// set, and nil when it does not exist.
func (s *Memory) topic(room, name string, create bool) (*memTopic, error) {
	k := topicKey{room, name}
	s.mu.RLock()
	if s.topics == nil {
		s.mu.RUnlock()
		return nil, errClosed
	}
	t := s.topics[k]
	s.mu.RUnlock()
	if t != nil || !create {
		return t, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.topics == nil {
		return nil, errClosed
	}
	if t = s.topics[k]; t == nil {
		t = new(memTopic)
		s.topics[k] = t
	}
	return t, nil
}

func newRecord(m *pubsub.Message) record {
	r := record{
		id:      int64(m.ID),
		ts:      unixNano(m.Timestamp),
		from:    m.From,
		payload: m.Payload,
	}
	if len(m.To) > 0 || len(m.Metadata) > 0 {
		r.ext = new(recordExt)
		if len(m.To) > 0 {
			r.ext.to = m.To
		}
		if len(m.Metadata) > 0 {
			r.ext.md = m.Metadata
		}
	}
	return r
}

// key returns the idempotency key r was appended with, or "".
func (r *record) key() string {
	if r.ext == nil {
		return ""
	}
	return r.ext.key
}

func (r *record) message(topic string) pubsub.Message {
	m := pubsub.Message{
		ID:        pubsub.ID(r.id),
		Topic:     topic,
		From:      r.from,
		Payload:   r.payload,
		Timestamp: fromUnixNano(r.ts),
		Persisted: true,
	}
	if r.ext != nil {
		m.To, m.Metadata = r.ext.to, r.ext.md
	}
	return m
}

// visible reports whether q may see r: the same test as
// pubsub.Message.VisibleTo plus the From filter.
func (r *record) visible(q *Query) bool {
	if len(q.From) > 0 && !slices.Contains(q.From, r.from) {
		return false
	}
	return r.ext == nil || len(r.ext.to) == 0 || r.from == q.Viewer || slices.Contains(r.ext.to, q.Viewer)
}

func (t *memTopic) insert(r record) {
	n := len(t.recs)
	i := n
	if n > 0 && t.recs[n-1].id >= r.id {
		var found bool
		i, found = slices.BinarySearchFunc(t.recs, r.id, cmpID)
		if found {
			t.recs[i] = r
			return
		}
	}
	if n == cap(t.recs) {
		// Compact only once the dropped slots are as many as the live ones,
		// so each compaction's copy is paid for by as many appends.
		if t.dead > 0 && t.dead >= n {
			t.compact() // the dropped slots at the front make room
		} else {
			t.realloc(growCap(n))
		}
	}
	if i == n {
		t.recs = append(t.recs, r)
	} else {
		t.recs = slices.Insert(t.recs, i, r)
	}
}

// growCap is the capacity for a slice of n records that has to grow:
// doubling while small, then a quarter more each time, which keeps the slack
// below 25% for large topics.
func growCap(n int) int {
	if n < 1024 {
		return max(2*n, 8)
	}
	return n + n/4
}

// compact moves the live records to the front of their backing array, so a
// topic at its retention limit reuses one array instead of allocating.
func (t *memTopic) compact() {
	n := len(t.recs)
	copy(t.base, t.recs) // may overlap; copy handles that
	clear(t.base[n : t.dead+n])
	t.recs, t.dead = t.base[:n], 0
}

// realloc moves the live records to a new array of capacity c.
func (t *memTopic) realloc(c int) {
	if c == 0 {
		t.recs, t.dead, t.base = nil, 0, nil
		return
	}
	recs := make([]record, len(t.recs), c)
	copy(recs, t.recs)
	t.recs, t.dead, t.base = recs, 0, recs[:c]
}

// trim drops the oldest records beyond maxMessages (negative: no limit) and
// the oldest ones stamped before cutoff.
func (t *memTopic) trim(maxMessages int, cutoff int64) {
	drop := 0
	if maxMessages >= 0 && len(t.recs) > maxMessages {
		drop = len(t.recs) - maxMessages
	}
	for drop < len(t.recs) && t.recs[drop].ts < cutoff {
		drop++
	}
	if drop == 0 {
		return
	}
	clear(t.recs[:drop]) // release payloads now
	t.recs = t.recs[drop:]
	t.dead += drop
	// Each move copies fewer records than were dropped since the last one,
	// so trimming stays amortized O(1) per dropped record.
	if t.dead > len(t.recs) {
		n := len(t.recs)
		switch {
		case n == 0:
			t.realloc(0)
		case t.dead+cap(t.recs) > 4*(n+n/4+1):
			t.realloc(n + n/4 + 1) // far too big for what is left
		default:
			t.compact()
		}
	}
}

// maxStackPage is the largest page whose indexes query collects without
// allocating.
const maxStackPage = 64

// query answers q, hiding records stamped before cutoff. Call it with t.mu
// held for reading.
func (t *memTopic) query(q *Query, cutoff int64) pubsub.HistoryPage {
	recs := t.recs
	limit := q.Limit
	var buf [maxStackPage]int
	idx := buf[:0]
	if limit > maxStackPage {
		idx = make([]int, 0, min(limit, len(recs)))
	}
	hasMore := false
	// take considers record i in scan order; it reports false once the page
	// is full, setting hasMore, since i is one more visible message.
	take := func(i int) bool {
		r := &recs[i]
		if r.ts < cutoff || !r.visible(q) {
			return true
		}
		if len(idx) == limit {
			hasMore = true
			return false
		}
		idx = append(idx, i)
		return true
	}
	if q.After != 0 {
		// Oldest first from the first id above After.
		i := len(recs)
		if q.After < math.MaxInt64 {
			i, _ = slices.BinarySearchFunc(recs, int64(q.After)+1, cmpID)
		}
		for ; i < len(recs) && take(i); i++ {
		}
	} else {
		// Newest first from the last id below Before (or from the newest),
		// then reversed.
		i := len(recs)
		if q.Before != 0 {
			i, _ = slices.BinarySearchFunc(recs, int64(q.Before), cmpID)
		}
		for i--; i >= 0 && take(i); i-- {
		}
		slices.Reverse(idx)
	}
	msgs := make([]pubsub.Message, len(idx))
	for j, i := range idx {
		msgs[j] = recs[i].message(q.Topic)
	}
	return pubsub.HistoryPage{Messages: msgs, HasMore: hasMore}
}

func cmpID(r record, id int64) int {
	switch {
	case r.id < id:
		return -1
	case r.id > id:
		return 1
	}
	return 0
}

// raise sets v to id if id is higher.
func raise(v *atomic.Int64, id int64) {
	for {
		cur := v.Load()
		if id <= cur || v.CompareAndSwap(cur, id) {
			return
		}
	}
}

// noTime stands for the zero time.Time in stored timestamps; it sorts before
// every real one, so such a message counts as older than any MaxAge.
const noTime = math.MinInt64

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return noTime
	}
	return t.UnixNano()
}

func fromUnixNano(ns int64) time.Time {
	if ns == noTime {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
