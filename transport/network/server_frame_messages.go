package network

import (
	"math"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/plazahq/plaza/internal/jsonvalid"
	"github.com/plazahq/plaza/pubsub"
)

// messagesDecoder decodes messages frames, the frames a busy client receives
// most, without reflection: it reads the frame in one pass, takes topics and
// sender ids from a small table instead of allocating them per message, and
// copies every payload of a frame into one allocation.
//
// It takes only the frames it can decode exactly as encoding/json decodes
// them into a serverFrame: the members the Server writes, each once, with
// plain values (strings without escapes, ids as decimal strings, timestamps
// in the Server's RFC 3339 form). For anything else decode reports false and
// the caller decodes the frame with decodeServerFrame, which knows every
// rule and every failure; so the fast path changes no result, only the cost
// (FuzzMessagesDecoder holds it to that).
//
// The zero value is ready to use. A messagesDecoder is not safe for
// concurrent use: each Conn's reader has its own.
type messagesDecoder struct {
	names map[string]string // interned topics and client ids
}

// decodeScratch is where a frame's messages are gathered before they are
// copied out at their final size; pooled, so that an idle Conn holds none.
type decodeScratch struct {
	msgs     []pubsub.Message
	payloads []span
}

var scratchPool = sync.Pool{New: func() any { return new(decodeScratch) }}

// frame holds the messages of one messages frame. A Conn's Room takes
// pointers into msgs and is done with them by its next Take, when the Conn
// recycles the frame; so a busy Conn allocates no Message structs, and an
// idle one holds none.
type frame struct {
	msgs []pubsub.Message
}

var framePool = sync.Pool{New: func() any { return new(frame) }}

// maxPooledFrame is the most messages a recycled frame keeps room for.
const maxPooledFrame = 1024

// newFrame returns a frame of n zero messages.
func newFrame(n int) *frame {
	fr := framePool.Get().(*frame)
	if fr.msgs == nil || cap(fr.msgs) < n { // never nil: encoding/json's [] is an empty slice
		fr.msgs = make([]pubsub.Message, n)
	} else {
		fr.msgs = fr.msgs[:n]
	}
	return fr
}

// recycle returns fr to the pool; nothing may use its messages any more.
func (fr *frame) recycle() {
	clear(fr.msgs) // no payloads, strings or maps kept alive by the pool
	if cap(fr.msgs) > maxPooledFrame {
		return
	}
	fr.msgs = fr.msgs[:0]
	framePool.Put(fr)
}

// span is where a payload lies in the frame.
type span struct{ start, end int }

// Limits of the decoder's name table: names longer than maxInterned are
// allocated per message, and the table starts over when it holds
// maxNames, so a server cannot make it grow without bound.
const (
	maxInterned = 128
	maxNames    = 256
)

// frameDepth is how deeply a messages frame nests a payload: the frame, its
// messages array, the message.
const frameDepth = 3

// decode decodes data if it is a messages frame the fast path takes, and
// reports whether it was. The messages' payloads are copied out of data, so
// data may be reused once decode returns; they share one backing array
// (each payload's capacity ends where it does, so appending to one never
// overwrites another).
func (d *messagesDecoder) decode(data []byte) (*frame, bool) {
	sc := scratchPool.Get().(*decodeScratch)
	defer func() {
		clear(sc.msgs) // no strings or maps kept alive by the pool
		sc.msgs, sc.payloads = sc.msgs[:0], sc.payloads[:0]
		scratchPool.Put(sc)
	}()
	p := cursor{b: data}
	p.ws()
	if !p.consume('{') {
		return nil, false
	}
	var seen [3]bool // v, type, messages
	isMessages := false
	for first := true; ; first = false {
		p.ws()
		if p.consume('}') {
			if first {
				return nil, false
			}
			break
		}
		if !first && (!p.consume(',') || !p.wsThen()) {
			return nil, false
		}
		name, ok := p.name()
		if !ok {
			return nil, false
		}
		var k int
		switch string(name) {
		case "v":
			k = 0
			if !p.number() {
				return nil, false
			}
		case "type":
			k = 1
			typ, ok := p.plainString()
			if !ok {
				return nil, false
			}
			isMessages = string(typ) == typeMessages
		case "messages":
			k = 2
			if !d.messages(&p, sc) {
				return nil, false
			}
		default:
			return nil, false
		}
		if seen[k] {
			return nil, false // a repeated member: encoding/json keeps the last
		}
		seen[k] = true
	}
	p.ws()
	if p.i != len(data) || !isMessages || !seen[0] || !seen[2] {
		return nil, false
	}

	size := 0
	for _, s := range sc.payloads {
		size += s.end - s.start
	}
	arena := make([]byte, 0, size)
	fr := newFrame(len(sc.msgs))
	out := fr.msgs
	for i := range sc.msgs {
		out[i] = sc.msgs[i]
		s := sc.payloads[i]
		start := len(arena)
		arena = append(arena, data[s.start:s.end]...)
		out[i].Payload = arena[start:len(arena):len(arena)]
	}
	return fr, true
}

// messages reads the messages array of a frame into sc.
func (d *messagesDecoder) messages(p *cursor, sc *decodeScratch) bool {
	if !p.consume('[') {
		return false
	}
	p.ws()
	if p.consume(']') {
		return true
	}
	for {
		if !d.message(p, sc) {
			return false
		}
		p.ws()
		if p.consume(']') {
			return true
		}
		if !p.consume(',') || !p.wsThen() {
			return false
		}
	}
}

// message reads one message object.
func (d *messagesDecoder) message(p *cursor, sc *decodeScratch) bool {
	if !p.consume('{') {
		return false
	}
	var m pubsub.Message
	payload := span{-1, -1}
	var seen [8]bool
	for first := true; ; first = false {
		p.ws()
		if p.consume('}') {
			break
		}
		if !first && (!p.consume(',') || !p.wsThen()) {
			return false
		}
		name, ok := p.name()
		if !ok {
			return false
		}
		var k int
		switch string(name) {
		case "id":
			k = 0
			s, ok := p.plainString()
			if !ok {
				return false
			}
			if m.ID, ok = parseID(s); !ok {
				return false
			}
		case "topic":
			k = 1
			if m.Topic, ok = d.name(p); !ok {
				return false
			}
		case "from":
			k = 2
			if m.From, ok = d.name(p); !ok {
				return false
			}
		case "to":
			k = 3
			if m.To, ok = d.strings(p); !ok {
				return false
			}
		case "payload":
			k = 4
			if p.i < len(p.b) && p.b[p.i] == 'n' {
				return false // null: encoding/json's rules for it are its own
			}
			n, err := jsonvalid.Value(p.b[p.i:], jsonvalid.StdDepth-frameDepth)
			if err != nil {
				return false
			}
			payload = span{p.i, p.i + n}
			p.i += n
		case "metadata":
			k = 5
			if m.Metadata, ok = d.metadata(p); !ok {
				return false
			}
		case "timestamp":
			k = 6
			s, ok := p.plainString()
			if !ok {
				return false
			}
			if m.Timestamp, ok = parseTimestamp(s); !ok {
				return false
			}
		case "persisted":
			k = 7
			switch {
			case p.literal("true"):
				m.Persisted = true
			case p.literal("false"):
			default:
				return false
			}
		default:
			return false
		}
		if seen[k] {
			return false
		}
		seen[k] = true
	}
	if payload.start < 0 {
		return false // a message without a payload: not one the Server sends
	}
	sc.msgs = append(sc.msgs, m)
	sc.payloads = append(sc.payloads, payload)
	return true
}

// strings reads an array of plain strings.
func (d *messagesDecoder) strings(p *cursor) ([]string, bool) {
	if !p.consume('[') {
		return nil, false
	}
	out := []string{}
	p.ws()
	if p.consume(']') {
		return out, true
	}
	for {
		s, ok := d.name(p)
		if !ok {
			return nil, false
		}
		out = append(out, s)
		p.ws()
		if p.consume(']') {
			return out, true
		}
		if !p.consume(',') || !p.wsThen() {
			return nil, false
		}
	}
}

// metadata reads an object of plain strings. As with encoding/json, a
// repeated key keeps its last value.
func (d *messagesDecoder) metadata(p *cursor) (map[string]string, bool) {
	if !p.consume('{') {
		return nil, false
	}
	md := map[string]string{}
	for first := true; ; first = false {
		p.ws()
		if p.consume('}') {
			return md, true
		}
		if !first && (!p.consume(',') || !p.wsThen()) {
			return nil, false
		}
		k, ok := p.name()
		if !ok {
			return nil, false
		}
		v, ok := p.plainString()
		if !ok {
			return nil, false
		}
		md[string(k)] = string(v)
	}
}

// name reads a plain string that names a topic or a client, interned.
func (d *messagesDecoder) name(p *cursor) (string, bool) {
	s, ok := p.plainString()
	if !ok {
		return "", false
	}
	return d.intern(s), true
}

// intern returns s as a string, from the table when it is there.
func (d *messagesDecoder) intern(b []byte) string {
	if len(b) > maxInterned {
		return string(b)
	}
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	if d.names == nil || len(d.names) >= maxNames {
		d.names = make(map[string]string)
	}
	s := string(b)
	d.names[s] = s
	return s
}

// cursor reads JSON from b at i. Its methods report false for whatever the
// fast path leaves to encoding/json.
type cursor struct {
	b []byte
	i int
}

func (p *cursor) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// wsThen skips white space and reports whether anything follows.
func (p *cursor) wsThen() bool {
	p.ws()
	return p.i < len(p.b)
}

func (p *cursor) consume(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *cursor) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// name reads a member's name and the colon after it.
func (p *cursor) name() ([]byte, bool) {
	s, ok := p.plainString()
	if !ok {
		return nil, false
	}
	p.ws()
	if !p.consume(':') {
		return nil, false
	}
	p.ws()
	return s, true
}

// plainString reads a string without escapes, of valid UTF-8, and returns
// its contents: the strings encoding/json decodes to exactly their bytes.
func (p *cursor) plainString() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	b, start := p.b, p.i
	ascii := true
	for i := start; i < len(b); i++ {
		if !stringStop[b[i]] {
			continue
		}
		switch c := b[i]; {
		case c == '"':
			s := b[start:i]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			p.i = i + 1
			return s, true
		case c >= utf8.RuneSelf:
			ascii = false
		default: // a backslash or a control character
			return nil, false
		}
	}
	return nil, false
}

// stringStop marks the bytes plainString looks at twice.
var stringStop = func() (t [256]bool) {
	for c := range t {
		t[c] = c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf
	}
	return t
}()

// number reads a small non-negative integer, as the protocol version is.
func (p *cursor) number() bool {
	start := p.i
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - start
	return n > 0 && n <= 9 && (n == 1 || p.b[start] != '0')
}

// parseID parses 1 to 19 decimal digits that fit an int64, as
// strconv.ParseInt would.
func parseID(s []byte) (pubsub.ID, bool) {
	if len(s) == 0 || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0') // 19 digits never overflow a uint64
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return pubsub.ID(n), true
}

// parseTimestamp parses the form of time.RFC3339Nano the Server writes, in
// UTC: 2006-01-02T15:04:05Z with 0 to 9 digits of fraction. It reports
// false for anything else, valid or not, which time.Time's UnmarshalJSON
// then decides.
func parseTimestamp(s []byte) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return time.Time{}, false
	}
	num := func(b []byte) int {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(s[0:4]), num(s[5:7]), num(s[8:10])
	hour, minute, sec := num(s[11:13]), num(s[14:16]), num(s[17:19])
	if year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	switch frac := s[19 : len(s)-1]; {
	case len(frac) == 0:
	case len(frac) < 2 || len(frac) > 10 || frac[0] != '.':
		return time.Time{}, false
	default:
		if nsec = num(frac[1:]); nsec < 0 {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day {
		return time.Time{}, false // February 30th and the like
	}
	return t, true
}
