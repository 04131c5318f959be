package history

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/plazahq/plaza/pubsub"
)

// BulkAppend stores msgs, all of room, in one transaction that bypasses the
// committer, for building benchmark fixtures quickly.
func (s *Bolt) BulkAppend(room string, msgs []pubsub.Message) error {
	reqs := make([]boltAppend, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		reqs[i] = newAppend(topicBucket(room, m.Topic), int64(m.ID), encodeRecord(m, ""))
	}
	var maxID int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		maxID, err = s.apply(tx, reqs, nil)
		return err
	})
	if err == nil {
		raise(&s.maxID, maxID)
	}
	return err
}

// Path returns the file s was opened from.
func (s *Bolt) Path() string { return s.path }

// Checkpoint writes everything logged so far into the bolt file and
// returns when it is committed.
func (s *Bolt) Checkpoint() error {
	ch := make(chan error, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	s.forced = append(s.forced, ch)
	s.mu.Unlock()
	s.signal()
	select {
	case err := <-ch:
		return err
	case <-time.After(hookTimeout):
		return fmt.Errorf("history: the forced checkpoint did not finish within %v", hookTimeout)
	}
}

// hookTimeout bounds the waits of the test hooks, so that a stuck store fails
// its test rather than hang the suite.
const hookTimeout = 20 * time.Second

// awaitStop waits for ch to close, at most hookTimeout, and panics (failing
// the test) when it does not.
func awaitStop(ch <-chan struct{}, what string) {
	select {
	case <-ch:
	case <-time.After(hookTimeout):
		panic(fmt.Sprintf("history: %s did not stop within %v", what, hookTimeout))
	}
}

// Crash stops s as a crash after its last confirmed append would: without
// the checkpoint of Close, leaving in the log whatever the bolt file does
// not have yet.
func (s *Bolt) Crash() {
	s.mu.Lock()
	s.closed, s.abandon = true, true
	s.mu.Unlock()
	s.signal()
	awaitStop(s.stopped, "the log writer")
	awaitStop(s.ckStopped, "the checkpointer")
	for _, seg := range s.segs {
		seg.f.Close()
	}
	s.db.Close()
}

// LogPaths returns the paths of the log's segments.
func (s *Bolt) LogPaths() []string {
	return []string{s.path + walSuffixes[0], s.path + walSuffixes[1]}
}

// FailSync makes the fsync of s's next log write fail with err. With lose,
// the write is lost too, as when the kernel drops the pages it could not
// flush: the log reads zeros where it went.
func (s *Bolt) FailSync(err error, lose bool) {
	var once atomic.Bool
	f := syncFunc(func(f *os.File, off int64, n int) error {
		if once.Swap(true) {
			return datasync(f)
		}
		if lose {
			if _, err := f.WriteAt(make([]byte, n), off); err != nil {
				return err
			}
		}
		return err
	})
	s.syncFault.Store(&f)
}
