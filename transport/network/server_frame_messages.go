package network

import (
	"encoding/binary"
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
// copies every payload of a frame into one allocation. A message in the
// form the Server writes is read straight through, its member names
// compared whole (any other form member by member); a topic or a sender
// like the last message's is compared and not looked up, a timestamp in
// the same second as the last has only its fraction read, and strings are
// scanned eight bytes at a time.
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

	// The topic and the sender of the last message: in a busy frame most
	// messages repeat them, which a comparison confirms for less than a
	// lookup in names costs.
	lastTopic, lastFrom string

	// The date and time, to the second, of the last timestamp parsed, and
	// its Unix time: the messages of a frame were mostly published within
	// the same second.
	tsKey  secondKey
	tsUnix int64
	tsOK   bool
}

// decodeScratch is where the payloads of a frame's messages are found
// before they are copied out in one allocation; pooled, so that an idle
// Conn holds none.
type decodeScratch struct {
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

// newFrame returns a frame without messages, with room for those of a
// recycled one.
func newFrame() *frame {
	fr := framePool.Get().(*frame)
	if fr.msgs == nil { // never nil: encoding/json's [] is an empty slice
		fr.msgs = make([]pubsub.Message, 0, 16)
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
	fr := newFrame()
	ok := d.frame(data, fr, sc)
	sc.payloads = sc.payloads[:0]
	scratchPool.Put(sc)
	if !ok {
		fr.recycle()
		return nil, false
	}
	return fr, true
}

// frame reads data into fr, the payloads' places into sc, and copies the
// payloads out.
func (d *messagesDecoder) frame(data []byte, fr *frame, sc *decodeScratch) bool {
	p := cursor{b: data}
	p.ws()
	if !p.consume('{') {
		return false
	}
	var seen [3]bool // v, type, messages
	isMessages := false
	for first := true; ; first = false {
		p.ws()
		if p.consume('}') {
			if first {
				return false
			}
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
		case "v":
			k = 0
			if !p.number() {
				return false
			}
		case "type":
			k = 1
			typ, ok := p.plainString()
			if !ok {
				return false
			}
			isMessages = string(typ) == typeMessages
		case "messages":
			k = 2
			if !d.messages(&p, fr, sc) {
				return false
			}
		default:
			return false
		}
		if seen[k] {
			return false // a repeated member: encoding/json keeps the last
		}
		seen[k] = true
	}
	p.ws()
	if p.i != len(data) || !isMessages || !seen[0] || !seen[2] {
		return false
	}

	size := 0
	for _, s := range sc.payloads {
		size += s.end - s.start
	}
	arena := make([]byte, 0, size)
	for i, s := range sc.payloads {
		start := len(arena)
		arena = append(arena, data[s.start:s.end]...)
		fr.msgs[i].Payload = arena[start:len(arena):len(arena)]
	}
	return true
}

// messages reads the messages array of a frame into fr, and the places of
// their payloads into sc.
func (d *messagesDecoder) messages(p *cursor, fr *frame, sc *decodeScratch) bool {
	if !p.consume('[') {
		return false
	}
	p.ws()
	if p.consume(']') {
		return true
	}
	for {
		fr.msgs = append(fr.msgs, pubsub.Message{})
		if !d.message(p, &fr.msgs[len(fr.msgs)-1], sc) {
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

// message reads one message object into m, which is zero.
func (d *messagesDecoder) message(p *cursor, m *pubsub.Message, sc *decodeScratch) bool {
	start := p.i
	if d.serverMessage(p, m, sc) {
		return true
	}
	p.i, *m = start, pubsub.Message{}
	if !p.consume('{') {
		return false
	}
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
		k, ok := p.messageKey()
		if !ok {
			return false
		}
		switch k {
		case keyID:
			if m.ID, ok = p.id(); !ok {
				return false
			}
		case keyTopic:
			if m.Topic, ok = d.name(p, &d.lastTopic); !ok {
				return false
			}
		case keyFrom:
			if m.From, ok = d.name(p, &d.lastFrom); !ok {
				return false
			}
		case keyTo:
			if m.To, ok = d.strings(p); !ok {
				return false
			}
		case keyPayload:
			if p.i < len(p.b) && p.b[p.i] == 'n' {
				return false // null: encoding/json's rules for it are its own
			}
			n, err := jsonvalid.Value(p.b[p.i:], jsonvalid.StdDepth-frameDepth)
			if err != nil {
				return false
			}
			payload = span{p.i, p.i + n}
			p.i += n
		case keyMetadata:
			if m.Metadata, ok = d.metadata(p); !ok {
				return false
			}
		case keyTimestamp:
			s, ok := p.plainString()
			if !ok {
				return false
			}
			if m.Timestamp, ok = d.timestamp(s); !ok {
				return false
			}
		case keyPersisted:
			switch {
			case p.literal("true"):
				m.Persisted = true
			case p.literal("false"):
			default:
				return false
			}
		}
		if seen[k] {
			return false
		}
		seen[k] = true
	}
	if payload.start < 0 {
		return false // a message without a payload: not one the Server sends
	}
	sc.payloads = append(sc.payloads, payload)
	return true
}

// serverMessage reads a message in the form appendMessage writes: its
// members in that order, without white space. It reports false for any
// other form, which message then reads member by member with the same
// result; so this path, straight through, changes only the cost.
func (d *messagesDecoder) serverMessage(p *cursor, m *pubsub.Message, sc *decodeScratch) bool {
	// Each comparison of a slice of constant length with a constant
	// compiles to a load or two.
	next := func(n int) []byte {
		if len(p.b)-p.i < n {
			return nil
		}
		return p.b[p.i : p.i+n]
	}
	var ok bool
	if string(next(6)) != `{"id":` {
		return false
	}
	p.i += 6
	if m.ID, ok = p.id(); !ok {
		return false
	}
	if string(next(9)) != `,"topic":` {
		return false
	}
	p.i += 9
	if m.Topic, ok = d.name(p, &d.lastTopic); !ok {
		return false
	}
	if string(next(8)) != `,"from":` {
		return false
	}
	p.i += 8
	if m.From, ok = d.name(p, &d.lastFrom); !ok {
		return false
	}
	if string(next(6)) == `,"to":` {
		p.i += 6
		if m.To, ok = d.strings(p); !ok {
			return false
		}
	}
	if string(next(11)) != `,"payload":` {
		return false
	}
	p.i += 11
	if p.i < len(p.b) && p.b[p.i] == 'n' {
		return false
	}
	n, err := jsonvalid.Value(p.b[p.i:], jsonvalid.StdDepth-frameDepth)
	if err != nil {
		return false
	}
	payload := span{p.i, p.i + n}
	p.i += n
	if string(next(12)) == `,"metadata":` {
		p.i += 12
		if m.Metadata, ok = d.metadata(p); !ok {
			return false
		}
	}
	if string(next(13)) != `,"timestamp":` {
		return false
	}
	p.i += 13
	ts, ok := p.plainString()
	if !ok {
		return false
	}
	if m.Timestamp, ok = d.timestamp(ts); !ok {
		return false
	}
	switch {
	case string(next(18)) == `,"persisted":true}`:
		m.Persisted = true
		p.i += 18
	case string(next(19)) == `,"persisted":false}`:
		p.i += 19
	default:
		return false
	}
	sc.payloads = append(sc.payloads, payload)
	return true
}

// The members of a message, in the order the Server writes them.
const (
	keyID = iota
	keyTopic
	keyFrom
	keyTo
	keyPayload
	keyMetadata
	keyTimestamp
	keyPersisted
	messageKeys
)

// messageKey reads the name of a message's member and the colon after it,
// and returns which member it names; false for a name a message does not
// have. The Server writes `"name":` with nothing between, which one
// comparison confirms; any other form is read as a plain string.
func (p *cursor) messageKey() (int, bool) {
	k, n := -1, 0
	if rest := p.b[p.i:]; len(rest) >= 16 && rest[0] == '"' {
		// Each comparison of a slice of constant length with a constant
		// compiles to a load or two. (Nearer the end of a frame than 16
		// bytes, the name is read as any other.)
		switch rest[1] {
		case 'i':
			if string(rest[:5]) == `"id":` {
				k, n = keyID, len(`"id":`)
			}
		case 't':
			switch {
			case string(rest[:8]) == `"topic":`:
				k, n = keyTopic, len(`"topic":`)
			case string(rest[:12]) == `"timestamp":`:
				k, n = keyTimestamp, len(`"timestamp":`)
			case string(rest[:5]) == `"to":`:
				k, n = keyTo, len(`"to":`)
			}
		case 'f':
			if string(rest[:7]) == `"from":` {
				k, n = keyFrom, len(`"from":`)
			}
		case 'p':
			switch {
			case string(rest[:10]) == `"payload":`:
				k, n = keyPayload, len(`"payload":`)
			case string(rest[:12]) == `"persisted":`:
				k, n = keyPersisted, len(`"persisted":`)
			}
		case 'm':
			if string(rest[:11]) == `"metadata":` {
				k, n = keyMetadata, len(`"metadata":`)
			}
		}
	}
	if k >= 0 {
		p.i += n
		p.ws()
		return k, true
	}
	name, ok := p.name()
	if !ok {
		return 0, false
	}
	switch string(name) {
	case "id":
		return keyID, true
	case "topic":
		return keyTopic, true
	case "from":
		return keyFrom, true
	case "to":
		return keyTo, true
	case "payload":
		return keyPayload, true
	case "metadata":
		return keyMetadata, true
	case "timestamp":
		return keyTimestamp, true
	case "persisted":
		return keyPersisted, true
	}
	return 0, false
}

// strings reads an array of plain strings.
func (d *messagesDecoder) strings(p *cursor) ([]string, bool) {
	if !p.consume('[') {
		return nil, false
	}
	out := []string{}
	var last string
	p.ws()
	if p.consume(']') {
		return out, true
	}
	for {
		s, ok := d.name(p, &last)
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

// name reads a plain string that names a topic or a client, interned; last
// holds the name this member had in the message before.
func (d *messagesDecoder) name(p *cursor, last *string) (string, bool) {
	s, ok := p.plainString()
	if !ok {
		return "", false
	}
	if string(s) == *last {
		return *last, true
	}
	*last = d.intern(s)
	return *last, true
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

// timestamp parses s as parseTimestamp does. When s falls in the same
// second as the timestamp parsed before, only its fraction is read.
func (d *messagesDecoder) timestamp(s []byte) (time.Time, bool) {
	if len(s) < 19 {
		return time.Time{}, false
	}
	key := secondOf(s)
	if d.tsOK && key == d.tsKey {
		if nsec, ok := parseFraction(s[19:]); ok {
			return time.Unix(d.tsUnix, int64(nsec)).UTC(), true
		}
	}
	t, ok := parseTimestamp(s)
	if ok {
		d.tsKey, d.tsUnix, d.tsOK = key, t.Unix(), true
	}
	return t, ok
}

// secondKey holds the first 19 bytes of a timestamp, its date and time to
// the second, in words that compare at once.
type secondKey struct {
	a, b uint64
	c    uint32
}

// secondOf returns the secondKey of s, which has at least 19 bytes.
func secondOf(s []byte) secondKey {
	return secondKey{binary.LittleEndian.Uint64(s), binary.LittleEndian.Uint64(s[8:]), binary.LittleEndian.Uint32(s[15:])}
}

// cursor reads JSON from b at i. Its methods report false for whatever the
// fast path leaves to encoding/json.
type cursor struct {
	b []byte
	i int
}

func (p *cursor) ws() {
	// Every byte of white space is at most ' ': one comparison tells the
	// bytes the Server writes between members from white space.
	for p.i < len(p.b) && p.b[p.i] <= ' ' {
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
		i += jsonvalid.Plain(b[i:])
		if i >= len(b) {
			break
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

// number reads a small non-negative integer, as the protocol version is.
func (p *cursor) number() bool {
	start := p.i
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - start
	return n > 0 && n <= 9 && (n == 1 || p.b[start] != '0')
}

// parseTimestamp parses the form of time.RFC3339Nano the Server writes, in
// UTC: 2006-01-02T15:04:05Z with 0 to 9 digits of fraction. It reports
// false for anything else, valid or not, which time.Time's UnmarshalJSON
// then decides.
func parseTimestamp(s []byte) (time.Time, bool) {
	if len(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		return time.Time{}, false
	}
	year, month, day := num(s[0:4]), num(s[5:7]), num(s[8:10])
	hour, minute, sec := num(s[11:13]), num(s[14:16]), num(s[17:19])
	if year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	nsec, ok := parseFraction(s[19:])
	if !ok {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day {
		return time.Time{}, false // February 30th and the like
	}
	return t, true
}

// parseFraction parses what follows the seconds of a timestamp the Server
// writes: "Z", or a dot, 1 to 9 digits and "Z". It returns nanoseconds.
func parseFraction(s []byte) (int, bool) {
	if len(s) == 0 || s[len(s)-1] != 'Z' {
		return 0, false
	}
	frac := s[:len(s)-1]
	if len(frac) == 0 {
		return 0, true
	}
	if len(frac) < 2 || len(frac) > 10 || frac[0] != '.' {
		return 0, false
	}
	nsec := num(frac[1:])
	if nsec < 0 {
		return 0, false
	}
	for range 10 - len(frac) {
		nsec *= 10
	}
	return nsec, true
}

// num parses decimal digits, or returns -1.
func num(b []byte) int {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// id reads a message id: a string of 1 to 19 decimal digits that fit an
// int64, as strconv.ParseInt would take them.
func (p *cursor) id() (pubsub.ID, bool) {
	if !p.consume('"') {
		return 0, false
	}
	b, start := p.b, p.i
	i := start
	var n uint64
	for ; i < len(b) && i-start < 20; i++ {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		n = n*10 + uint64(c) // 19 digits never overflow a uint64
	}
	if i == start || i-start > 19 || i == len(b) || b[i] != '"' || n > math.MaxInt64 {
		return 0, false
	}
	p.i = i + 1
	return pubsub.ID(n), true
}
