package history

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func walRecords(n int) []boltAppend {
	recs := make([]boltAppend, n)
	for i := range recs {
		value := binary.BigEndian.AppendUint64(nil, uint64(1000+i))
		value = append(value, []byte(`{"n":`+string(rune('0'+i%10))+`}`)...)
		recs[i] = newAppend([]byte("\x04roomchat"+string(rune('a'+i%3))), int64(100+i), value)
	}
	return recs
}

func walSegmentBytes(epoch uint64, recs []boltAppend) []byte {
	var b []byte
	for i := range recs {
		b = appendWALRecord(b, epoch, &recs[i])
	}
	return b
}

// A segment ends at its first record that is not a whole, intact record of
// the segment's epoch: what a crash in the middle of a write, or the
// records of an earlier use of the segment, leave behind.
func TestReadWALEnds(t *testing.T) {
	recs := walRecords(5)
	good := walSegmentBytes(7, recs)
	last := len(walSegmentBytes(7, recs[:4]))
	stale := walSegmentBytes(6, walRecords(3))
	flip := bytes.Clone(good)
	flip[last+20] ^= 1
	tests := []struct {
		name string
		seg  []byte
		want []boltAppend
	}{
		{"whole", good, recs},
		{"preallocated zeros after", append(bytes.Clone(good), make([]byte, 4096)...), recs},
		{"last record cut short", good[:len(good)-1], recs[:4]},
		{"last record's header cut short", good[:last+5], recs[:4]},
		{"last record damaged", flip, recs[:4]},
		{"an earlier epoch's records after", append(bytes.Clone(good), stale...), recs},
		{"a later epoch's records after", append(bytes.Clone(good), walSegmentBytes(8, recs[:1])...), recs},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			epoch, got, err := readWAL(bytes.NewReader(tt.seg))
			if err != nil {
				t.Fatalf("readWAL = %v", err)
			}
			wantEpoch := uint64(7)
			if tt.want == nil {
				wantEpoch = 0
			}
			if epoch != wantEpoch {
				t.Errorf("readWAL epoch = %d, want %d", epoch, wantEpoch)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(boltAppend{})); diff != "" {
				t.Errorf("readWAL records (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzReadWAL reads arbitrary bytes as a segment: it never panics, and what
// it returns is exactly a prefix of the input, written again.
func FuzzReadWAL(f *testing.F) {
	f.Add(walSegmentBytes(1, walRecords(3)))
	f.Add(append(walSegmentBytes(2, walRecords(2)), walSegmentBytes(1, walRecords(2))...))
	f.Add(walSegmentBytes(3, walRecords(1))[:20])
	f.Add([]byte{0, 0, 0, 12, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, seg []byte) {
		epoch, recs, err := readWAL(bytes.NewReader(seg))
		if err != nil {
			t.Fatalf("readWAL = %v", err)
		}
		if len(recs) == 0 {
			if epoch != 0 {
				t.Fatalf("readWAL found no record but epoch %d", epoch)
			}
			return
		}
		again := walSegmentBytes(epoch, recs)
		if !bytes.HasPrefix(seg, again) {
			t.Fatalf("the %d records readWAL returned, written again, are not a prefix of the segment", len(recs))
		}
		for _, r := range recs {
			if r.id <= 0 || keyID(r.key[:]) != r.id || len(r.bucket) == 0 || len(r.value) < 8 {
				t.Fatalf("readWAL returned an invalid record %+v", r)
			}
		}
	})
}

// What Enqueue takes, a reader reads back: a record of walMaxRecord bytes
// and the records after it. The next larger one, which a reader would take
// for the segment's end, Enqueue refuses (TestBoltOversizedRecord).
func TestReadWALLargestRecord(t *testing.T) {
	recs := walRecords(2)
	big := newAppend(recs[0].bucket, recs[0].id, nil)
	big.value = make([]byte, walMaxRecord-walBodyLen(&big))
	recs[0] = big
	if n := walBodyLen(&recs[0]); n != walMaxRecord {
		t.Fatalf("walBodyLen = %d, want %d", n, walMaxRecord)
	}
	epoch, got, err := readWAL(bytes.NewReader(walSegmentBytes(3, recs)))
	if err != nil || epoch != 3 || len(got) != 2 {
		t.Errorf("readWAL of a %d-byte record and a small one = epoch %d, %d records, %v; want epoch 3, 2 records", walMaxRecord, epoch, len(got), err)
	}
}
