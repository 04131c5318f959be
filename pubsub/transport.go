package pubsub

import (
	"context"
	"time"
)

// Transport is what a Room runs on: something that opens connections to a hub.
// transport/memory is an in-process hub; transport/network reaches a hub in
// another process. Every implementation must pass the conformance suite in
// transport/transporttest.
//
// A Transport must be safe for concurrent use.
type Transport interface {
	// Connect opens a connection to room on the hub. It returns an *Error:
	// UNAUTHENTICATED or PERMISSION_DENIED when the hub refuses the
	// client, NETWORK_ERROR when the hub cannot be reached.
	Connect(ctx context.Context, req ConnectRequest) (Conn, error)
}

// ConnectRequest says who connects to which room.
type ConnectRequest struct {
	Room string
	// ClientID is the identity the client asks for. A hub that authenticates
	// its clients (transport/network) ignores it and uses the identity the
	// credentials prove; the in-process hub trusts it, and makes one up when
	// it is empty.
	ClientID string
	// Token carries credentials for hubs that need them.
	Token string
	// QueueBytes, when positive, bounds how far this connection may fall
	// behind, in bytes of messages waiting for it, instead of the hub's own
	// bound: past it the hub drops the connection with SLOW_CONSUMER. transport/memory honours it (see
	// memory.Options.QueueBytes for how a message is counted), and
	// transport/network's server passes its Options.QueueBytes in it. Zero
	// means the hub's bound.
	QueueBytes int
}

// Conn is one client connection to a hub, bound to one room and one identity.
//
// The hub delivers messages of the topics the Conn subscribed to on
// Messages, in the order it confirmed them, except messages this Conn
// published itself (no self-echo) and messages addressed with To to other
// clients. A Conn never blocks the hub: when its queue reaches its bound
// (ConnectRequest.QueueBytes) the hub drops the Conn and Err reports
// SLOW_CONSUMER. A Conn that receives a message, or
// a frame of messages, it cannot decode delivers it (or returns it in a
// HistoryPage) with Message.Err set and carries on: one bad message must not
// cost the connection.
//
// All methods are safe for concurrent use. Methods called after the Conn is
// done return an *Error with code NETWORK_ERROR (when it was lost) or
// NOT_CONNECTED (when it was closed).
type Conn interface {
	// ClientID returns the identity the hub assigned: the From of every
	// message this Conn publishes.
	ClientID() string

	// Publish asks the hub to publish a message and returns it as confirmed,
	// with its id and timestamp.
	Publish(ctx context.Context, req PublishRequest) (Message, error)

	// Subscribe starts or updates the Conn's subscription to a topic (or a
	// topic pattern). Subscribing again to the same topic only replaces its
	// rate cap.
	Subscribe(ctx context.Context, req SubscribeRequest) error

	// Unsubscribe ends the Conn's subscription to topic. Unsubscribing from a
	// topic the Conn is not subscribed to is not an error.
	Unsubscribe(ctx context.Context, topic string) error

	// History returns one page of a topic's history, as the Conn's identity
	// may see it.
	History(ctx context.Context, req HistoryRequest) (HistoryPage, error)

	// Messages returns the channel the hub delivers on. It is never closed;
	// select on Done as well. After Done is closed the channel may still
	// hold messages that were delivered before. A Room takes the messages
	// of a BatchConn with Take instead, and never calls Messages.
	Messages() <-chan *Message

	// Done is closed when the Conn is lost or closed.
	Done() <-chan struct{}

	// Err returns nil while the Conn is live, and after Done why it ended.
	Err() error

	// Close ends the Conn and releases everything it held on the hub. It is
	// idempotent.
	Close() error
}

// BatchConn is a Conn that hands over its deliveries in batches: a Room
// takes every message waiting with one call, instead of one channel receive
// per message. It is optional; a Room uses it when its Conn has it, and
// Messages otherwise. transport/network's Client returns one, whose messages
// arrive a frame of many at a time.
//
// A BatchConn delivers each message once, either through Take or on
// Messages: a consumer uses one of the two for the life of the Conn.
type BatchConn interface {
	Conn

	// Ready returns a channel that receives a value whenever messages are
	// waiting for Take. It is never closed; select on Done as well. After
	// Done, Take may still return messages that arrived before.
	Ready() <-chan struct{}

	// Take appends every message waiting to dst, in the order the hub
	// confirmed them, removes them from the Conn's queue, and returns the
	// extended slice. Take never blocks; with nothing waiting it returns
	// dst as it is.
	//
	// The *Message values stay valid until the next call of Take, which
	// may reuse them: a caller that keeps a message past that copies the
	// Message (its Payload, To and Metadata stay valid; only the struct is
	// reused). A caller that takes until Take returns nothing lets the Conn
	// hold no messages while it idles.
	Take(dst []*Message) []*Message
}

// PublishRequest is one publish as it travels to the hub. The payload is
// already encoded JSON.
type PublishRequest struct {
	Topic    string
	Payload  []byte
	To       []string          // recipients; none means every subscriber
	Metadata map[string]string // delivered with the message
	// NoPersist keeps the message out of history (Persist(false)).
	NoPersist bool
	// IdempotencyKey identifies one logical publish across retries: the hub
	// confirms a repeated key from the same client with the message it
	// confirmed the first time, within its deduplication window.
	IdempotencyKey string

	// checked is set by Room.Publish once it validated Topic and Payload,
	// so that a hub in the same process need not validate them again.
	checked checkedMark
}

// SubscribeRequest is one wire subscription.
type SubscribeRequest struct {
	// Topic is a topic name, or a pattern (see package topic) for hubs that
	// support them.
	Topic string
	// Rate caps deliveries on this subscription, in messages per second.
	// Zero means no cap.
	Rate float64
}

// HistoryRequest asks for one page of a topic's history.
type HistoryRequest struct {
	Topic  string
	Before ID // messages older than Before; zero means not set
	After  ID // messages newer than After; zero means not set
	// Limit is the page size, 1 to MaxHistoryLimit. Zero means
	// DefaultHistoryLimit.
	Limit int
	From  []string // only messages from these senders; none means all
}

// History page sizes.
const (
	DefaultHistoryLimit = 25
	MaxHistoryLimit     = 50
)

// Action names what a client wants to do, for authorization hooks.
type Action string

// The actions.
const (
	ActionPublish   Action = "publish"
	ActionSubscribe Action = "subscribe"
	ActionHistory   Action = "history"
)

// Access is one request for authorization: who wants to do what, where.
type Access struct {
	Action   Action
	Room     string
	Topic    string // a topic name, or a pattern for ActionSubscribe
	ClientID string
}

// Clock is the source of time for hubs and Rooms. A nil Clock means the
// system clock. Tests inject a fake one to drive rate windows and expiry
// deterministically.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has elapsed, unless
	// stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether it
	// did so.
	Stop() bool
}

// SystemClock is the Clock of the operating system.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
