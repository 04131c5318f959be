package history

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/plazahq/plaza/pubsub"
)

var (
	_ Pipeliner = (*Bolt)(nil)
	_ KeyStore  = (*Bolt)(nil)
)

// BoltOptions configure [OpenBolt].
type BoltOptions struct {
	// Options set retention.
	Options

	// OpenTimeout is how long OpenBolt waits for another process that has
	// the file open to let go of it before giving up. Zero means one second.
	OpenTimeout time.Duration
}

// DefaultOpenTimeout is the OpenTimeout of a zero BoltOptions.
const DefaultOpenTimeout = time.Second

// Bolt is a [Store] that keeps history in a bbolt file, so that it survives
// restarts.
//
// # File layout
//
// The file has three top-level buckets:
//
//   - "topics" holds one nested bucket per room and topic. The bucket's name
//     is the length of the room name as a uvarint, the room name, then the
//     topic name, so names containing ':' or any other byte never collide.
//     Its keys are message ids, 8 bytes big-endian; its values are the
//     messages in a compact binary form, about 16 bytes plus the payload,
//     with the idempotency key of a message appended with one (AppendKey).
//   - "counts" holds the number of messages of each topic bucket, under the
//     same name, so that retention by count needs no scan.
//   - "meta" holds the highest id ever stored (which retention never
//     lowers) and the version of the layout.
//
// This is layout version 2, which added idempotency keys to the messages.
// OpenBolt upgrades a version 1 file in place by rewriting its version
// number alone: version 1 messages read unchanged. Older releases refuse a
// version 2 file.
//
// # Idempotency keys
//
// A key is committed in the same transaction as its message, inside the
// message's value, so a message and its key are stored together or not at
// all. Keys finds them by walking a topic back from its newest message, the
// same walk as a history page; there is no separate index to keep, so a
// publish costs no more than the key's bytes.
//
// # Durability
//
// Append returns once its message is in a committed, fsynced transaction.
// A single committer goroutine writes every append that is waiting when the
// previous commit ends in one transaction, so concurrent appends share one
// fsync: one appender gets one commit per message, many appenders get many
// messages per commit.
//
// # Retention
//
// Retention deletes the oldest keys of a topic in the same transaction that
// appends to it: everything beyond [Options.MaxMessages] and everything
// older than [Options.MaxAge]. A topic left with no messages is deleted. A
// query that meets expired messages asks the committer to delete them, and
// never returns them. bbolt reuses the freed pages for new messages, so under
// retention the file stops growing; it never shrinks.
//
// Create a Bolt with [OpenBolt]. A Bolt is safe for concurrent use; one file
// can be open in only one Bolt at a time.
type Bolt struct {
	db    *bolt.DB
	path  string
	ret   retention
	maxID atomic.Int64 // as committed

	mu      sync.Mutex
	pending *boltBatch          // appends waiting for the next commit
	trims   map[string]struct{} // topic buckets queries found expired messages in
	closed  bool

	wake    chan struct{} // capacity 1: something is pending, or closed is set
	stopped chan struct{} // closed when the committer returns

	closeOnce sync.Once
	closeErr  error
}

// boltBatch is the appends that one transaction commits.
type boltBatch struct {
	reqs []boltAppend
	done chan struct{} // closed after the commit; then err is set
	err  error
}

type boltAppend struct {
	bucket []byte // topic bucket name
	id     int64
	value  []byte
}

// ErrInUse is in the chain of the error OpenBolt returns when another
// process (or another Bolt in this one) has the file open.
var ErrInUse = errors.New("history: the file is in use by another process")

// Bucket names and meta keys.
var (
	bucketTopics = []byte("topics")
	bucketCounts = []byte("counts")
	bucketMeta   = []byte("meta")
	keyMaxID     = []byte("maxid")
	keyVersion   = []byte("version")
)

// boltVersion is the version of the file layout described on [Bolt].
const boltVersion = 2

// OpenBolt opens the history file at path, creating it if it does not
// exist. It fails with an error that says the file is in use when another
// process (or another Bolt in this one) keeps it open past
// opts.OpenTimeout.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	timeout := opts.OpenTimeout
	if timeout <= 0 {
		timeout = DefaultOpenTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      timeout,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, &pubsub.Error{
			Code:    pubsub.CodeInternal,
			Message: fmt.Sprintf("history: %s is in use by another process (still locked after %v)", path, timeout),
			Err:     ErrInUse,
		}
	}
	if err != nil {
		return nil, pubsub.Errorf(pubsub.CodeInternal, "history: open %s: %w", path, err)
	}
	s := &Bolt{
		db:      db,
		path:    path,
		ret:     opts.Options.retention(),
		pending: newBoltBatch(),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	if err := db.Update(s.init); err != nil {
		db.Close()
		return nil, pubsub.Errorf(pubsub.CodeInternal, "history: open %s: %w", path, err)
	}
	go s.run()
	return s, nil
}

// init creates the top-level buckets, checks the layout version (upgrading
// version 1) and loads MaxID.
func (s *Bolt) init(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketTopics, bucketCounts, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	switch v := meta.Get(keyVersion); {
	case v == nil || len(v) == 8 && binary.BigEndian.Uint64(v) == 1:
		// A new file, or version 1, whose records version 2 reads as
		// they are.
		if err := meta.Put(keyVersion, binary.BigEndian.AppendUint64(nil, boltVersion)); err != nil {
			return err
		}
	case len(v) != 8 || binary.BigEndian.Uint64(v) != boltVersion:
		return fmt.Errorf("unknown layout version %x", v)
	}
	if v := meta.Get(keyMaxID); len(v) == 8 {
		s.maxID.Store(keyID(v))
	}
	return nil
}

func newBoltBatch() *boltBatch { return &boltBatch{done: make(chan struct{})} }

// topicBucket returns the name of the bucket of room and topic.
func topicBucket(room, topic string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(room)+len(topic))
	b = binary.AppendUvarint(b, uint64(len(room)))
	b = append(b, room...)
	return append(b, topic...)
}

// Append stores m and returns when it is on stable storage. If ctx ends
// first, Append returns ctx's error, and m may or may not be stored.
func (s *Bolt) Append(ctx context.Context, room string, m pubsub.Message) error {
	return s.AppendKey(ctx, room, m, "")
}

// AppendKey implements [KeyStore]: it is Append, with key stored in m's
// record.
func (s *Bolt) AppendKey(ctx context.Context, room string, m pubsub.Message, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Enqueue(room, m, key)(ctx)
}

// Enqueue implements [Pipeliner]: it queues m, with key in its record, for
// the next commit and returns a function that waits for that commit.
func (s *Bolt) Enqueue(room string, m pubsub.Message, key string) func(context.Context) error {
	if m.ID <= 0 {
		return failed(errNoID)
	}
	name := topicBucket(room, m.Topic)
	if len(name) > bolt.MaxKeySize {
		return failed(pubsub.Errorf(pubsub.CodeInternal, "history: room and topic names are longer than %d bytes", bolt.MaxKeySize))
	}
	req := boltAppend{bucket: name, id: int64(m.ID), value: encodeRecord(&m, key)}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return failed(errClosed)
	}
	b := s.pending
	b.reqs = append(b.reqs, req)
	s.mu.Unlock()
	s.signal()

	return func(ctx context.Context) error {
		select {
		case <-b.done:
			return b.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func failed(err error) func(context.Context) error {
	return func(context.Context) error { return err }
}

func (s *Bolt) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run is the committer: it commits whatever is pending, one transaction at
// a time, until Close.
func (s *Bolt) run() {
	defer close(s.stopped)
	for range s.wake {
		s.mu.Lock()
		b, trims, closed := s.pending, s.trims, s.closed
		s.pending, s.trims = newBoltBatch(), nil
		s.mu.Unlock()

		if len(b.reqs) > 0 || len(trims) > 0 {
			maxID := int64(0)
			err := s.db.Update(func(tx *bolt.Tx) error {
				var err error
				maxID, err = s.apply(tx, b.reqs, trims)
				return err
			})
			if err != nil {
				b.err = pubsub.Errorf(pubsub.CodeInternal, "history: commit to %s: %w", s.path, err)
			} else {
				raise(&s.maxID, maxID)
			}
		}
		close(b.done)
		if closed {
			return
		}
	}
}

// apply writes reqs, applies retention to their topics and to the topics
// in trims, and returns the highest id stored so far.
func (s *Bolt) apply(tx *bolt.Tx, reqs []boltAppend, trims map[string]struct{}) (int64, error) {
	topics := tx.Bucket(bucketTopics)
	counts := tx.Bucket(bucketCounts)
	meta := tx.Bucket(bucketMeta)
	cutoff := s.ret.cutoff()

	// Topic by topic, in id order: bbolt writes fewer pages that way.
	slices.SortStableFunc(reqs, func(a, b boltAppend) int {
		if c := bytes.Compare(a.bucket, b.bucket); c != 0 {
			return c
		}
		return cmpInt64(a.id, b.id)
	})
	maxID := s.maxID.Load()
	for len(reqs) > 0 {
		name := reqs[0].bucket
		n := 1
		for n < len(reqs) && bytes.Equal(reqs[n].bucket, name) {
			n++
		}
		group := reqs[:n]
		reqs = reqs[n:]

		bk, err := topics.CreateBucketIfNotExists(name)
		if err != nil {
			return 0, err
		}
		bk.FillPercent = 1 // ids grow: pack pages full
		count := getCount(counts, name)
		last := int64(math.MinInt64)
		if k, _ := bk.Cursor().Last(); k != nil {
			last = keyID(k)
		}
		for _, r := range group {
			k := idKey(r.id)
			if r.id > last {
				last = r.id
				count++
			} else if bk.Get(k) == nil {
				count++
			}
			if err := bk.Put(k, r.value); err != nil {
				return 0, err
			}
			maxID = max(maxID, r.id)
		}
		if err := s.trim(topics, counts, bk, name, count, cutoff); err != nil {
			return 0, err
		}
		delete(trims, string(name))
	}
	for name := range trims {
		bk := topics.Bucket([]byte(name))
		if bk == nil {
			continue
		}
		if err := s.trim(topics, counts, bk, []byte(name), getCount(counts, []byte(name)), cutoff); err != nil {
			return 0, err
		}
	}
	if maxID > s.maxID.Load() {
		if err := meta.Put(keyMaxID, idKey(maxID)); err != nil {
			return 0, err
		}
	}
	return maxID, nil
}

// trim deletes the oldest messages of bk, which holds count, beyond
// MaxMessages or stamped before cutoff, and records the new count. It
// deletes the bucket once it is empty.
func (s *Bolt) trim(topics, counts, bk *bolt.Bucket, name []byte, count int64, cutoff int64) error {
	bk.FillPercent = 1
	c := bk.Cursor()
	k, v := c.First()
	for ; k != nil; k, v = c.First() {
		if (s.ret.maxMessages < 0 || count <= int64(s.ret.maxMessages)) && recordTS(v) >= cutoff {
			break
		}
		if err := c.Delete(); err != nil {
			return err
		}
		count--
	}
	if k == nil {
		if err := topics.DeleteBucket(name); err != nil {
			return err
		}
		return counts.Delete(name)
	}
	return counts.Put(name, binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(count)))
}

func getCount(counts *bolt.Bucket, name []byte) int64 {
	if v := counts.Get(name); len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Query returns one page of room's history for q. It reads a consistent
// snapshot and does not wait for appends in flight.
func (s *Bolt) Query(ctx context.Context, room string, q Query) (pubsub.HistoryPage, error) {
	if err := ctx.Err(); err != nil {
		return pubsub.HistoryPage{}, err
	}
	if err := checkQuery(&q); err != nil {
		return pubsub.HistoryPage{}, err
	}
	if s.isClosed() {
		return pubsub.HistoryPage{}, errClosed
	}
	name := topicBucket(room, q.Topic)
	cutoff := s.ret.cutoff()
	var page pubsub.HistoryPage
	var expired bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var bk *bolt.Bucket
		if len(name) <= bolt.MaxKeySize {
			bk = tx.Bucket(bucketTopics).Bucket(name)
		}
		if bk == nil {
			page = emptyPage()
			return nil
		}
		var err error
		page, expired, err = boltQuery(bk.Cursor(), &q, cutoff)
		return err
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return pubsub.HistoryPage{}, errClosed
	}
	if err != nil {
		return pubsub.HistoryPage{}, pubsub.Errorf(pubsub.CodeInternal, "history: query %s: %w", s.path, err)
	}
	if expired {
		s.mu.Lock()
		if !s.closed {
			if s.trims == nil {
				s.trims = make(map[string]struct{})
			}
			s.trims[string(name)] = struct{}{}
		}
		s.mu.Unlock()
		s.signal()
	}
	return page, nil
}

// boltQuery answers q from the cursor of a topic bucket, hiding records
// stamped before cutoff. It also reports whether the oldest record has
// expired.
func boltQuery(c *bolt.Cursor, q *Query, cutoff int64) (page pubsub.HistoryPage, expired bool, err error) {
	if k, v := c.First(); k != nil {
		expired = recordTS(v) < cutoff
	}
	type hit struct {
		id  int64
		rec recordView
	}
	var buf [maxStackPage]hit
	hits := buf[:0]
	if q.Limit > maxStackPage {
		hits = make([]hit, 0, q.Limit)
	}
	// take adds the record at k, v to hits if it is visible; it reports
	// whether the walk should stop, having found one visible record more
	// than the page holds.
	take := func(k, v []byte) (stop bool, err error) {
		if len(k) != 8 {
			return false, errCorrupt
		}
		r, err := parseRecord(v)
		if err != nil {
			return false, err
		}
		if r.ts < cutoff || !r.visible(q) {
			return false, nil
		}
		if len(hits) == q.Limit {
			page.HasMore = true
			return true, nil
		}
		hits = append(hits, hit{keyID(k), r})
		return false, nil
	}
	var k, v []byte
	if q.After != 0 {
		if q.After < math.MaxInt64 {
			k, v = c.Seek(idKey(int64(q.After) + 1))
		}
		for ; k != nil; k, v = c.Next() {
			if stop, err := take(k, v); stop || err != nil {
				if err != nil {
					return page, expired, err
				}
				break
			}
		}
	} else {
		if q.Before != 0 {
			if k, _ = c.Seek(idKey(int64(q.Before))); k != nil {
				k, v = c.Prev()
			} else {
				k, v = c.Last()
			}
		} else {
			k, v = c.Last()
		}
		for ; k != nil; k, v = c.Prev() {
			if stop, err := take(k, v); stop || err != nil {
				if err != nil {
					return page, expired, err
				}
				break
			}
		}
		slices.Reverse(hits)
	}
	// One allocation for all the payloads, which must outlive the
	// transaction.
	size := 0
	for _, h := range hits {
		size += len(h.rec.payload)
	}
	payloads := make([]byte, 0, size)
	page.Messages = make([]pubsub.Message, len(hits))
	for i, h := range hits {
		m := h.rec.message(h.id, q.Topic)
		if i > 0 && m.From == page.Messages[i-1].From {
			m.From = page.Messages[i-1].From // share the string
		}
		start := len(payloads)
		payloads = append(payloads, h.rec.payload...)
		m.Payload = payloads[start:len(payloads):len(payloads)]
		page.Messages[i] = m
	}
	return page, expired, nil
}

// Keys implements [KeyStore]. It reads a consistent snapshot and does not
// wait for appends in flight.
func (s *Bolt) Keys(ctx context.Context, room string, q KeyQuery) ([]KeyedMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.isClosed() {
		return nil, errClosed
	}
	name := topicBucket(room, q.Topic)
	since := max(unixNano(q.Since), s.ret.cutoff())
	limit := q.Limit
	if limit <= 0 {
		limit = math.MaxInt
	}
	var keyed []KeyedMessage
	err := s.db.View(func(tx *bolt.Tx) error {
		if len(name) > bolt.MaxKeySize {
			return nil
		}
		bk := tx.Bucket(bucketTopics).Bucket(name)
		if bk == nil {
			return nil
		}
		// Count first, so that a long answer is allocated once.
		c := bk.Cursor()
		n, size := 0, 0
		k, v := c.Last()
		for ; k != nil && recordTS(v) >= since && n < limit; k, v = c.Prev() {
			if len(recordKey(v)) > 0 {
				n++
				size += len(v)
			}
		}
		if n == 0 {
			return nil
		}
		keyed = make([]KeyedMessage, 0, n)
		payloads := make([]byte, 0, size) // they must outlive the transaction
		for k, v = c.Last(); k != nil && len(keyed) < n; k, v = c.Prev() {
			key := recordKey(v)
			if len(key) == 0 {
				continue
			}
			r, err := parseRecord(v)
			if err != nil || len(k) != 8 {
				return errCorrupt
			}
			m := r.message(keyID(k), q.Topic)
			start := len(payloads)
			payloads = append(payloads, r.payload...)
			m.Payload = payloads[start:len(payloads):len(payloads)]
			keyed = append(keyed, KeyedMessage{Key: string(key), Message: m})
		}
		return nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return nil, errClosed
	}
	if err != nil {
		return nil, pubsub.Errorf(pubsub.CodeInternal, "history: keys %s: %w", s.path, err)
	}
	return keyed, nil
}

// MaxID returns the highest id ever stored, including ids that retention
// has deleted since.
func (s *Bolt) MaxID(ctx context.Context) (pubsub.ID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.isClosed() {
		return 0, errClosed
	}
	return pubsub.ID(s.maxID.Load()), nil
}

func (s *Bolt) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close commits the appends in flight, stops the committer and closes the
// file, waiting for queries in flight. It is idempotent.
func (s *Bolt) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.signal()
		<-s.stopped
		if err := s.db.Close(); err != nil {
			s.closeErr = pubsub.Errorf(pubsub.CodeInternal, "history: close %s: %w", s.path, err)
		}
	})
	return s.closeErr
}
