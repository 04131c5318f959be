package collections

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"

	"github.com/plazahq/plaza/pubsub"
)

// Operation is a kind of record change.
type Operation string

// The operations.
const (
	Create Operation = "create"
	Update Operation = "update"
	Delete Operation = "delete"
)

// ops is a set of operations, one bit each.
type ops uint8

const allOps ops = 1<<3 - 1

func (o Operation) bit() ops {
	switch o {
	case Create:
		return 1
	case Update:
		return 2
	case Delete:
		return 4
	}
	return 0
}

// MaxCollectionLen is the longest collection name.
const MaxCollectionLen = 64

// CheckCollection returns nil if name is a valid collection name: 1 to
// MaxCollectionLen ASCII letters, digits, '_' and '-'. It is then also a
// valid topic name. Any other name fails with INVALID_REQUEST.
func CheckCollection(name string) error {
	if name == "" || len(name) > MaxCollectionLen {
		return pubsub.Errorf(pubsub.CodeInvalidRequest, "collection name must be 1 to %d characters", MaxCollectionLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return pubsub.Errorf(pubsub.CodeInvalidRequest, "collection name %q has a character outside [A-Za-z0-9_-] at offset %d", name, i)
		}
	}
	return nil
}

// Action is what a client frame asks for.
type Action string

// The actions of client frames.
const (
	ActionSubscribe   Action = "subscribe"
	ActionUnsubscribe Action = "unsubscribe"
	ActionPing        Action = "ping"
)

// Frame is one client frame, as [ParseFrame] read it.
type Frame struct {
	Action     Action
	Collection string // for subscribe and unsubscribe
	// Operations lists what a subscribe asks for, without duplicates; all
	// three when the frame had no "operations".
	Operations []Operation
}

// ParseFrame reads one client frame: a JSON object
// {"action":"subscribe","collection":"posts","operations":["create"]},
// {"action":"unsubscribe","collection":"posts"}, {"action":"ping"}, or the
// bare text "ping". Members other than these are ignored. A frame that is
// not one of these fails with INVALID_REQUEST, and its message says why;
// the Frame then holds whatever action and collection could be read, for
// the error reply.
func ParseFrame(data []byte) (Frame, error) {
	if string(bytes.TrimSpace(data)) == "ping" {
		return Frame{Action: ActionPing}, nil
	}
	var raw struct {
		Action     *string   `json:"action"`
		Collection *string   `json:"collection"`
		Operations *[]string `json:"operations"`
	}
	if err := json.Unmarshal(data, &raw); err != nil || !isObject(data) {
		return Frame{}, pubsub.Errorf(pubsub.CodeInvalidRequest, `malformed frame: want a JSON object such as {"action":"subscribe","collection":"posts"} or the text ping`)
	}
	var f Frame
	if raw.Action == nil {
		return f, pubsub.Errorf(pubsub.CodeInvalidRequest, `frame has no "action": want subscribe, unsubscribe or ping`)
	}
	f.Action = Action(*raw.Action)
	if raw.Collection != nil {
		f.Collection = *raw.Collection
	}
	switch f.Action {
	case ActionPing:
		return f, nil
	case ActionSubscribe, ActionUnsubscribe:
	default:
		return f, pubsub.Errorf(pubsub.CodeInvalidRequest, "unknown action %q: want subscribe, unsubscribe or ping", truncate(*raw.Action))
	}
	if raw.Collection == nil {
		return f, pubsub.Errorf(pubsub.CodeInvalidRequest, `%s frame has no "collection"`, f.Action)
	}
	if err := CheckCollection(f.Collection); err != nil {
		return f, err
	}
	if f.Action == ActionUnsubscribe {
		return f, nil
	}
	if raw.Operations == nil {
		f.Operations = []Operation{Create, Update, Delete}
		return f, nil
	}
	if len(*raw.Operations) == 0 {
		return f, pubsub.Errorf(pubsub.CodeInvalidRequest, `"operations" is empty: list some of create, update, delete, or leave it out for all`)
	}
	var seen ops
	for _, s := range *raw.Operations {
		o := Operation(s)
		b := o.bit()
		if b == 0 {
			return f, pubsub.Errorf(pubsub.CodeInvalidRequest, "unknown operation %q: want create, update or delete", truncate(s))
		}
		if seen&b == 0 {
			seen |= b
			f.Operations = append(f.Operations, o)
		}
	}
	return f, nil
}

func isObject(data []byte) bool {
	d := bytes.TrimLeft(data, " \t\r\n")
	return len(d) > 0 && d[0] == '{'
}

// truncate keeps error messages short whatever the client sent.
func truncate(s string) string {
	if len(s) > MaxCollectionLen {
		return s[:MaxCollectionLen] + "…"
	}
	return s
}

func mask(os []Operation) ops {
	var m ops
	for _, o := range os {
		m |= o.bit()
	}
	return m
}

// timestampLayout is RFC 3339 with milliseconds, as the events carry it.
const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

func appendTimestamp(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, timestampLayout)
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always encodes
	return append(b, q...)
}

// statusFrame is {"status":"subscribed","collection":"posts"}.
func statusFrame(status, collection string) []byte {
	b := append([]byte(`{"status":`), appendString(nil, status)...)
	b = append(b, `,"collection":`...)
	b = appendString(b, collection)
	return append(b, '}')
}

// errorFrame is {"type":"error","code":"…","message":"…"} with the action
// and collection of the frame it answers, when known.
func errorFrame(err error, f Frame) []byte {
	perr := asError(err)
	b := append([]byte(`{"type":"error","code":`), appendString(nil, string(perr.Code))...)
	b = append(b, `,"message":`...)
	b = appendString(b, perr.Message)
	if f.Action != "" {
		b = append(b, `,"action":`...)
		b = appendString(b, truncate(string(f.Action)))
	}
	if f.Collection != "" {
		b = append(b, `,"collection":`...)
		b = appendString(b, truncate(f.Collection))
	}
	return append(b, '}')
}

func heartbeatFrame(t time.Time) []byte {
	b := append([]byte(`{"type":"heartbeat","timestamp":"`), appendTimestamp(nil, t)...)
	return append(b, `"}`...)
}

var pongFrame = []byte(`{"type":"pong"}`)

// eventFrame is {"type":"posts.create","timestamp":"…","data":{…}}.
func eventFrame(m *pubsub.Message, op Operation) []byte {
	b := make([]byte, 0, 64+len(m.Topic)+len(m.Payload))
	b = append(b, `{"type":`...)
	b = appendString(b, m.Topic+"."+string(op))
	b = append(b, `,"timestamp":"`...)
	b = appendTimestamp(b, m.Timestamp)
	b = append(b, `","data":`...)
	b = append(b, m.Payload...)
	return append(b, '}')
}

// asError returns err as a *pubsub.Error; other errors become
// INTERNAL_ERROR.
func asError(err error) *pubsub.Error {
	var perr *pubsub.Error
	if errors.As(err, &perr) {
		return perr
	}
	return &pubsub.Error{Code: pubsub.CodeInternal, Message: err.Error(), Err: err}
}
