package history

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/plazahq/plaza/pubsub"
)

// writeVersion1 writes a file as layout version 1 left it: msgs in room,
// stored without keys.
func writeVersion1(t *testing.T, path, room string, msgs []pubsub.Message) {
	t.Helper()
	writeVersion(t, path, 1, room, msgs, nil)
}

// writeVersion writes a file as layout version 1 or 2 left it, with no
// log beside it: msgs in room, each with its key in keys (version 2 only).
func writeVersion(t *testing.T, path string, version uint64, room string, msgs []pubsub.Message, keys []string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		topics, _ := tx.CreateBucket(bucketTopics)
		counts, _ := tx.CreateBucket(bucketCounts)
		meta, _ := tx.CreateBucket(bucketMeta)
		if err := meta.Put(keyVersion, binary.BigEndian.AppendUint64(nil, version)); err != nil {
			return err
		}
		var maxID int64
		for i, m := range msgs {
			key := ""
			if i < len(keys) {
				key = keys[i]
			}
			name := topicBucket(room, m.Topic)
			bk, err := topics.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			if err := bk.Put(idKey(int64(m.ID)), encodeRecord(&m, key)); err != nil {
				return err
			}
			if err := counts.Put(name, binary.BigEndian.AppendUint64(nil, uint64(getCount(counts, name)+1))); err != nil {
				return err
			}
			maxID = max(maxID, int64(m.ID))
		}
		return meta.Put(keyMaxID, idKey(maxID))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fileVersion reads the layout version of the closed file at path.
func fileVersion(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint64
	db.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyVersion))
		return nil
	})
	return v
}

// TestBoltOpensVersion1 opens a file of layout version 1, which had no
// idempotency keys: its messages read as they were, new messages keep
// their keys beside them, and the file is marked version 3.
func TestBoltOpensVersion1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "history.db")
	at := time.Now().UTC().Truncate(time.Millisecond)
	old := []pubsub.Message{
		{ID: 1000, Topic: "chat", From: "alice", Payload: json.RawMessage(`{"n":1}`), Timestamp: at},
		{ID: 1010, Topic: "chat", From: "bob", To: []string{"alice"}, Metadata: map[string]string{"k": "v"}, Payload: json.RawMessage(`{"n":2}`), Timestamp: at.Add(time.Millisecond)},
	}
	writeVersion1(t, path, "room", old)

	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt(version 1 file) = %v", err)
	}
	fresh := pubsub.Message{ID: 1020, Topic: "chat", From: "alice", Payload: json.RawMessage(`{"n":3}`), Timestamp: at.Add(2 * time.Millisecond)}
	if err := s.AppendKey(ctx, "room", fresh, "k3"); err != nil {
		t.Fatalf("AppendKey = %v", err)
	}
	checkUpgraded(t, s, Query{Topic: "chat", Limit: 10, Viewer: "alice"}, old, fresh, "history of an upgraded file")
	keys, err := s.Keys(ctx, "room", KeyQuery{Topic: "chat"})
	if err != nil || len(keys) != 1 || keys[0].Key != "k3" || keys[0].Message.ID != fresh.ID {
		t.Errorf("Keys = %+v, %v; want only k3 on %v", keys, err, fresh.ID)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := fileVersion(t, path); v != boltVersion {
		t.Errorf("layout version after opening = %d, want %d", v, boltVersion)
	}
}

// TestBoltOpensVersion2 opens a file of layout version 2, which had keys
// but no log: its messages and keys read as they were, new messages go
// through the log and survive a crash, the file is marked version 3, and a
// reader of version 2 would refuse it.
func TestBoltOpensVersion2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "history.db")
	at := time.Now().UTC().Truncate(time.Millisecond)
	old := []pubsub.Message{
		{ID: 1000, Topic: "chat", From: "alice", Payload: json.RawMessage(`{"n":1}`), Timestamp: at},
		{ID: 1010, Topic: "chat", From: "bob", Metadata: map[string]string{"k": "v"}, Payload: json.RawMessage(`{"n":2}`), Timestamp: at.Add(time.Millisecond)},
	}
	writeVersion(t, path, 2, "room", old, []string{"k1", ""})

	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt(version 2 file) = %v", err)
	}
	if v := s.fileVersionOpen(t); v != boltVersion {
		t.Errorf("layout version once opened = %d, want %d", v, boltVersion)
	}
	fresh := pubsub.Message{ID: 1020, Topic: "chat", From: "alice", Payload: json.RawMessage(`{"n":3}`), Timestamp: at.Add(2 * time.Millisecond)}
	if err := s.AppendKey(ctx, "room", fresh, "k3"); err != nil {
		t.Fatalf("AppendKey = %v", err)
	}
	s.Crash()

	s, err = OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt after a crash = %v", err)
	}
	defer s.Close()
	checkUpgraded(t, s, Query{Topic: "chat", Limit: 10}, old, fresh, "history of an upgraded file after a crash")
	keys, err := s.Keys(ctx, "room", KeyQuery{Topic: "chat"})
	if err != nil || len(keys) != 2 || keys[0].Key != "k3" || keys[1].Key != "k1" {
		t.Errorf("Keys = %+v, %v; want k3 then k1", keys, err)
	}
}

// checkUpgraded checks that q on room of s pages old and then fresh, all
// persisted; what names the history in the failure.
func checkUpgraded(t *testing.T, s *Bolt, q Query, old []pubsub.Message, fresh pubsub.Message, what string) {
	t.Helper()
	page, err := s.Query(context.Background(), "room", q)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]pubsub.Message(nil), old...), fresh)
	for i := range want {
		want[i].Persisted = true
	}
	if diff := cmp.Diff(want, page.Messages); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

// fileVersionOpen reads the layout version of s's file while it is open.
func (s *Bolt) fileVersionOpen(t *testing.T) uint64 {
	t.Helper()
	var v uint64
	s.db.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyVersion))
		return nil
	})
	return v
}

// TestBoltUnknownVersion refuses a file from a later layout version.
func TestBoltUnknownVersion(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "history.db")
	writeVersion1(t, path, "room", nil)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyVersion, binary.BigEndian.AppendUint64(nil, boltVersion+1))
	})
	db.Close()
	s, err := OpenBolt(path, BoltOptions{})
	if err == nil {
		s.Close()
		t.Fatal("OpenBolt(file of a later version) = nil error")
	}
	if !strings.Contains(err.Error(), "version") {
		t.Errorf("OpenBolt(file of a later version) = %v, want an error that names the version", err)
	}
}

// TestBoltKeysSurviveReopen closes a store and opens the file again: the
// keys are where the messages are.
func TestBoltKeysSurviveReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "history.db")
	at := time.Now().UTC()
	m := pubsub.Message{ID: 5000, Topic: "chat", From: "alice", Payload: json.RawMessage(`{}`), Timestamp: at}
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue("room", m, "k-1")(ctx); err != nil {
		t.Fatalf("Enqueue(key k-1) = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Keys(ctx, "room", KeyQuery{Topic: "chat", Since: at.Add(-time.Minute)})
	m.Persisted = true
	if want := []KeyedMessage{{Key: "k-1", Message: m}}; err != nil || !cmp.Equal(want, got) {
		t.Errorf("Keys after reopening = %+v, %v; want %+v", got, err, want)
	}
}
