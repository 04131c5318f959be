// Package pubsub is Plaza's client API: a Room publishes JSON messages to
// topics, subscribes to topics, and pages through their history, over any
// Transport.
//
// Use [Join] to enter a room through a Transport (transport/memory for an
// in-process hub, transport/network for a hub in another process), then
// [Room.Publish], [Room.Subscribe] and [Room.GetHistory]; use [Room.Leave] when
// done. [Subscribe] and [Decode] are typed variants for handlers that want a
// Go value instead of raw JSON.
//
//	room, err := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "alice"})
//	sub, err := room.Subscribe(ctx, "chat", func(m pubsub.Message) { fmt.Println(m.From, string(m.Payload)) })
//	msg, err := room.Publish(ctx, "chat", map[string]string{"text": "hello"})
//	page, err := room.GetHistory(ctx, "chat", pubsub.Limit(50))
//
// # Topics and payloads
//
// A topic is 1 to 128 characters from [a-zA-Z0-9_-:.], case-sensitive, with no
// reserved names (see package topic, which also defines the patterns that
// Subscribe accepts, like "user:*"). A payload is any value encoding/json can
// encode, at most 32 KiB (32768 bytes) once encoded, whose arrays and objects
// nest at most 64 levels ([MaxPayloadDepth]); a json.RawMessage is sent as it
// is. The Room checks both before anything leaves the process, and the hub
// checks them again, unless the request is the one a Room in the same process
// checked (see [CheckPublish]): nothing that crosses a network is trusted.
// The depth limit leaves room for the envelopes a message
// travels in, so that whatever the hub accepts, every client can decode.
//
// # Delivery
//
// The hub gives every message an id (a snowflake: time-ordered, unique per
// hub, and across the hubs of one Broker, a decimal string in JSON) and a timestamp, stores it in history unless
// it was published with Persist(false), and delivers it to every subscribed
// Room except the publisher's own (no self-echo: render your own message from
// Publish's result). Other Rooms with the same client id do receive it.
// To(ids...) restricts delivery, and history visibility, to the listed
// clients and the sender. Metadata travels beside the payload.
//
// Subscriptions are refcounted: however many handlers a Room registers on a
// topic, it holds one wire subscription for it, released when the last
// handler unsubscribes. RateLimit(n) caps one registration at n messages per
// second; when a burst exceeds it the oldest messages of the window are
// dropped and the newest delivered. The wire subscription carries the highest
// cap of its registrations, or none if any has none, and the hub honours it.
//
// # History
//
// GetHistory returns a page of at most 50 messages (25 by default), oldest
// first. Without options it is the newest page; Before(id) pages back and
// After(id) pages forward from any message id, and HasMore says whether more
// lie beyond the page in that direction. From(ids...) filters by sender on
// the hub, before paging. History never replays on Subscribe.
//
// # Failures
//
// Every error is an *[Error] with a [Code]; test with errors.Is against the
// sentinels, or errors.As to read the code, the message and Retriable.
//
//	code                    origin    cause                                   retriable
//	INVALID_TOPIC_NAME      Room/hub  the topic breaks the naming rules       no
//	PAYLOAD_TOO_LARGE       Room/hub  payload over 32 KiB once encoded        no
//	INVALID_PAYLOAD         Room/hub  not JSON-encodable / not valid JSON /   no
//	                                  nested more than 64 levels
//	NOT_CONNECTED           Room      the Room has left (or was refused)      no
//	RATE_LIMIT_EXCEEDED     hub       the topic's publish rate cap            yes
//	PERMISSION_DENIED       hub       the authorization hook said no          no
//	NETWORK_ERROR           Room/hub  the connection failed; retried first    yes
//	INVALID_LIMIT           Room/hub  history limit <= 0 or > 50              no
//	INVALID_HISTORY_OPTS    Room/hub  both Before and After, or an id of 0    no
//	UNAUTHENTICATED         hub       credentials missing, wrong or expired   no
//	TOO_MANY_SUBSCRIPTIONS  hub       the connection's subscription cap       no
//	SLOW_CONSUMER           hub       a connection fell too far behind        yes
//	INVALID_REQUEST         Room/hub  a malformed request or client id        no
//	INTERNAL_ERROR          hub       the hub failed (for example, storage)   no
//
// A publish or history call that fails with NETWORK_ERROR is tried again up
// to three times (JoinOptions.Retries). A publish carries one idempotency key
// across its attempts and the hub confirms a repeated key with the message it
// already published, so a retry never duplicates a message. With durable
// history that holds even when the hub stored the message and then
// restarted or crashed before replying: the key is stored with the message
// (see package transport/memory).
//
// When its connection is lost the Room reconnects by itself, with backoff and
// jitter, subscribes again to every topic with its current caps, and its
// handlers keep firing. With JoinOptions.GapFill it first hands the handlers
// the persisted messages it missed, from history, in id order and once,
// leaving out those from its own client id. Messages published with
// Persist(false) while it was away are gone.
// JoinOptions.OnState tells the application when that happens: connected,
// disconnected and why (a StateChange.Err with SLOW_CONSUMER when the Room
// fell too far behind), reconnected and whether the gap was recovered
// completely (StateChange.Recovered: false without GapFill, with pattern
// subscriptions, or when history could not be read to its end), in order
// with the handlers' messages.
//
// # Concurrency
//
// A Room and its Subscriptions are safe for concurrent use. Each Room runs its
// handlers on one goroutine of its own, one at a time, in the order the hub
// confirmed the messages; messages published one after another arrive in that
// order even across topics. Handlers may call the Room (publish, subscribe,
// unsubscribe, even Leave) but should not block for long: a slow handler
// delays the Room's other handlers. It never blocks a publisher or another
// Room; the hub bounds each connection's queue in bytes (ConnectRequest,
// memory.Options.QueueBytes) and, when it overflows, drops the connection as
// a slow consumer, which the Room then replaces (with GapFill, losing nothing
// that was persisted).
package pubsub
