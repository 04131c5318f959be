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
// restarts and crashes.
//
// # Files
//
// The store is the bolt file at the path given to [OpenBolt] and its
// write-ahead log beside it: path+"-wal0" and path+"-wal1", preallocated to
// 16 MiB each. An append is durable once it is in the log; checkpoints then
// copy the log into the bolt file in large transactions, in the background.
// Opening the store replays whatever the log holds that the bolt file does
// not, so the files belong together: copy or delete them together, with the
// store closed.
//
// # File layout
//
// The bolt file has three top-level buckets:
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
//     lowers), the version of the layout, and how far the log has been
//     checkpointed into the file.
//
// This is layout version 3, which added the write-ahead log; version 2 added
// idempotency keys to the messages. OpenBolt upgrades a version 1 or 2 file
// in place by rewriting its version number alone: their messages read
// unchanged. Older releases refuse a version 3 file, which they would read
// without the messages still in its log.
//
// # Idempotency keys
//
// A key is stored with its message, in the same log record and later the
// same value of the bolt file, so a message and its key are stored together
// or not at all. Keys finds them by walking a topic back from its newest
// message, the same walk as a history page; there is no separate index to
// keep, so a publish costs no more than the key's bytes.
//
// # Durability
//
// Append returns once its message is in the log and the log is fsynced. A
// single writer goroutine logs every append that is waiting when the
// previous write ends with one write and one fsync, so concurrent appends
// share them: one appender gets one fsync per message, many appenders, on
// any number of topics, many messages per fsync. A message is visible to
// Query and Keys from then on, from memory until a checkpoint has put it
// into the bolt file. A checkpoint starts once the log has taken 4 MiB since
// the last one, or with the first append a second or more after it, and
// runs on a goroutine of its own while the writer goes on logging into the
// other segment; bbolt fsyncs it as it commits, so the file is always a
// consistent state that the log completes. Until a checkpoint has taken
// them, the overlay holds the logged messages in memory: at most about two
// checkpoints' worth (8 MiB and up, with the messages' own size).
//
// If a log write or its fsync fails, the appends it carried fail, and the
// segment is not written again: the next append first checkpoints the
// confirmed appends into the bolt file, which retires the segment with the
// failed write, and fails too if that checkpoint does. So a failed write
// neither comes back after a crash nor hides the appends confirmed after it.
//
// If a checkpoint fails (the disk is full, say), appends still succeed
// through the log, and the next append retries the checkpoint; the overlay
// grows meanwhile. Close reports the failure if its own last checkpoint
// fails too.
//
// A message whose log record would be over 4 MiB (a hub publishes at most
// 32 KiB of payload and 4 KiB of metadata) fails with PAYLOAD_TOO_LARGE.
//
// An append of an id at or below the newest one its topic holds (which a
// hub never makes: it appends each topic in id order) is written into the
// bolt file before it returns, in a checkpoint of its own.
//
// # Retention
//
// Retention deletes the oldest keys of a topic in the checkpoint that
// appends to it: everything beyond [Options.MaxMessages] and everything
// older than [Options.MaxAge]. A topic left with no messages is deleted.
// Queries never return messages beyond retention, whether or not a
// checkpoint has deleted them yet; a query that meets expired messages asks
// the next checkpoint to delete them. bbolt reuses the freed pages for new
// messages, so under retention the file stops growing; it never shrinks.
//
// Create a Bolt with [OpenBolt]. A Bolt is safe for concurrent use; one file
// can be open in only one Bolt at a time.
type Bolt struct {
	db    *bolt.DB
	path  string
	ret   retention
	maxID atomic.Int64 // as durable

	mu      sync.Mutex
	pending *boltBatch          // appends waiting for the next log write
	trims   map[string]struct{} // topic buckets queries found expired messages in
	forced  []chan error        // waiting for a checkpoint of everything logged
	closed  bool
	abandon bool // with closed: stop without a checkpoint, as a crash would (tests)

	wake    chan struct{} // capacity 1: something is pending, or closed is set
	stopped chan struct{} // closed when the writer returns

	// The writer's own state.
	segs        [2]*walSegment
	cur         int                      // the segment taking appends
	epoch       uint64                   // the highest epoch used so far
	buf         []byte                   // log records of one write
	sinceFreeze int                      // bytes logged since the last freeze
	lastFreeze  time.Time                // of the last freeze
	wTrims      map[string]struct{}      // trims for the next checkpoint
	lastBatch   int                      // appends of the last write
	released    time.Time                // when it ended
	linger      time.Duration            // how long gather may wait after it
	ckRunning   bool                     // a checkpoint is running
	stuck       bool                     // the last checkpoint failed: frozen is still to be written
	damaged     bool                     // a log write failed: the segment is retired before the next one
	syncFault   atomic.Pointer[syncFunc] // tests: replaces the fsync of log writes

	ckReq     chan *checkpoint // to the checkpointer
	ckDone    chan error       // from it, one answer per request
	ckStopped chan struct{}    // closed when the checkpointer returns
	ckErr     error            // the last checkpoint's failure, for Close

	// The overlay: messages in the log that the bolt file may not have yet.
	// frozen is being checkpointed (older maps first); active has come
	// since.
	ovMu   sync.Mutex
	frozen []map[string]*ovTopic
	active map[string]*ovTopic

	// Where queries' walks past the records that retention hides ended,
	// for the file state floorsTx (see topicView.cursor).
	floorMu  sync.Mutex
	floorsTx int
	floors   map[string]floorMark

	stats struct {
		appends, writes, syncNs, checkpoints, checkpointNs atomic.Int64
	}

	closeOnce sync.Once
	closeErr  error
}

// BoltStats counts what a [Bolt] has done since it was opened.
type BoltStats struct {
	Appends        int64         // messages made durable in the log
	LogWrites      int64         // writes to the log, each followed by one fsync
	LogTime        time.Duration // spent in them, fsyncs included
	Checkpoints    int64         // transactions that copied the log into the bolt file
	CheckpointTime time.Duration // spent in them
}

// Stats returns the store's counters. Appends/LogWrites is how many
// messages share an fsync; LogTime/LogWrites is what one costs on this disk.
func (s *Bolt) Stats() BoltStats {
	return BoltStats{
		Appends:        s.stats.appends.Load(),
		LogWrites:      s.stats.writes.Load(),
		LogTime:        time.Duration(s.stats.syncNs.Load()),
		Checkpoints:    s.stats.checkpoints.Load(),
		CheckpointTime: time.Duration(s.stats.checkpointNs.Load()),
	}
}

// ovTopic is one topic's messages in the overlay, in ascending id order,
// all newer than the topic's messages in the bolt file. recs only grows:
// a snapshot of it stays valid.
type ovTopic struct{ recs []boltAppend }

// boltBatch is the appends that one log write makes durable.
type boltBatch struct {
	reqs []boltAppend
	done chan struct{} // closed after the write; then err is set
	err  error
}

type boltAppend struct {
	bucket []byte // topic bucket name
	id     int64
	key    [8]byte // id, big-endian: the record's key in the bolt file
	value  []byte
}

// checkpoint is one request to the checkpointer: write the frozen overlay,
// then extra, into the bolt file with trims, and record that every log
// epoch up to epoch is in it.
type checkpoint struct {
	frozen []map[string]*ovTopic
	extra  []boltAppend
	trims  map[string]struct{}
	epoch  uint64
}

// maxLinger bounds how long gather waits.
const maxLinger = time.Millisecond

// When the writer freezes the overlay for a checkpoint.
const (
	checkpointBytes = 4 << 20
	checkpointEvery = time.Second
)

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
	keyWALEpoch  = []byte("walepoch") // the highest log epoch all in the file
)

// boltVersion is the version of the file layout described on [Bolt].
const boltVersion = 3

// OpenBolt opens the history file at path, creating it if it does not
// exist, with its log (see [Bolt]), and replays the log. It fails with an
// error that says the file is in use when another process (or another Bolt
// in this one) keeps it open past opts.OpenTimeout.
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
		db:        db,
		path:      path,
		ret:       opts.Options.retention(),
		pending:   newBoltBatch(),
		wake:      make(chan struct{}, 1),
		stopped:   make(chan struct{}),
		ckReq:     make(chan *checkpoint, 1),
		ckDone:    make(chan error, 1),
		ckStopped: make(chan struct{}),
		active:    make(map[string]*ovTopic),
	}
	if err := s.open(); err != nil {
		for _, seg := range s.segs {
			if seg != nil {
				seg.f.Close()
			}
		}
		db.Close()
		return nil, pubsub.Errorf(pubsub.CodeInternal, "history: open %s: %w", path, err)
	}
	s.lastFreeze = time.Now()
	go s.checkpointer()
	go s.run()
	return s, nil
}

// open prepares the file (see init), replays the log into it and readies
// a segment for appends.
func (s *Bolt) open() error {
	var walEpoch uint64
	if err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		walEpoch, err = s.init(tx)
		return err
	}); err != nil {
		return err
	}
	segs, epochs, recs, err := openWAL(s.path)
	if err != nil {
		return err
	}
	s.segs = segs
	s.epoch = max(walEpoch, epochs[0], epochs[1])
	// Replay the epochs the file does not have, oldest first, in one
	// transaction.
	order := []int{0, 1}
	if epochs[1] < epochs[0] {
		order = []int{1, 0}
	}
	var replay []boltAppend
	for _, i := range order {
		if epochs[i] > walEpoch {
			replay = append(replay, recs[i]...)
		}
	}
	if len(replay) > 0 {
		var maxID int64
		err := s.db.Update(func(tx *bolt.Tx) error {
			var err error
			if maxID, err = s.apply(tx, replay, nil); err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Put(keyWALEpoch, binary.BigEndian.AppendUint64(nil, s.epoch))
		})
		if err != nil {
			return fmt.Errorf("replaying the log: %w", err)
		}
		raise(&s.maxID, maxID)
	}
	s.epoch++
	return s.segs[s.cur].reset(s.epoch)
}

// init creates the top-level buckets, checks the layout version (upgrading
// versions 1 and 2), loads MaxID and returns the highest log epoch the
// file holds.
func (s *Bolt) init(tx *bolt.Tx) (walEpoch uint64, err error) {
	for _, name := range [][]byte{bucketTopics, bucketCounts, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return 0, err
		}
	}
	meta := tx.Bucket(bucketMeta)
	switch v := meta.Get(keyVersion); {
	case v == nil || len(v) == 8 && (binary.BigEndian.Uint64(v) == 1 || binary.BigEndian.Uint64(v) == 2):
		// A new file, or version 1 or 2, whose records version 3 reads as
		// they are, and which had no log.
		if err := meta.Put(keyVersion, binary.BigEndian.AppendUint64(nil, boltVersion)); err != nil {
			return 0, err
		}
	case len(v) != 8 || binary.BigEndian.Uint64(v) != boltVersion:
		return 0, fmt.Errorf("unknown layout version %x", v)
	}
	if v := meta.Get(keyMaxID); len(v) == 8 {
		s.maxID.Store(keyID(v))
	}
	if v := meta.Get(keyWALEpoch); len(v) == 8 {
		walEpoch = binary.BigEndian.Uint64(v)
	}
	return walEpoch, nil
}

func newBoltBatch() *boltBatch { return &boltBatch{done: make(chan struct{})} }

// topicBucket returns the name of the bucket of room and topic.
func topicBucket(room, topic string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(room)+len(topic))
	b = binary.AppendUvarint(b, uint64(len(room)))
	b = append(b, room...)
	return append(b, topic...)
}

func newAppend(bucket []byte, id int64, value []byte) boltAppend {
	r := boltAppend{bucket: bucket, id: id, value: value}
	binary.BigEndian.PutUint64(r.key[:], uint64(id))
	return r
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
// the next log write and returns a function that waits for that write.
func (s *Bolt) Enqueue(room string, m pubsub.Message, key string) func(context.Context) error {
	if m.ID <= 0 {
		return failed(errNoID)
	}
	name := topicBucket(room, m.Topic)
	if len(name) > bolt.MaxKeySize {
		return failed(pubsub.Errorf(pubsub.CodeInternal, "history: room and topic names are longer than %d bytes", bolt.MaxKeySize))
	}
	req := newAppend(name, int64(m.ID), encodeRecord(&m, key))
	if n := walBodyLen(&req); n > walMaxRecord {
		return failed(pubsub.Errorf(pubsub.CodePayloadTooLarge, "history: the message takes %d bytes in the log, more than %d", n, walMaxRecord))
	}

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

// run is the writer: it logs whatever is pending, one write at a time,
// freezes the overlay for checkpoints, and at Close writes everything into
// the bolt file.
func (s *Bolt) run() {
	defer close(s.stopped)
	for range s.wake {
		s.gather()
		s.mu.Lock()
		b, trims, forced, closed := s.pending, s.trims, s.forced, s.closed
		s.pending, s.trims, s.forced = newBoltBatch(), nil, nil
		s.mu.Unlock()

		for name := range trims {
			if s.wTrims == nil {
				s.wTrims = make(map[string]struct{})
			}
			s.wTrims[name] = struct{}{}
		}
		if len(b.reqs) > 0 {
			start := time.Now()
			if err := s.log(b.reqs); err != nil {
				b.err = pubsub.Errorf(pubsub.CodeInternal, "history: append to %s: %w", s.path, err)
			}
			s.released = time.Now()
			s.linger = min(s.released.Sub(start)/2, maxLinger)
		}
		s.lastBatch = len(b.reqs)
		close(b.done)
		if closed {
			s.mu.Lock()
			abandon := s.abandon
			s.mu.Unlock()
			if abandon {
				if s.ckRunning {
					s.checkpointed(<-s.ckDone)
				}
				close(s.ckReq)
				return
			}
			s.finish()
			for _, ch := range forced {
				ch <- errClosed
			}
			return
		}
		if len(forced) > 0 {
			err := s.checkpointNow(nil)
			for _, ch := range forced {
				ch <- err
			}
			continue
		}
		s.maybeFreeze()
	}
}

// gather waits, before a write, for the appenders the previous write
// released to come back: each of them waits for its write, so without this
// the writes alternate between those who were waiting and those who were
// released, each half as large. It waits at most half as long as the
// previous write took, counted from its end, so an appender that does not
// come back costs little, and one that comes back later none.
func (s *Bolt) gather() {
	if s.lastBatch < 2 {
		return
	}
	wait := time.Until(s.released.Add(s.linger))
	if wait <= 0 {
		return
	}
	s.mu.Lock()
	want := len(s.pending.reqs) + s.lastBatch
	s.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		s.mu.Lock()
		n, closed := len(s.pending.reqs), s.closed
		s.mu.Unlock()
		if n >= want || closed {
			return
		}
		select {
		case <-s.wake:
		case <-t.C:
			s.signal() // the wake gather may have taken
			return
		}
	}
}

// log makes reqs durable in the log and visible, in the overlay or, when
// one of them is not newer than its topic's newest message, in the bolt
// file.
func (s *Bolt) log(reqs []boltAppend) error {
	if s.damaged {
		// The failed write may have left records of the segment's epoch
		// behind its end (appends that were not confirmed), or lost what
		// it held there (a failed fsync may drop the dirty pages): a
		// record written after them would be unreachable on replay, or
		// bring them back. Checkpoint what was confirmed, which retires
		// the segment's epoch, and go on in a segment reset under a new
		// one.
		if err := s.checkpointNow(nil); err != nil {
			return err
		}
		s.damaged = false
	}
	inOrder, err := s.inOrder(reqs)
	if err != nil {
		return err
	}
	seg := s.segs[s.cur]
	buf := s.buf[:0]
	for i := range reqs {
		buf = appendWALRecord(buf, seg.epoch, &reqs[i])
	}
	if cap(buf) <= 1<<20 {
		s.buf = buf
	}
	start := time.Now()
	var sync syncFunc
	if f := s.syncFault.Load(); f != nil {
		sync = *f
	}
	if err := seg.write(buf, sync); err != nil {
		s.damaged = true
		return err
	}
	s.stats.writes.Add(1)
	s.stats.syncNs.Add(int64(time.Since(start)))
	s.stats.appends.Add(int64(len(reqs)))
	s.sinceFreeze += len(buf)
	if !inOrder {
		if err := s.checkpointNow(reqs); err != nil {
			// reqs are in the log but fail: retire them with it.
			s.damaged = true
			return err
		}
		return nil
	}
	var maxID int64
	s.ovMu.Lock()
	for i := range reqs {
		r := &reqs[i]
		t := s.active[string(r.bucket)]
		if t == nil {
			t = &ovTopic{}
			s.active[string(r.bucket)] = t
		}
		t.recs = append(t.recs, *r)
		maxID = max(maxID, r.id)
	}
	s.ovMu.Unlock()
	raise(&s.maxID, maxID)
	return nil
}

// inOrder reports whether every one of reqs is newer than everything its
// topic holds, in the overlay, the bolt file, or reqs before it.
func (s *Bolt) inOrder(reqs []boltAppend) (bool, error) {
	last := make(map[string]int64)
	s.ovMu.Lock()
	for i := range reqs {
		name := reqs[i].bucket
		if _, ok := last[string(name)]; ok {
			continue
		}
		if t := s.active[string(name)]; t != nil {
			last[string(name)] = t.recs[len(t.recs)-1].id
			continue
		}
		for j := len(s.frozen) - 1; j >= 0; j-- {
			if t := s.frozen[j][string(name)]; t != nil {
				last[string(name)] = t.recs[len(t.recs)-1].id
				break
			}
		}
	}
	s.ovMu.Unlock()
	var tx *bolt.Tx
	defer func() {
		if tx != nil {
			tx.Rollback()
		}
	}()
	for i := range reqs {
		r := &reqs[i]
		l, ok := last[string(r.bucket)]
		if !ok {
			// Neither in the overlay nor earlier in reqs: the file has
			// everything of this topic.
			if tx == nil {
				var err error
				if tx, err = s.db.Begin(false); err != nil {
					return false, err
				}
			}
			l = math.MinInt64
			if bk := tx.Bucket(bucketTopics).Bucket(r.bucket); bk != nil {
				if k, _ := bk.Cursor().Last(); k != nil {
					l = keyID(k)
				}
			}
		}
		if r.id <= l {
			return false, nil
		}
		last[string(r.bucket)] = r.id
	}
	return true, nil
}

// maybeFreeze starts a checkpoint when the log has taken enough since the
// last one, or a query asked for expired messages to be deleted.
func (s *Bolt) maybeFreeze() {
	if s.ckRunning {
		select {
		case err := <-s.ckDone:
			s.checkpointed(err)
		default:
			return
		}
	}
	if s.stuck {
		// The frozen overlay is still to be written, and its segment is
		// still needed: write everything, then switch.
		s.checkpointNow(nil)
		return
	}
	if s.sinceFreeze < checkpointBytes && len(s.wTrims) == 0 &&
		(s.sinceFreeze == 0 || time.Since(s.lastFreeze) < checkpointEvery) {
		return
	}
	ck := s.freeze()
	if ck == nil {
		return
	}
	s.ckRunning = true
	s.ckReq <- ck
}

// freeze moves the active overlay to frozen and switches the log to the
// other segment, whose records are all in the bolt file. It returns the
// checkpoint that writes what it froze, or nil when the switch failed.
func (s *Bolt) freeze() *checkpoint {
	next := 1 - s.cur
	if err := s.segs[next].reset(s.epoch + 1); err != nil {
		return nil
	}
	ck := s.takeOverlay(nil)
	s.switchTo(next)
	return ck
}

// takeOverlay moves the active overlay to frozen and returns the
// checkpoint that writes all of frozen, then extra, with the trims asked
// for, up to the current epoch.
func (s *Bolt) takeOverlay(extra []boltAppend) *checkpoint {
	ck := &checkpoint{extra: extra, trims: s.wTrims, epoch: s.epoch}
	s.ovMu.Lock()
	if len(s.active) > 0 {
		s.frozen = append(s.frozen, s.active)
		s.active = make(map[string]*ovTopic)
	}
	ck.frozen = s.frozen
	s.ovMu.Unlock()
	s.wTrims = nil
	return ck
}

// switchTo makes segment i, just reset, take the appends under a new epoch.
func (s *Bolt) switchTo(i int) {
	s.epoch++
	s.cur = i
	s.sinceFreeze = 0
	s.lastFreeze = time.Now()
}

// checkpointNow writes the whole overlay, then extra, into the bolt file and
// waits for it. extra is in the current segment, after the overlay.
func (s *Bolt) checkpointNow(extra []boltAppend) error {
	if s.ckRunning {
		s.checkpointed(<-s.ckDone)
	}
	// Both segments are free once this checkpoint commits, so the switch
	// can wait until then.
	s.ckReq <- s.takeOverlay(extra)
	err := <-s.ckDone
	s.checkpointed(err)
	if err != nil {
		return err
	}
	next := 1 - s.cur
	if err := s.segs[next].reset(s.epoch + 1); err != nil {
		// The current segment goes on under a new epoch: the checkpoint
		// holds everything in it so far.
		next = s.cur
		if err := s.segs[next].reset(s.epoch + 1); err != nil {
			return err
		}
	}
	s.switchTo(next)
	return nil
}

// checkpointed takes the checkpointer's answer.
func (s *Bolt) checkpointed(err error) {
	s.ckRunning = false
	s.stuck = err != nil
	if err != nil {
		s.ckErr = err
	}
}

// finish writes everything into the bolt file at Close and stops the
// checkpointer.
func (s *Bolt) finish() {
	if s.ckRunning {
		s.checkpointed(<-s.ckDone)
	}
	s.ovMu.Lock()
	empty := len(s.active) == 0 && len(s.frozen) == 0
	s.ovMu.Unlock()
	if !empty || len(s.wTrims) > 0 {
		if err := s.checkpointNow(nil); err == nil {
			s.ckErr = nil
		}
	}
	close(s.ckReq)
}

// checkpointer commits the checkpoints the writer asks for, one at a time.
func (s *Bolt) checkpointer() {
	defer close(s.ckStopped)
	for ck := range s.ckReq {
		s.ckDone <- s.commit(ck)
	}
}

// commit writes ck into the bolt file and, once it is committed, drops what
// it wrote from the overlay.
func (s *Bolt) commit(ck *checkpoint) error {
	n := len(ck.extra)
	for _, f := range ck.frozen {
		for _, t := range f {
			n += len(t.recs)
		}
	}
	// A copy: queries are reading the overlay, and apply sorts.
	reqs := make([]boltAppend, 0, n)
	for _, f := range ck.frozen {
		for _, t := range f {
			reqs = append(reqs, t.recs...)
		}
	}
	reqs = append(reqs, ck.extra...)
	var maxID int64
	start := time.Now()
	defer func() {
		s.stats.checkpoints.Add(1)
		s.stats.checkpointNs.Add(int64(time.Since(start)))
	}()
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if maxID, err = s.apply(tx, reqs, ck.trims); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyWALEpoch, binary.BigEndian.AppendUint64(nil, ck.epoch))
	})
	if err != nil {
		return pubsub.Errorf(pubsub.CodeInternal, "history: commit to %s: %w", s.path, err)
	}
	raise(&s.maxID, maxID)
	s.ovMu.Lock()
	s.frozen = s.frozen[len(ck.frozen):]
	if len(s.frozen) == 0 {
		s.frozen = nil
	}
	s.ovMu.Unlock()
	return nil
}

// apply writes reqs, applies retention to their topics and to the topics
// in trims, and returns the highest id stored so far. Of two requests for
// one id, the later one wins.
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
	stored := int64(0)
	if v := meta.Get(keyMaxID); len(v) == 8 {
		stored = keyID(v)
	}
	maxID := max(stored, s.maxID.Load())
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
		for i := range group {
			r := &group[i]
			if r.id > last {
				last = r.id
				count++
			} else if bk.Get(r.key[:]) == nil {
				count++
			}
			if err := bk.Put(r.key[:], r.value); err != nil {
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
	if maxID > stored {
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
	err := s.view(name, func(v *topicView) error {
		if v.bk == nil && len(v.tail) == 0 {
			page = emptyPage()
			return nil
		}
		var err error
		page, expired, err = boltQuery(v.cursor(s.ret.maxMessages), &q, cutoff)
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

// boltQuery answers q from the cursor of a topic, hiding records stamped
// before cutoff. It also reports whether the oldest record has expired.
func boltQuery(c *viewCursor, q *Query, cutoff int64) (page pubsub.HistoryPage, expired bool, err error) {
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
	err := s.view(name, func(tv *topicView) error {
		if tv.bk == nil && len(tv.tail) == 0 {
			return nil
		}
		c := tv.cursor(s.ret.maxMessages)
		// Count first, so that a long answer is allocated once.
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

// Close logs the appends in flight, checkpoints the whole log into the bolt
// file, stops the writer and the checkpointer and closes the files, waiting
// for queries in flight. It is idempotent.
func (s *Bolt) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.signal()
		<-s.stopped
		<-s.ckStopped
		if s.ckErr != nil {
			s.closeErr = s.ckErr
		}
		for _, seg := range s.segs {
			if err := seg.f.Close(); err != nil && s.closeErr == nil {
				s.closeErr = pubsub.Errorf(pubsub.CodeInternal, "history: close %s: %w", seg.f.Name(), err)
			}
		}
		if err := s.db.Close(); err != nil && s.closeErr == nil {
			s.closeErr = pubsub.Errorf(pubsub.CodeInternal, "history: close %s: %w", s.path, err)
		}
	})
	return s.closeErr
}
