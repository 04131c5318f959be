package network

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/plazahq/plaza/internal/jsonvalid"
	"github.com/plazahq/plaza/pubsub"
)

// ProtocolVersion is the version of the frame protocol, the "v" of every
// frame.
const ProtocolVersion = 1

// Frame types. A client sends the request types; the server answers with the
// reply types and pushes "messages" on its own.
const (
	// Requests.
	typeAuth        = "auth"
	typePublish     = "publish"
	typeSubscribe   = "subscribe"
	typeUnsubscribe = "unsubscribe"
	typeHistory     = "history" // also the reply
	typePing        = "ping"

	// Replies and pushes.
	typeWelcome      = "welcome"
	typePublished    = "published"
	typeSubscribed   = "subscribed"
	typeUnsubscribed = "unsubscribed"
	typePong         = "pong"
	typeMessages     = "messages"
	typeError        = "error"
)

// maxRequestID is the longest request id, in digits.
const maxRequestID = 19

// wireRequest is a client frame as JSON first decodes it: every member raw,
// so that a member a frame type does not use can never make it fail, and
// each used member is decoded with the error code that fits it.
type wireRequest struct {
	V              json.RawMessage `json:"v"`
	Type           json.RawMessage `json:"type"`
	ID             json.RawMessage `json:"id"`
	Auth           json.RawMessage `json:"auth"`
	Topic          json.RawMessage `json:"topic"`
	Payload        json.RawMessage `json:"payload"`
	To             json.RawMessage `json:"to"`
	Metadata       json.RawMessage `json:"metadata"`
	Persist        json.RawMessage `json:"persist"`
	IdempotencyKey json.RawMessage `json:"idempotencyKey"`
	Rate           json.RawMessage `json:"rate"`
	Before         json.RawMessage `json:"before"`
	After          json.RawMessage `json:"after"`
	Limit          json.RawMessage `json:"limit"`
	From           json.RawMessage `json:"from"`
}

// request is a decoded client frame.
type request struct {
	Type string
	ID   string // the request id, "" when the frame has none

	Auth    string
	HasAuth bool

	Topic          string
	Payload        json.RawMessage
	To             []string
	Metadata       map[string]string
	NoPersist      bool
	IdempotencyKey string
	Rate           float64
	Before, After  pubsub.ID
	Limit          int
	From           []string
}

// decodeRequest decodes one client frame. On error it returns the *pubsub.Error
// to send back and, when the frame had a valid id, the request with that id set
// so the error frame can carry it.
func decodeRequest(data []byte) (request, *pubsub.Error) {
	if !utf8.Valid(data) {
		// RFC 6455 text frames are UTF-8; a browser drops a connection that
		// receives anything else, so nothing else may reach a subscriber.
		return request{}, pubsub.Errorf(pubsub.CodeInvalidRequest, "frame is not valid UTF-8")
	}
	var w wireRequest
	if err := json.Unmarshal(data, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return request{}, pubsub.Errorf(pubsub.CodeInvalidRequest, "a frame must be a JSON object, not %s", te.Value)
		}
		if perr := tooDeep("frame", data); perr != nil {
			return request{}, perr
		}
		return request{}, pubsub.Errorf(pubsub.CodeInvalidRequest, "malformed JSON frame: %s", jsonProblem(err))
	}
	var req request
	if present(w.ID) {
		id, ok := parseRequestID(w.ID)
		if !ok {
			return request{}, pubsub.Errorf(pubsub.CodeInvalidRequest, "id must be a string of 1 to %d decimal digits", maxRequestID)
		}
		req.ID = id
	}
	if present(w.V) {
		var v int
		if json.Unmarshal(w.V, &v) != nil || v != ProtocolVersion {
			return req, pubsub.Errorf(pubsub.CodeInvalidRequest, "unsupported protocol version %s; this server speaks %d", clip(string(w.V), 16), ProtocolVersion)
		}
	}
	if err := field(w.Type, &req.Type, pubsub.CodeInvalidRequest, "type"); err != nil {
		return req, err
	}
	if present(w.Auth) {
		if err := field(w.Auth, &req.Auth, pubsub.CodeInvalidRequest, "auth"); err != nil {
			return req, err
		}
		req.HasAuth = true
		if req.Type == "" {
			req.Type = typeAuth
		}
	}
	var err *pubsub.Error
	switch req.Type {
	case typeAuth:
		if !req.HasAuth {
			return req, pubsub.Errorf(pubsub.CodeInvalidRequest, `auth frame has no "auth" member`)
		}
	case typePublish:
		var persist *bool
		req.Payload = w.Payload
		err = firstError(
			field(w.Topic, &req.Topic, pubsub.CodeInvalidTopicName, "topic"),
			field(w.To, &req.To, pubsub.CodeInvalidRequest, "to"),
			field(w.Metadata, &req.Metadata, pubsub.CodeInvalidPayload, "metadata"),
			field(w.Persist, &persist, pubsub.CodeInvalidRequest, "persist"),
			field(w.IdempotencyKey, &req.IdempotencyKey, pubsub.CodeInvalidRequest, "idempotencyKey"),
		)
		req.NoPersist = persist != nil && !*persist
	case typeSubscribe:
		err = firstError(
			field(w.Topic, &req.Topic, pubsub.CodeInvalidTopicName, "topic"),
			field(w.Rate, &req.Rate, pubsub.CodeInvalidRequest, "rate"),
		)
	case typeUnsubscribe:
		err = field(w.Topic, &req.Topic, pubsub.CodeInvalidTopicName, "topic")
	case typeHistory:
		err = firstError(
			field(w.Topic, &req.Topic, pubsub.CodeInvalidTopicName, "topic"),
			field(w.Limit, &req.Limit, pubsub.CodeInvalidLimit, "limit"),
			field(w.From, &req.From, pubsub.CodeInvalidRequest, "from"),
		)
		if err == nil && present(w.Limit) {
			err = checkLimit(int64(req.Limit))
		}
		if err == nil {
			req.Before, err = parseAnchor("before", w.Before)
		}
		if err == nil {
			req.After, err = parseAnchor("after", w.After)
		}
	case typePing:
	case "":
		return req, pubsub.Errorf(pubsub.CodeInvalidRequest, `frame has no "type"`)
	default:
		return req, pubsub.Errorf(pubsub.CodeInvalidRequest, "unknown frame type %q", clip(req.Type, 32))
	}
	return req, err
}

// present reports whether a member was in the frame with a value other than
// null.
func present(raw json.RawMessage) bool {
	return raw != nil && string(raw) != "null"
}

// field decodes a member into dst, if present; a value of the wrong type fails
// with code.
func field(raw json.RawMessage, dst any, code pubsub.Code, name string) *pubsub.Error {
	if !present(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field != "" {
				name += "." + te.Field
			}
			return pubsub.Errorf(code, "%q must not be %s", name, te.Value)
		}
		return pubsub.Errorf(code, "%q: %v", name, err)
	}
	return nil
}

func firstError(errs ...*pubsub.Error) *pubsub.Error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// parseRequestID accepts a JSON string of 1 to maxRequestID decimal digits.
func parseRequestID(raw json.RawMessage) (string, bool) {
	n := len(raw)
	if n < 3 || n > maxRequestID+2 || raw[0] != '"' || raw[n-1] != '"' {
		return "", false
	}
	for _, c := range raw[1 : n-1] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return string(raw[1 : n-1]), true
}

// History options follow one rule on every route, as in Room.GetHistory:
// an option left out (absent or null in a frame, absent or empty in a query)
// takes its default; one that is given must be valid, zero included. So a
// limit is 1 to pubsub.MaxHistoryLimit (else INVALID_LIMIT) and an anchor a
// message id other than "0" (else INVALID_HISTORY_OPTS).

// parseAnchor parses a history anchor of a frame: absent, or a message id as
// a decimal string.
func parseAnchor(field string, raw json.RawMessage) (pubsub.ID, *pubsub.Error) {
	if !present(raw) {
		return 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return 0, pubsub.Errorf(pubsub.CodeInvalidHistoryOpts, "%s must be a message id as a decimal string", field)
	}
	return anchorID(field, s)
}

// anchorID parses the message id given as a history anchor.
func anchorID(field, s string) (pubsub.ID, *pubsub.Error) {
	id, err := pubsub.ParseID(s)
	if err != nil || id == 0 {
		return 0, pubsub.Errorf(pubsub.CodeInvalidHistoryOpts, "%s: invalid message id %q", field, clip(s, 24))
	}
	return id, nil
}

// checkLimit checks a history limit that was given.
func checkLimit(n int64) *pubsub.Error {
	if n < 1 || n > pubsub.MaxHistoryLimit {
		return pubsub.Errorf(pubsub.CodeInvalidLimit, "limit %d is outside 1 to %d", n, pubsub.MaxHistoryLimit)
	}
	return nil
}

// tooDeep returns an INVALID_PAYLOAD error if data, which encoding/json
// refused, nests deeper than encoding/json allows, and nil otherwise. Only a
// payload may nest that deep (every other member is flat), so such a frame or
// body fails as its payload would have, had it arrived whole; shallower
// payloads fail later, in pubsub.CheckPublish.
func tooDeep(what string, data []byte) *pubsub.Error {
	if jsonvalid.Check(data, jsonvalid.StdDepth) != jsonvalid.ErrTooDeep {
		return nil
	}
	return pubsub.Errorf(pubsub.CodeInvalidPayload, "%s nests arrays and objects more than %d levels deep; a payload may nest at most %d", what, jsonvalid.StdDepth, pubsub.MaxPayloadDepth)
}

// jsonProblem shortens a JSON syntax error for an error frame.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at offset %d", se.Error(), se.Offset)
	}
	return err.Error()
}

// clip shortens s to at most n bytes of valid UTF-8, for error messages that
// quote client input.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Server frames. Each is built by appending to a byte slice: the hot ones
// ("messages") are assembled from pre-encoded messages without reflection.

// appendHead appends the opening of a server frame: {"v":1,"type":"…" and, when
// id is set, ,"id":"…".
func appendHead(b []byte, typ, id string) []byte {
	b = append(b, `{"v":1,"type":"`...)
	b = append(b, typ...)
	b = append(b, '"')
	if id != "" {
		b = append(b, `,"id":"`...)
		b = append(b, id...)
		b = append(b, '"')
	}
	return b
}

// messagesHead and messagesTail frame a run of encoded messages.
const (
	messagesHead = `{"v":1,"type":"messages","messages":[`
	messagesTail = `]}`
)

// appendMessage appends m as the JSON object pubsub.Message decodes from. The
// payload is copied verbatim, so every receiver sees the publisher's bytes.
func appendMessage(b []byte, m *pubsub.Message) []byte {
	b = append(b, `{"id":"`...)
	b = strconv.AppendInt(b, int64(m.ID), 10)
	b = append(b, `","topic":`...)
	b = appendString(b, m.Topic)
	b = append(b, `,"from":`...)
	b = appendString(b, m.From)
	if len(m.To) > 0 {
		b = append(b, `,"to":`...)
		b = appendStrings(b, m.To)
	}
	b = append(b, `,"payload":`...)
	if len(m.Payload) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, m.Payload...)
	}
	if len(m.Metadata) > 0 {
		b = append(b, `,"metadata":`...)
		b = appendMetadata(b, m.Metadata)
	}
	b = append(b, `,"timestamp":"`...)
	b = m.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","persisted":`...)
	b = strconv.AppendBool(b, m.Persisted)
	return append(b, '}')
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// with encoding/json; unlike it, '<', '>' and '&' are kept as they are.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// wireError is the "error" member of an error frame.
type wireError struct {
	Code    pubsub.Code `json:"code"`
	Message string      `json:"message,omitempty"`
	// RetryAfterMs is set with RATE_LIMIT_EXCEEDED.
	RetryAfterMs int64 `json:"retryAfterMs,omitempty"`
}

// toWireError turns any error into the code and message a client sees.
func toWireError(err error) wireError {
	var perr *pubsub.Error
	if !errors.As(err, &perr) {
		return wireError{Code: pubsub.CodeInternal, Message: "internal error"}
	}
	w := wireError{Code: perr.Code, Message: perr.Message}
	if w.Message == "" && perr.Err != nil {
		w.Message = perr.Err.Error()
	}
	if perr.RetryAfter > 0 {
		w.RetryAfterMs = max(1, perr.RetryAfter.Milliseconds())
	}
	return w
}

// err turns a wire error back into a *pubsub.Error.
func (w wireError) err() *pubsub.Error {
	code := w.Code
	if code == "" {
		code = pubsub.CodeInternal
	}
	return &pubsub.Error{Code: code, Message: w.Message, RetryAfter: time.Duration(w.RetryAfterMs) * time.Millisecond}
}

// appendError appends an error frame.
func appendError(b []byte, id string, err error) []byte {
	w := toWireError(err)
	b = appendHead(b, typeError, id)
	b = append(b, `,"error":{"code":`...)
	b = appendString(b, string(w.Code))
	if w.Message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, w.Message)
	}
	if w.RetryAfterMs > 0 {
		b = append(b, `,"retryAfterMs":`...)
		b = strconv.AppendInt(b, w.RetryAfterMs, 10)
	}
	return append(b, "}}"...)
}

// welcome is what the server tells a client once it is authenticated.
type welcome struct {
	ClientID         string
	Expires          time.Time
	Heartbeat        time.Duration
	MaxFrameBytes    int64
	MaxSubscriptions int
}

func appendWelcome(b []byte, id string, w welcome) []byte {
	b = appendHead(b, typeWelcome, id)
	b = append(b, `,"clientId":`...)
	b = appendString(b, w.ClientID)
	if !w.Expires.IsZero() {
		b = append(b, `,"expires":"`...)
		b = w.Expires.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, `,"heartbeatMs":`...)
	b = strconv.AppendInt(b, max(0, w.Heartbeat.Milliseconds()), 10)
	b = append(b, `,"maxFrameBytes":`...)
	b = strconv.AppendInt(b, w.MaxFrameBytes, 10)
	b = append(b, `,"maxSubscriptions":`...)
	b = strconv.AppendInt(b, int64(w.MaxSubscriptions), 10)
	return append(b, '}')
}

func appendPublished(b []byte, id string, m *pubsub.Message) []byte {
	b = appendHead(b, typePublished, id)
	b = append(b, `,"message":`...)
	b = appendMessage(b, m)
	return append(b, '}')
}

// appendTopicReply appends a subscribed or unsubscribed reply.
func appendTopicReply(b []byte, typ, id, topic string) []byte {
	b = appendHead(b, typ, id)
	b = append(b, `,"topic":`...)
	b = appendString(b, topic)
	return append(b, '}')
}

func appendHistory(b []byte, id string, p *pubsub.HistoryPage) []byte {
	b = appendHead(b, typeHistory, id)
	b = append(b, `,"messages":[`...)
	for i := range p.Messages {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMessage(b, &p.Messages[i])
	}
	b = append(b, `],"hasMore":`...)
	b = strconv.AppendBool(b, p.HasMore)
	return append(b, '}')
}

func appendPong(b []byte, id string) []byte {
	return append(appendHead(b, typePong, id), '}')
}

// Client frames, as the Go client encodes them.

// appendAuth appends an auth frame.
func appendAuth(b []byte, credential string) []byte {
	b = append(appendHead(b, typeAuth, ""), `,"auth":`...)
	b = appendString(b, credential)
	return append(b, '}')
}

// appendPublish appends a publish frame. The payload must be valid JSON; it is
// copied verbatim.
func appendPublish(b []byte, id string, req *pubsub.PublishRequest) []byte {
	b = appendHead(b, typePublish, id)
	b = append(b, `,"topic":`...)
	b = appendString(b, req.Topic)
	b = append(b, `,"payload":`...)
	b = append(b, bytes.TrimSpace(req.Payload)...)
	if len(req.To) > 0 {
		b = append(b, `,"to":`...)
		b = appendStrings(b, req.To)
	}
	if len(req.Metadata) > 0 {
		b = append(b, `,"metadata":`...)
		b = appendMetadata(b, req.Metadata)
	}
	if req.NoPersist {
		b = append(b, `,"persist":false`...)
	}
	if req.IdempotencyKey != "" {
		b = append(b, `,"idempotencyKey":`...)
		b = appendString(b, req.IdempotencyKey)
	}
	return append(b, '}')
}

func appendSubscribe(b []byte, id string, req *pubsub.SubscribeRequest) []byte {
	b = appendHead(b, typeSubscribe, id)
	b = append(b, `,"topic":`...)
	b = appendString(b, req.Topic)
	if req.Rate != 0 {
		b = append(b, `,"rate":`...)
		b = strconv.AppendFloat(b, req.Rate, 'g', -1, 64)
	}
	return append(b, '}')
}

func appendUnsubscribe(b []byte, id, topic string) []byte {
	b = appendHead(b, typeUnsubscribe, id)
	b = append(b, `,"topic":`...)
	b = appendString(b, topic)
	return append(b, '}')
}

func appendHistoryRequest(b []byte, id string, req *pubsub.HistoryRequest) []byte {
	b = appendHead(b, typeHistory, id)
	b = append(b, `,"topic":`...)
	b = appendString(b, req.Topic)
	if req.Before != 0 {
		b = append(b, `,"before":"`...)
		b = strconv.AppendInt(b, int64(req.Before), 10)
		b = append(b, '"')
	}
	if req.After != 0 {
		b = append(b, `,"after":"`...)
		b = strconv.AppendInt(b, int64(req.After), 10)
		b = append(b, '"')
	}
	if req.Limit != 0 {
		b = append(b, `,"limit":`...)
		b = strconv.AppendInt(b, int64(req.Limit), 10)
	}
	if len(req.From) > 0 {
		b = append(b, `,"from":`...)
		b = appendStrings(b, req.From)
	}
	return append(b, '}')
}

func appendPing(b []byte, id string) []byte {
	return append(appendHead(b, typePing, id), '}')
}

// appendMetadata appends md as a JSON object, keys sorted.
func appendMetadata(b []byte, md map[string]string) []byte {
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(md)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, md[k])
	}
	return append(b, '}')
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// serverFrame is any server frame as the Go client decodes it.
type serverFrame struct {
	V        int              `json:"v"`
	Type     string           `json:"type"`
	ID       string           `json:"id"`
	Error    *wireError       `json:"error"`
	Message  *pubsub.Message  `json:"message"`
	Messages []pubsub.Message `json:"messages"`
	HasMore  bool             `json:"hasMore"`
	Topic    string           `json:"topic"`

	// welcome
	ClientID         string    `json:"clientId"`
	Expires          time.Time `json:"expires"`
	HeartbeatMs      int64     `json:"heartbeatMs"`
	MaxFrameBytes    int64     `json:"maxFrameBytes"`
	MaxSubscriptions int       `json:"maxSubscriptions"`
}
