package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/collections"
)

// Record is one record: the client's fields plus id, created_at and
// updated_at, which only the server sets.
type Record map[string]any

// The fields the server owns.
const (
	fieldID        = "id"
	fieldCreatedAt = "created_at"
	fieldUpdatedAt = "updated_at"
)

// errNotFound is the error of a record or collection that does not exist.
var errNotFound = pubsub.Errorf("NOT_FOUND", "no such record")

// Store keeps records in bbolt, one bucket per collection keyed by id, and
// publishes the event of every committed change. Writes are serialized by
// one lock held across the commit and the publish, so the events leave in
// commit order; a write that fails publishes nothing.
//
// A Store is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	room *pubsub.Room
	now  func() time.Time
	log  *slog.Logger

	mu sync.Mutex // orders commit + publish
	// committed, when set, is called under mu after each commit, before
	// its publish; tests record the commit order with it.
	committed func(op string, rec Record)
}

// OpenStore opens (or creates) the bbolt file at path. It fails at once
// if another process holds the file. Without sync, commits are not
// flushed to disk (tests only).
func OpenStore(path string, sync bool, room *pubsub.Room, log *slog.Logger) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: !sync})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{db: db, room: room, now: time.Now, log: log}, nil
}

// Close closes the bbolt file.
func (s *Store) Close() error { return s.db.Close() }

// newID returns a random, time-ordered UUID (version 7), so that a bucket
// lists its records in creation order.
func newID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// Create stores fields as a new record of collection and returns it.
func (s *Store) Create(ctx context.Context, collection string, fields Record) (Record, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	return s.write(ctx, collection, collections.Create, func(b *bolt.Bucket) (Record, error) {
		rec := make(Record, len(fields)+3)
		for k, v := range fields {
			rec[k] = v
		}
		now := stamp(s.now())
		rec[fieldID], rec[fieldCreatedAt], rec[fieldUpdatedAt] = id, now, now
		return rec, put(b, rec)
	})
}

// Update merges fields into the record (a null field removes it) and
// returns the result.
func (s *Store) Update(ctx context.Context, collection, id string, fields Record) (Record, error) {
	return s.write(ctx, collection, collections.Update, func(b *bolt.Bucket) (Record, error) {
		rec, err := get(b, id)
		if err != nil {
			return nil, err
		}
		for k, v := range fields {
			switch k {
			case fieldID, fieldCreatedAt, fieldUpdatedAt:
				continue
			}
			if v == nil {
				delete(rec, k)
			} else {
				rec[k] = v
			}
		}
		rec[fieldUpdatedAt] = stamp(s.now())
		return rec, put(b, rec)
	})
}

// Delete removes the record and returns its last state.
func (s *Store) Delete(ctx context.Context, collection, id string) (Record, error) {
	return s.write(ctx, collection, collections.Delete, func(b *bolt.Bucket) (Record, error) {
		rec, err := get(b, id)
		if err != nil {
			return nil, err
		}
		return rec, b.Delete([]byte(id))
	})
}

// write runs change in a read-write transaction on collection's bucket
// and, once it committed, publishes its event.
func (s *Store) write(ctx context.Context, collection string, op collections.Operation, change func(*bolt.Bucket) (Record, error)) (Record, error) {
	if err := collections.CheckCollection(collection); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var rec Record
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(collection))
		if b == nil {
			if op != collections.Create {
				return errNotFound
			}
			var err error
			if b, err = tx.CreateBucket([]byte(collection)); err != nil {
				return err
			}
		}
		var err error
		rec, err = change(b)
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.committed != nil {
		s.committed(string(op), rec)
	}
	// The change is committed: its event must go out, once. The Room
	// retries a publish that a lost connection interrupted with the same
	// idempotency key; an error here means the hub refused it.
	// The request may be gone by now; the event is not.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := collections.Publish(pctx, s.room, collection, op, rec); err != nil {
		s.log.Error("collections: event of a committed change not published", "collection", collection, "op", op, "id", rec[fieldID], "err", err)
	}
	return rec, nil
}

// Get returns one record.
func (s *Store) Get(collection, id string) (Record, error) {
	if err := collections.CheckCollection(collection); err != nil {
		return nil, err
	}
	var rec Record
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(collection))
		if b == nil {
			return errNotFound
		}
		var err error
		rec, err = get(b, id)
		return err
	})
	return rec, err
}

// List returns the records of collection, oldest first, at most limit.
func (s *Store) List(collection string, limit int) ([]Record, error) {
	if err := collections.CheckCollection(collection); err != nil {
		return nil, err
	}
	recs := []Record{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(collection))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(recs) < limit; k, v = c.Next() {
			var rec Record
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			recs = append(recs, rec)
		}
		return nil
	})
	return recs, err
}

func get(b *bolt.Bucket, id string) (Record, error) {
	v := b.Get([]byte(id))
	if v == nil {
		return nil, errNotFound
	}
	var rec Record
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, err
	}
	return rec, nil
}

func put(b *bolt.Bucket, rec Record) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	// A record the hub would refuse as an event is refused before it
	// commits.
	if err := pubsub.CheckPayload(v); err != nil {
		return err
	}
	id, _ := rec[fieldID].(string)
	if id == "" {
		return errors.New("record without id")
	}
	return b.Put([]byte(id), v)
}
