package history

import (
	bolt "go.etcd.io/bbolt"

	"github.com/plazahq/plaza/pubsub"
)

// BulkAppend stores msgs, all of room, in one transaction that bypasses the
// committer, for building benchmark fixtures quickly.
func (s *Bolt) BulkAppend(room string, msgs []pubsub.Message) error {
	reqs := make([]boltAppend, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		reqs[i] = boltAppend{bucket: topicBucket(room, m.Topic), id: int64(m.ID), value: encodeRecord(m, "")}
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
