package history

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// The write-ahead log of a Bolt store: two segment files beside the bolt
// file, path+"-wal0" and path+"-wal1". One takes new appends while the other
// holds appends that a checkpoint is writing into the bolt file, or nothing
// that is still needed.
//
// A segment is a run of records from offset 0:
//
//	length   4 bytes big-endian: the bytes after the checksum (12 or more)
//	crc      4 bytes big-endian: CRC-32C of those bytes
//	epoch    8 bytes big-endian: the segment's epoch
//	bucket   uvarint length, bytes: the topic bucket's name
//	id       8 bytes big-endian
//	value    the rest: the record as the bolt file stores it
//
// A segment is reused by writing it again from offset 0 under a higher
// epoch, so a segment ends at the first record that is damaged, cut short,
// of another epoch than the first one, or of length zero (a segment is
// preallocated with zeros). The bolt file's meta bucket holds the highest
// epoch whose records are all in the bolt file ("walepoch"): opening the
// store replays the records of higher epochs, oldest epoch first.

// walSuffixes name the two segments after the bolt file's path.
var walSuffixes = [2]string{"-wal0", "-wal1"}

// walPrealloc is how much of a segment is allocated on the disk before it is
// written, so that appending to it does not make every fsync also commit a
// new extent to the file system's journal.
const walPrealloc = 16 << 20

// walMaxRecord bounds the length field a reader believes: far more than a
// message a hub publishes can take (32 KiB payload, 4 KiB metadata, 256
// recipients). Enqueue refuses a larger record, which a reader would take
// for the end of the segment.
const walMaxRecord = 1 << 22

// walBodyLen returns the length field of r's record: the bytes after the
// checksum. A record whose length is over walMaxRecord cannot be logged.
func walBodyLen(r *boltAppend) int {
	var v [binary.MaxVarintLen64]byte
	return 8 + binary.PutUvarint(v[:], uint64(len(r.bucket))) + len(r.bucket) + 8 + len(r.value)
}

// walHeader is the length, checksum and epoch of a record.
const walHeader = 16

var crc32c = crc32.MakeTable(crc32.Castagnoli)

var errWALRecord = errors.New("history: damaged log record")

// appendWALRecord appends the record of r, in epoch, to b.
func appendWALRecord(b []byte, epoch uint64, r *boltAppend) []byte {
	start := len(b)
	b = append(b, make([]byte, 8)...) // length and crc, set below
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = binary.AppendUvarint(b, uint64(len(r.bucket)))
	b = append(b, r.bucket...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.id))
	b = append(b, r.value...)
	body := b[start+8:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(body, crc32c))
	return b
}

// parseWALBody decodes the bytes after a record's checksum. The bucket and
// value alias body.
func parseWALBody(body []byte) (epoch uint64, r boltAppend, err error) {
	if len(body) < 8 {
		return 0, r, errWALRecord
	}
	epoch = binary.BigEndian.Uint64(body)
	name, rest, ok := cutString(body[8:])
	if !ok || len(name) == 0 || len(rest) < 8 {
		return 0, r, errWALRecord
	}
	id := int64(binary.BigEndian.Uint64(rest))
	if id <= 0 || len(rest[8:]) < 8 {
		return 0, r, errWALRecord
	}
	return epoch, newAppend(name, id, rest[8:]), nil
}

// readWAL reads a segment's records, in the order they were written, up to
// its end (see above). It returns the segment's epoch, zero for a segment
// with no record. Only a failing read is an error: damage ends a segment.
func readWAL(rd io.Reader) (epoch uint64, recs []boltAppend, err error) {
	br := bufio.NewReaderSize(rd, 1<<16)
	var head [8]byte
	for {
		if _, err := io.ReadFull(br, head[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return epoch, recs, nil
			}
			return 0, nil, err
		}
		n := binary.BigEndian.Uint32(head[:4])
		if n < walHeader-8 || n > walMaxRecord {
			return epoch, recs, nil
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return epoch, recs, nil
			}
			return 0, nil, err
		}
		if crc32.Checksum(body, crc32c) != binary.BigEndian.Uint32(head[4:]) {
			return epoch, recs, nil
		}
		e, r, err := parseWALBody(body)
		if err != nil || e == 0 || epoch != 0 && e != epoch {
			return epoch, recs, nil
		}
		epoch = e
		recs = append(recs, r)
	}
}

// walSegment is one open segment file.
type walSegment struct {
	f     *os.File
	epoch uint64 // of the records being written; zero before the first
	off   int64  // where the next record goes
}

// openWAL opens (creating them if need be) the two segments of the bolt file
// at path and reads them.
func openWAL(path string) (segs [2]*walSegment, epochs [2]uint64, recs [2][]boltAppend, err error) {
	for i, suffix := range walSuffixes {
		f, err := os.OpenFile(path+suffix, os.O_RDWR|os.O_CREATE, 0o600)
		if err == nil {
			epochs[i], recs[i], err = readWAL(f)
		}
		if err != nil {
			if f != nil {
				f.Close()
			}
			for _, s := range segs[:i] {
				s.f.Close()
			}
			return segs, epochs, recs, fmt.Errorf("log %s: %w", path+suffix, err)
		}
		segs[i] = &walSegment{f: f}
	}
	return segs, epochs, recs, nil
}

// reset makes s empty under epoch: the next record is written at offset 0.
// Records of older epochs stay behind it until overwritten, and end the
// segment for a reader.
func (s *walSegment) reset(epoch uint64) error {
	s.epoch, s.off = epoch, 0
	return preallocate(s.f, walPrealloc)
}

// write appends b, records of s.epoch, and waits until they are on stable
// storage. sync replaces the fsync when it is not nil (tests). After an
// error the segment may hold any part of b, or lose what it held from
// s.off on: the caller must not write to it again (see Bolt.damaged).
func (s *walSegment) write(b []byte, sync syncFunc) error {
	if _, err := s.f.WriteAt(b, s.off); err != nil {
		return err
	}
	off := s.off
	s.off += int64(len(b))
	if sync != nil {
		return sync(s.f, off, len(b))
	}
	return datasync(s.f)
}

// syncFunc flushes the n bytes written at off in f to stable storage.
type syncFunc func(f *os.File, off int64, n int) error
