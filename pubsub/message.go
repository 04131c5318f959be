package pubsub

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/bwmarrin/snowflake"
)

// ID is a message id: a snowflake (41 bits of milliseconds, 10 bits of hub
// node, 12 bits of sequence) assigned by the hub, never by a client. Ids of
// one hub strictly increase, so they order messages and serve as history
// anchors. In JSON an ID is a decimal string, which JavaScript can hold exactly;
// the zero ID means "none".
type ID = snowflake.ID

// ParseID parses the decimal form of an id, as found in JSON, query parameters
// and SSE id fields. It rejects signs, spaces and anything but 1 to 19 digits.
func ParseID(s string) (ID, error) {
	if s == "" || len(s) > 19 {
		return 0, Errorf(CodeInvalidRequest, "invalid message id %q", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, Errorf(CodeInvalidRequest, "invalid message id %q", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, Errorf(CodeInvalidRequest, "invalid message id %q", s)
	}
	return ID(n), nil
}

// MaxPayloadBytes is the largest payload, in bytes of encoded JSON.
const MaxPayloadBytes = 32 << 10

// MaxPayloadDepth is how deeply a payload's arrays and objects may nest: a
// number or a string has depth 0, {"text":"hi"} depth 1, [{"a":[]}] depth 3.
// Publishes that nest deeper fail with INVALID_PAYLOAD, in the Room, in the
// hub and at every route of transport/network, before anything is stored.
// Metadata is one flat object of strings, so it never nests.
//
// 64 is the default limit of .NET's System.Text.Json and Json.NET, and more
// than documents written for people need. The envelopes a message travels
// in add at most 4 levels (the answer of the HTTP history route), so
// whatever the hub accepts stays far below the limits of the decoders on the
// other side: encoding/json's 10000 levels, JSON.parse in browsers and Node,
// and recursive decoders in handlers.
const MaxPayloadDepth = 64

// Message is a message as the hub confirmed it: what Publish returns, what
// subscribers receive and what history holds.
//
// Messages handed to handlers share their Payload, To and Metadata with other
// receivers; treat them as read-only. They stay valid after the handler
// returns: a handler may keep a Message, or its Payload, without copying it.
type Message struct {
	ID        ID                `json:"id"`
	Topic     string            `json:"topic"`
	From      string            `json:"from"`
	To        []string          `json:"to,omitempty"`
	Payload   json.RawMessage   `json:"payload"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Timestamp time.Time         `json:"timestamp"`
	// Persisted is false for a message published with Persist(false): it was
	// delivered live and is not in history.
	Persisted bool `json:"persisted"`

	// Err is set only by a transport, on a message it received but could
	// not decode (from a hub that does not hold its messages to the rules
	// of this package, such as MaxPayloadDepth): an *Error with code
	// INVALID_PAYLOAD, and only the fields that could be read are set,
	// usually ID and Topic. A Room never hands such a message to a handler
	// or returns it from GetHistory: it counts it in RoomStats.Undecodable,
	// reports it to JoinOptions.OnError, and goes on past it, so that gap
	// fill never fetches it again.
	Err error `json:"-"`
}

// HistoryPage is one page of a topic's history, oldest message first. HasMore
// reports whether more messages exist beyond the page in the direction asked:
// older ones for the newest page and for Before, newer ones for After.
type HistoryPage struct {
	Messages []Message `json:"messages"`
	HasMore  bool      `json:"hasMore"`
}

// VisibleTo reports whether clientID may see m in history: everyone may see a
// message without recipients; a message with To is visible only to its sender
// and its recipients.
func (m *Message) VisibleTo(clientID string) bool {
	if len(m.To) == 0 || m.From == clientID {
		return true
	}
	for _, id := range m.To {
		if id == clientID {
			return true
		}
	}
	return false
}
