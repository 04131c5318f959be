package pubsub

import (
	"hash/maphash"
	"unicode/utf8"

	"github.com/plazahq/plaza/internal/jsonvalid"
	"github.com/plazahq/plaza/topic"
)

// Limits on the parts of a publish besides its payload.
const (
	MaxRecipients    = 256  // entries in To
	MaxClientIDLen   = 128  // bytes in a client id
	MaxMetadataBytes = 4096 // sum of key and value lengths
)

// CheckTopic returns an INVALID_TOPIC_NAME *Error if name is not a valid
// topic name, and nil otherwise.
func CheckTopic(name string) error {
	if err := topic.Check(name); err != nil {
		return &Error{Code: CodeInvalidTopicName, Message: err.Error(), Err: err}
	}
	return nil
}

// CheckSubscribeTopic is CheckTopic for subscriptions, which also accept
// topic patterns such as "user:*" (see package topic). A wildcard Plaza does
// not have, such as ">", gets a message that says what to write instead.
func CheckSubscribeTopic(s string) error {
	if _, err := topic.ParsePattern(s); err != nil {
		return &Error{Code: CodeInvalidTopicName, Message: err.Error(), Err: err}
	}
	return nil
}

// CheckClientID returns an INVALID_REQUEST *Error unless id is 1 to
// MaxClientIDLen bytes of UTF-8 without control characters.
func CheckClientID(id string) error {
	if id == "" || len(id) > MaxClientIDLen || !utf8.ValidString(id) {
		return Errorf(CodeInvalidRequest, "client id must be 1 to %d bytes of UTF-8", MaxClientIDLen)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return Errorf(CodeInvalidRequest, "client id %q has a control character", id)
		}
	}
	return nil
}

// CheckPayload validates an encoded payload: valid JSON, in UTF-8, of at
// most MaxPayloadBytes, nested at most MaxPayloadDepth levels.
func CheckPayload(p []byte) error {
	if len(p) > MaxPayloadBytes {
		return Errorf(CodePayloadTooLarge, "payload is %d bytes, more than %d", len(p), MaxPayloadBytes)
	}
	if len(p) == 0 {
		return Errorf(CodeInvalidPayload, "payload is not valid JSON")
	}
	switch jsonvalid.Check(p, MaxPayloadDepth) {
	case nil:
	case jsonvalid.ErrTooDeep:
		return Errorf(CodeInvalidPayload, "payload nests arrays and objects more than %d levels deep", MaxPayloadDepth)
	default:
		return Errorf(CodeInvalidPayload, "payload is not valid JSON")
	}
	if !utf8.Valid(p) {
		// JSON text is UTF-8 (RFC 8259), and browsers drop a WebSocket that
		// receives anything else.
		return Errorf(CodeInvalidPayload, "payload is not valid UTF-8")
	}
	return nil
}

// CheckPublish validates everything in a publish request. The Room calls it
// before anything reaches the transport, and the hub calls it again for
// clients that skip the Room: whatever arrives over a network, or from code
// that builds its own PublishRequest, is checked in full.
//
// A request Room.Publish built carries an unexported mark that its topic and
// payload passed these checks. CheckPublish skips those two checks (the
// costly part, a walk of the whole payload) while the request still holds
// the very topic and payload the Room checked: the same string, the same
// slice, with the same hash of its bytes (hash/maphash, about a tenth of
// the walk's cost), so that a Transport between the Room and the hub that
// replaced the payload, cut it, or rewrote its bytes in place has it
// checked in full. The mark cannot be set outside this package and does
// not travel over the wire.
func CheckPublish(req *PublishRequest) error {
	if !req.checked.holds(req) {
		if err := CheckTopic(req.Topic); err != nil {
			return err
		}
		if err := CheckPayload(req.Payload); err != nil {
			return err
		}
	}
	return checkPublishExtras(req)
}

// checkedMark records which topic and payload of a PublishRequest passed
// CheckTopic and CheckPayload. The zero mark holds for no request.
type checkedMark struct {
	topic   string
	payload *byte  // the payload's first byte; a valid payload is never empty
	n       int    // and its length
	sum     uint64 // a hash of its bytes: the slice may be written in place
}

// markSeed seeds the hash of checked payloads, anew in every process.
var markSeed = maphash.MakeSeed()

// markChecked returns the mark of req's current topic and payload. Call it
// only once they passed CheckTopic and CheckPayload.
func markChecked(req *PublishRequest) checkedMark {
	return checkedMark{topic: req.Topic, payload: &req.Payload[0], n: len(req.Payload), sum: maphash.Bytes(markSeed, req.Payload)}
}

// holds reports whether req still has the topic and payload of the mark.
func (c *checkedMark) holds(req *PublishRequest) bool {
	return c.payload != nil && len(req.Payload) == c.n && &req.Payload[0] == c.payload && req.Topic == c.topic &&
		maphash.Bytes(markSeed, req.Payload) == c.sum
}

// checkPublishExtras validates the parts of a publish besides topic and
// payload.
func checkPublishExtras(req *PublishRequest) error {
	if len(req.To) > MaxRecipients {
		return Errorf(CodeInvalidRequest, "%d recipients, more than %d", len(req.To), MaxRecipients)
	}
	for _, id := range req.To {
		if err := CheckClientID(id); err != nil {
			return err
		}
	}
	n := 0
	for k, v := range req.Metadata {
		if k == "" {
			return Errorf(CodeInvalidPayload, "metadata has an empty key")
		}
		n += len(k) + len(v)
	}
	if n > MaxMetadataBytes {
		return Errorf(CodePayloadTooLarge, "metadata is %d bytes, more than %d", n, MaxMetadataBytes)
	}
	if len(req.IdempotencyKey) > 128 {
		return Errorf(CodeInvalidRequest, "idempotency key is longer than 128 bytes")
	}
	return nil
}

// CheckHistory validates a history request: the topic, Before and After not
// both set, and a Limit of 0 (default) or 1 to MaxHistoryLimit.
func CheckHistory(req *HistoryRequest) error {
	if err := CheckTopic(req.Topic); err != nil {
		return err
	}
	if req.Before != 0 && req.After != 0 {
		return Errorf(CodeInvalidHistoryOpts, "before and after are both set; pass one")
	}
	if req.Before < 0 || req.After < 0 {
		return Errorf(CodeInvalidHistoryOpts, "negative message id")
	}
	if req.Limit < 0 || req.Limit > MaxHistoryLimit {
		return Errorf(CodeInvalidLimit, "limit %d is outside 1 to %d", req.Limit, MaxHistoryLimit)
	}
	for _, id := range req.From {
		if err := CheckClientID(id); err != nil {
			return err
		}
	}
	return nil
}
