package history

import (
	"encoding/binary"
	"errors"
	"slices"

	"github.com/plazahq/plaza/pubsub"
)

// How a message is stored in a bolt topic bucket. The key is the id, 8 bytes
// big-endian, so that byte order is id order. The value is
//
//	timestamp   8 bytes big-endian, Unix nanoseconds (noTime for the zero time)
//	key         only for a message stored with an idempotency key: the two
//	            bytes keyMarker, then uvarint length, bytes
//	from        uvarint length, bytes
//	to          uvarint count, then per recipient uvarint length, bytes
//	metadata    uvarint count, then per entry (sorted by key) key and value,
//	            each a uvarint length and bytes
//	payload     the rest
//
// The timestamp comes first so that retention reads it without decoding the
// rest. A value is about 16 bytes longer than its payload, plus the key and
// 3 bytes when there is one.
//
// Layout version 1 had no key field. Its records read unchanged: keyMarker
// is an over-long uvarint zero, which no encoder writes, so no from field of
// theirs starts with it. A message without a key is still stored in exactly
// the version 1 form.

var errCorrupt = errors.New("history: corrupt record")

// keyMarker starts the key field of a record.
var keyMarker = [2]byte{0x80, 0x00}

func idKey(id int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(id))
}

func keyID(k []byte) int64 { return int64(binary.BigEndian.Uint64(k)) }

// encodeRecord returns the stored value of m, published with the
// idempotency key key (or none, when key is empty).
func encodeRecord(m *pubsub.Message, key string) []byte {
	n := 8 + binary.MaxVarintLen64*3 + len(m.From) + len(m.Payload)
	if key != "" {
		n += len(keyMarker) + binary.MaxVarintLen64 + len(key)
	}
	for _, to := range m.To {
		n += binary.MaxVarintLen64 + len(to)
	}
	for k, v := range m.Metadata {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(m.Timestamp)))
	if key != "" {
		b = append(b, keyMarker[:]...)
		b = appendString(b, key)
	}
	b = appendString(b, m.From)
	b = binary.AppendUvarint(b, uint64(len(m.To)))
	for _, to := range m.To {
		b = appendString(b, to)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Metadata)))
	if len(m.Metadata) > 0 {
		keys := make([]string, 0, len(m.Metadata))
		for k := range m.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = appendString(b, k)
			b = appendString(b, m.Metadata[k])
		}
	}
	return append(b, m.Payload...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// recordTS returns the timestamp of a stored value.
func recordTS(v []byte) int64 {
	if len(v) < 8 {
		return noTime
	}
	return int64(binary.BigEndian.Uint64(v))
}

// recordKey returns the idempotency key of a stored value, empty when it
// has none or the value is damaged, without decoding the rest.
func recordKey(v []byte) []byte {
	if len(v) < 8+len(keyMarker) || [2]byte(v[8:]) != keyMarker {
		return nil
	}
	k, _, _ := cutString(v[8+len(keyMarker):])
	return k
}

// recordView is a stored value split into its parts, without copying: it is
// valid only as long as the value is (in bolt, until its transaction ends).
type recordView struct {
	ts      int64
	key     []byte // empty when the message was stored without one
	from    []byte
	to      []byte // the recipients, still encoded
	nTo     int
	md      []byte // the metadata entries, still encoded
	nMD     int
	payload []byte
}

func parseRecord(v []byte) (recordView, error) {
	var r recordView
	if len(v) < 8 {
		return r, errCorrupt
	}
	r.ts = int64(binary.BigEndian.Uint64(v))
	p := v[8:]
	var ok bool
	if len(p) >= len(keyMarker) && [2]byte(p) == keyMarker {
		if r.key, p, ok = cutString(p[len(keyMarker):]); !ok {
			return r, errCorrupt
		}
	}
	if r.from, p, ok = cutString(p); !ok {
		return r, errCorrupt
	}
	if r.nTo, r.to, p, ok = cutStrings(p, 1); !ok {
		return r, errCorrupt
	}
	if r.nMD, r.md, p, ok = cutStrings(p, 2); !ok {
		return r, errCorrupt
	}
	r.payload = p
	return r, nil
}

// cutString splits a length-prefixed string off the front of p.
func cutString(p []byte) (s, rest []byte, ok bool) {
	n, w := binary.Uvarint(p)
	if w <= 0 || n > uint64(len(p)-w) {
		return nil, nil, false
	}
	p = p[w:]
	return p[:n], p[n:], true
}

// cutStrings splits a count and count*per length-prefixed strings off the
// front of p; strs holds the strings, still encoded.
func cutStrings(p []byte, per int) (count int, strs, rest []byte, ok bool) {
	n, w := binary.Uvarint(p)
	if w <= 0 || n > uint64(len(p)) {
		return 0, nil, nil, false
	}
	p = p[w:]
	rest = p
	for range int(n) * per {
		if _, rest, ok = cutString(rest); !ok {
			return 0, nil, nil, false
		}
	}
	return int(n), p[:len(p)-len(rest)], rest, true
}

// visible reports whether q may see the record: the same test as
// pubsub.Message.VisibleTo plus the From filter.
func (r *recordView) visible(q *Query) bool {
	if len(q.From) > 0 && !slices.Contains(q.From, string(r.from)) {
		return false
	}
	if r.nTo == 0 || string(r.from) == q.Viewer {
		return true
	}
	for p := r.to; len(p) > 0; {
		var to []byte
		to, p, _ = cutString(p)
		if string(to) == q.Viewer {
			return true
		}
	}
	return false
}

// message decodes the record into a Message. It copies everything except
// the payload, which the caller copies into memory of its own.
func (r *recordView) message(id int64, topic string) pubsub.Message {
	m := pubsub.Message{
		ID:        pubsub.ID(id),
		Topic:     topic,
		From:      string(r.from),
		Timestamp: fromUnixNano(r.ts),
		Persisted: true,
	}
	if r.nTo > 0 {
		m.To = make([]string, 0, r.nTo)
		for p := r.to; len(p) > 0; {
			var to []byte
			to, p, _ = cutString(p)
			m.To = append(m.To, string(to))
		}
	}
	if r.nMD > 0 {
		m.Metadata = make(map[string]string, r.nMD)
		for p := r.md; len(p) > 0; {
			var k, v []byte
			k, p, _ = cutString(p)
			v, p, _ = cutString(p)
			m.Metadata[string(k)] = string(v)
		}
	}
	return m
}
