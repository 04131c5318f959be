package redis

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/plazahq/plaza/pubsub"
)

// A message is stored in Redis, and published on its channel, as a record:
// a short header that the Lua scripts read at fixed offsets, then
// length-prefixed fields, then the payload, so that a script filters a
// message by sender, recipients and age without touching its payload, and
// the payload is kept as the hub received it.
//
//	offset 0     format, 'm'
//	offset 1     flags, '0' + (1 if persisted)
//	offset 2-21  timestamp: Unix nanoseconds + 2⁶³, 20 decimal digits
//	             (zero for the zero time), so that comparing two as strings
//	             compares the times
//	then         from, key           each as <decimal length>:<bytes>
//	             <n>: then n recipients, each <length>:<bytes>
//	             <n>: then n metadata pairs (sorted by name), <length>:<bytes> each
//	rest         the payload
//
// The id and the topic are not in the record: the id is the record's name
// in its topic's hash and sorted set (idWidth decimal digits, so that
// comparing names as strings compares ids), the topic is the key's. The
// channel carries an id and a record back to back.
//
// Decoding is strict (no leading zeros, no trailing bytes in the header, no
// length past the end), so that every record has one encoding.

const (
	recFormat = 'm'
	// headerLen is the length of the fixed part of a record.
	headerLen = 22
	// idWidth is the width of an id written as a sorted-set member.
	idWidth = 20
)

// errRecord is the error of a record that does not decode.
func errRecord(format string, args ...any) *pubsub.Error {
	return pubsub.Errorf(pubsub.CodeInternal, "redis: bad record: "+format, args...)
}

// tsKey writes t as the 20 digits of a record's timestamp.
func tsKey(t time.Time) string {
	if t.IsZero() {
		return "00000000000000000000"
	}
	return fmt.Sprintf("%020d", uint64(t.UnixNano())^(1<<63))
}

// appendTSKey appends tsKey(t) to b.
func appendTSKey(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "00000000000000000000"...)
	}
	return appendPadded(b, uint64(t.UnixNano())^(1<<63), 20)
}

// appendPadded appends v in decimal, zero-padded to width digits.
func appendPadded(b []byte, v uint64, width int) []byte {
	var d [20]byte
	s := strconv.AppendUint(d[:0], v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// idKey writes id as a sorted-set member: idWidth digits.
func idKey(id pubsub.ID) string {
	return string(appendPadded(make([]byte, 0, idWidth), uint64(id), idWidth))
}

// parseIDKey reads a sorted-set member.
func parseIDKey(s string) (pubsub.ID, error) {
	if len(s) != idWidth {
		return 0, errRecord("id %q is not %d digits", s, idWidth)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 || v > math.MaxInt64 {
		return 0, errRecord("id %q", s)
	}
	return pubsub.ID(v), nil
}

// encodeRecord returns the record of m, stored with the idempotency key
// key (empty for none).
func encodeRecord(m *pubsub.Message, key string) []byte {
	n := headerLen + 16 + len(m.From) + len(key) + len(m.Payload)
	for _, r := range m.To {
		n += len(r) + 4
	}
	for k, v := range m.Metadata {
		n += len(k) + len(v) + 8
	}
	b := make([]byte, 0, n)
	b = append(b, recFormat, '0')
	if m.Persisted {
		b[1] = '1'
	}
	b = appendTSKey(b, m.Timestamp)
	b = appendField(b, m.From)
	b = appendField(b, key)
	b = strconv.AppendInt(b, int64(len(m.To)), 10)
	b = append(b, ':')
	for _, r := range m.To {
		b = appendField(b, r)
	}
	b = strconv.AppendInt(b, int64(len(m.Metadata)), 10)
	b = append(b, ':')
	for _, k := range sortedKeys(m.Metadata) {
		b = appendField(b, k)
		b = appendField(b, m.Metadata[k])
	}
	return append(b, m.Payload...)
}

func appendField(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// decodeRecord decodes a record into the message with id and topic, and
// returns the key it was stored with.
func decodeRecord(id pubsub.ID, topic string, rec []byte) (pubsub.Message, string, error) {
	if len(rec) < headerLen || rec[0] != recFormat || (rec[1] != '0' && rec[1] != '1') {
		return pubsub.Message{}, "", errRecord("header %q", clip(rec, headerLen))
	}
	m := pubsub.Message{ID: id, Topic: topic, Persisted: rec[1] == '1'}
	ts, err := parseTSKey(rec[2:headerLen])
	if err != nil {
		return pubsub.Message{}, "", err
	}
	m.Timestamp = ts
	d := decoder{b: rec[headerLen:]}
	m.From = d.field()
	key := d.field()
	if n := d.count(); n > 0 {
		m.To = make([]string, n)
		for i := range m.To {
			m.To[i] = d.field()
		}
	}
	if n := d.count(); n > 0 {
		m.Metadata = make(map[string]string, n)
		prev := ""
		for i := range n {
			k := d.field()
			v := d.field()
			if d.err == nil && i > 0 && k <= prev {
				d.err = errRecord("metadata names out of order")
			}
			m.Metadata[k], prev = v, k
		}
	}
	if d.err != nil {
		return pubsub.Message{}, "", d.err
	}
	m.Payload = json.RawMessage(d.b)
	return m, key, nil
}

// parseTSKey reads the 20 digits of a record's timestamp.
func parseTSKey(b []byte) (time.Time, error) {
	v, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil || len(b) != 20 {
		return time.Time{}, errRecord("timestamp %q", b)
	}
	if v == 0 {
		return time.Time{}, nil
	}
	t := time.Unix(0, int64(v^(1<<63)))
	if t.IsZero() { // only the zero time's own encoding may decode to it
		return time.Time{}, errRecord("timestamp %q", b)
	}
	return t, nil
}

// decoder reads length-prefixed fields; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

// count reads "<n>:" with n a canonical decimal.
func (d *decoder) count() int {
	if d.err != nil {
		return 0
	}
	i := 0
	for i < len(d.b) && i <= 6 && d.b[i] >= '0' && d.b[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(d.b) || d.b[i] != ':' || (i > 1 && d.b[0] == '0') {
		d.err = errRecord("length at %q", clip(d.b, 8))
		return 0
	}
	n, _ := strconv.Atoi(string(d.b[:i]))
	d.b = d.b[i+1:]
	if n > len(d.b) { // every item takes at least a byte
		d.err = errRecord("length %d past the end", n)
		return 0
	}
	return n
}

// field reads "<n>:" and n bytes.
func (d *decoder) field() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// sortedKeys returns the names of md in order.
func sortedKeys(md map[string]string) []string {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
