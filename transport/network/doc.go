// Package network serves a Plaza hub to other processes and to browsers
// over WebSocket, Server-Sent Events and plain HTTP, and reaches such a hub
// from Go.
//
// Use [NewServer] to serve any [pubsub.Transport], normally a memory.Hub, as
// an http.Handler; use [NewClient] for a pubsub.Transport that Rooms in
// another process join through, and [NewClientURLs] when several servers
// serve one hub (see "Several nodes"):
//
//	// The hub's process.
//	hub, _ := memory.New(memory.Options{})
//	srv := network.NewServer(hub, network.Options{Keys: roomKeys})
//	go http.ListenAndServe("127.0.0.1:8080", srv)
//
//	// A client's process.
//	t, _ := network.NewClient("ws://127.0.0.1:8080", nil)
//	room, _ := pubsub.Join(ctx, t, "lobby", &pubsub.JoinOptions{Token: token, GapFill: true})
//
// A Room on a Client behaves as one on the hub itself: it passes the same
// conformance suite (package transporttest). When the connection is lost the
// Room reconnects, subscribes again, fills the gap from history and retries
// publishes with the same idempotency key, so a retried publish is delivered
// once.
//
// # Routes
//
// {room} is a room name and {topic} a topic name, both with the characters
// of topic names; with ?pattern=true, {topic} may be a pattern, a glob as
// in Redis PSUBSCRIBE ("user:*" matches "user:123:events"; see package
// topic). "*" needs no escaping in a path; "?", the one-character wildcard,
// must be written %3F, or it starts the query.
//
//	GET  /{room}/ws                         WebSocket for the frame protocol below
//	POST /{room}/pubsub/{topic}/publish     publish a message
//	GET  /{room}/pubsub/{topic}/subscribe   subscribe with Server-Sent Events
//	GET  /{room}/pubsub/{topic}/ws          single-topic WebSocket
//	GET  /{room}/pubsub/{topic}/client      create a temporary client socket path
//	GET  /{room}/s/{token}                  connect to a temporary client socket
//	GET  /{room}/pubsub/{topic}/history     one page of history
//	POST /{room}/publish/{topic}            legacy alias of …/pubsub/{topic}/publish
//	GET  /{room}/subscribe/{topic}          legacy alias of …/pubsub/{topic}/subscribe
//	GET  /{room}/ws/subscribe/{topic}       legacy alias of …/pubsub/{topic}/ws
//	GET  /plaza.js                          the JavaScript client (room.pubsub), an ES module
//	GET  /plaza.d.ts                        its TypeScript declarations
//
// plaza.js ([ScriptPath]) gives browsers and Node the API of a Room over the
// frame protocol below; its README is in js/. Room routes have at least two
// segments, so the script's paths never shadow a room.
//
// Mount the Server under a prefix with http.StripPrefix and give the Client
// the same prefix: NewClient("ws://127.0.0.1:8080/plaza", nil). The curl
// lines below run against `go run ./examples/server`, whose keys are pk-dev
// (publish) and sk-dev (subscribe).
//
// # Plain HTTP
//
// Every answer that is not a stream is JSON: {"data": …} on success,
// {"error": {"code": "…", "message": "…"}} on failure, with the codes of
// pubsub.Code and a status that fits them: 400 for invalid input
// (INVALID_TOPIC_NAME, INVALID_PAYLOAD, INVALID_LIMIT, INVALID_HISTORY_OPTS,
// INVALID_REQUEST), 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 for an
// unknown route, 405 for a known path with another method (with Allow), 413
// PAYLOAD_TOO_LARGE, 429 RATE_LIMIT_EXCEEDED with a Retry-After header in
// seconds, 503 NETWORK_ERROR (the server is shutting down, the hub is
// closed). Credentials travel as for WebSockets (see Authentication): an
// Authorization header, with or without "Bearer ", or ?token=.
//
// Publish: the body is {"message": <any JSON>} with optional "to" (client
// ids), "metadata" (string values), "persist" (false keeps the message out
// of history) and "idempotencyKey" (or an Idempotency-Key header); with
// Content-Type text/plain the whole body is the message, a string. The
// answer is the message as the hub confirmed it:
//
//	curl -X POST http://127.0.0.1:8080/lobby/pubsub/alerts/publish \
//	     -H "Authorization: Bearer pk-dev" -H "Content-Type: application/json" \
//	     -d '{"message": "Server restarted"}'
//	{"data":{"id":"1904829283928846336","topic":"alerts","from":"key-…","payload":"Server restarted","timestamp":"2026-03-15T12:00:00.123Z","persisted":true}}
//
// A message travels as JSON everywhere, as it was published: a string
// stays that string ("payload":"Server restarted"), an object stays that
// object.
//
// History: before or after (a message id), limit (1 to 50, default 25) and
// from (a sender; repeat it for more), as in Room.GetHistory, with its error
// codes and its rule: a parameter left out (or empty) takes its default, one
// given must be valid, so limit=0 is INVALID_LIMIT and before=0
// INVALID_HISTORY_OPTS, as in a history frame. The page is oldest first, and
// hasMore says whether more lie beyond it in the direction asked.
//
//	curl "http://127.0.0.1:8080/lobby/pubsub/alerts/history?limit=2&before=1904829283928846336" \
//	     -H "Authorization: Bearer sk-dev"
//	{"data":{"messages":[…],"hasMore":true}}
//
// # Server-Sent Events
//
// GET …/subscribe answers with text/event-stream: one event per message,
// whose id is the message id and whose data is the message object, on one
// line. Browsers cannot set headers on an EventSource, so pass the key as
// ?token=:
//
//	curl -N "http://127.0.0.1:8080/lobby/pubsub/alerts/subscribe?token=sk-dev"
//	curl -N "http://127.0.0.1:8080/lobby/pubsub/user:*/subscribe?pattern=true&token=sk-dev"
//
//	new EventSource("/lobby/pubsub/alerts/subscribe?token=sk-dev").onmessage = (e) => console.log(JSON.parse(e.data).payload);
//
// The stream is subscribed before the response begins. A client that
// reconnects with a Last-Event-ID header (EventSource sends it by itself) or
// a lastEventId parameter gets, before the live messages, every persisted
// message of the topic after that id from history, and no live message twice.
// Pattern streams cannot be resumed that way, since history is kept per topic:
// they start with the live messages, leaving out those at or below the id.
// A comment line (":") goes out every [Options.Heartbeat]. Each write has
// [Options.WriteTimeout] and the deadlines of the http.Server are lifted, so
// no read or write timeout ends a healthy stream. A stream that falls more
// than [Options.QueueBytes] behind, or whose write does not finish in
// time, ends with SLOW_CONSUMER; publishers never wait for it. The last event
// of a stream the server ends says why:
//
//	event: error
//	data: {"error":{"code":"SLOW_CONSUMER","message":"…"}}
//
// # Single-topic sockets
//
// GET …/{topic}/ws (and its legacy alias, and the temporary client sockets
// below) is a WebSocket that receives {topic}, or with ?pattern=true every
// topic of the pattern, from the moment its credential is accepted. Each
// message arrives as a WebSocket message of its own holding the message
// object, the same JSON as an event's data and as a publish's answer, so
// that a browser needs nothing but JSON.parse(e.data). Several messages may
// share one socket write; each is still its own WebSocket message:
//
//	{"id":"1904829283928846336","topic":"alerts","from":"key-…","payload":"Server restarted","timestamp":"2026-03-15T12:00:00.123Z","persisted":true}
//
// The server's other frames are JSON objects too, with "v":1 and a "type",
// which a message object never has: the welcome and then
// {"v":1,"type":"subscribed","topic":"alerts"} once the subscription is in
// place (publishes from then on are delivered); an error frame without an
// id just before the server closes the socket, saying why; and the replies
// to what the client sends. The socket only receives: a ping request gets
// its pong and an auth frame renews the credential, but publish,
// subscribe, unsubscribe and history requests get an error frame with
// PERMISSION_DENIED. Heartbeats are WebSocket ping frames, which browsers
// answer without showing them. The credential comes as on GET /{room}/ws,
// so a browser sends it in the first frame:
//
//	ws = new WebSocket("ws://127.0.0.1:8080/lobby/pubsub/alerts/ws");
//	ws.onopen = () => ws.send(JSON.stringify({auth: "sk-dev"}));
//	ws.onmessage = (e) => { const m = JSON.parse(e.data); if (m.type === undefined) console.log(m.payload); };
//
// GET /{room}/ws, the frame protocol below, batches messages into
// "messages" frames instead.
//
// # Temporary client sockets
//
// GET …/{topic}/client creates a path that opens a single-topic socket
// without a key, for a browser that should not hold one. Query parameters:
// pattern (false), max_dur (ms the connection may last, 0 = unlimited,
// default 0), expiry or ttl (ms within which connections must start, 0 to
// 600000, default 300000; 0 makes a path that has already expired) and
// max_uses (successful connections, 0 = unlimited, default 1). Either key may
// create one. The path is relative to the Server's root:
//
//	curl "http://127.0.0.1:8080/lobby/pubsub/alerts/client?max_dur=60000&ttl=300000&max_uses=1" \
//	     -H "Authorization: Bearer sk-dev"
//	{"data":{"path":"/lobby/s/3q2-…","topic":"alerts","pattern":false,"expiresAt":"2026-03-15T12:05:00Z","maxUses":1,"uses":0,"maxDurMs":60000}}
//
//	ws = new WebSocket("ws://127.0.0.1:8080" + path);
//
// The token in the path is 192 random bits, works only in its room and only
// for its topic or pattern, and stands for the identity of whoever created
// it. A handshake that cannot use it is refused before the upgrade, with
// an HTTP status and the error envelope: 404 invalid_client_socket (no such
// token in this room), 410 expired_client_socket (its ttl is over) or 410
// exhausted_client_socket (its max_uses are used up); a browser sees only a
// failed WebSocket, and a plain GET of the path (which uses nothing) tells it
// why, or describes the socket when it can still be used. A connection
// that lasts max_dur gets an error frame with the code max_duration_reached
// and a close with [CloseMaxDuration] (4004), whose reason says the same.
// Expired and used-up sockets are forgotten ten minutes after they expire,
// or at once when a limit is reached; at most [Options.MaxClientSockets]
// exist at once (in the default [MemorySocketStore]), and
// [Options.MaxClientSocketsPerRoom] per room. [Options.Sockets] keeps them
// elsewhere, in a store several servers share.
//
// # Keys
//
// With [Options.Keys] every room (or tenant) has its own publish keys and
// subscribe keys ([RoomKeys]). A subscribe key subscribes, reads history
// and creates client sockets, and can never publish (403
// PERMISSION_DENIED); a publish key can do all of that and publish. A
// credential is the key, or "<key>:<name>" to choose the client id; a bare
// key has a client id of its own, the same on every request. HTTP publishes
// are capped per room over a rolling minute ([Options.PublishPerMinute],
// [RoomKeys.PublishPerMinute]): beyond the cap they fail with 429
// RATE_LIMIT_EXCEEDED and a Retry-After of the seconds until the oldest
// publish of the window leaves it.
//
// # Authentication
//
// [Options.Authenticate] (or [Options.Keys]) turns a credential into an
// [Identity]; the hub sees the identity's ClientID and nothing the client
// claims. The credential comes
// from, in this order: an "Authorization: Bearer <token>" header, a ?token=
// query parameter, or, for browsers, which cannot set WebSocket headers, the
// first frame:
//
//	{"auth": "<credential>"}
//
// which may also be written {"v":1,"type":"auth","id":"1","auth":"…"}. A
// client without credentials in the request must send it within
// [Options.AuthTimeout]. When the credential is accepted the server's first
// frame is the welcome; otherwise an error frame and a close with
// [CloseUnauthenticated]. Credentials with an Expires close the connection
// when they expire ([CloseCredentialsExpired]), unless the client sends a
// fresh auth frame for the same client id before then.
//
// For JSON Web Tokens, package transport/network/jwtauth (a module of its
// own, so that only programs that import it link the JWT library) provides
// both hooks: its Verifier.Authenticate makes the token's sub the client id
// and its exp the Expires, and its Verifier.Authorize applies the token's
// rooms, actions and topics claims.
//
// [Options.Authorize] is asked before each publish, subscribe and history
// request; a refusal fails that request with PERMISSION_DENIED and leaves the
// connection open. Plain HTTP requests and event streams are authorized the
// same way, each request on its own.
//
// # Frames
//
// Every frame is a WebSocket text frame holding one JSON object, so a browser
// needs nothing but WebSocket and JSON.parse. Every frame the server sends has
// "v": 1, the protocol version; a client may leave "v" out, and a frame with
// another version is refused. A request may carry an "id", a string of 1 to
// 19 decimal digits; the reply to it, or the error, carries the same id.
// Message ids are decimal strings too, since JavaScript numbers cannot hold
// them exactly. Unknown members are ignored.
//
// Publish (the reply is the message as the hub confirmed it; "to",
// "metadata", "persist" and "idempotencyKey" are optional):
//
//	→ {"v":1,"type":"publish","id":"1","topic":"chat","payload":{"text":"hi"},"to":["bob"],"metadata":{"lang":"en"},"persist":true,"idempotencyKey":"k-42"}
//	← {"v":1,"type":"published","id":"1","message":{"id":"1904829283928846336","topic":"chat","from":"alice","to":["bob"],"payload":{"text":"hi"},"metadata":{"lang":"en"},"timestamp":"2026-03-15T12:00:00.123Z","persisted":true}}
//
// Subscribe to a topic or a pattern ("user:*", "*:events"); "rate" caps
// deliveries on this subscription, in messages per second (0 or absent: no
// cap). Subscribing again to the same topic only changes its rate.
//
//	→ {"v":1,"type":"subscribe","id":"2","topic":"chat","rate":5}
//	← {"v":1,"type":"subscribed","id":"2","topic":"chat"}
//
// Unsubscribe:
//
//	→ {"v":1,"type":"unsubscribe","id":"3","topic":"chat"}
//	← {"v":1,"type":"unsubscribed","id":"3","topic":"chat"}
//
// History: one page, oldest message first; at most one of "before" and
// "after"; "limit" 1 to 50 (default 25); "from" keeps only those senders.
// A member left out (or null) takes its default; one given must be valid:
// "limit": 0 fails with INVALID_LIMIT and "before": "0" with
// INVALID_HISTORY_OPTS, as over HTTP. "hasMore" says whether more messages
// lie beyond the page in the direction asked.
//
//	→ {"v":1,"type":"history","id":"4","topic":"chat","before":"1904829283928846336","limit":2,"from":["alice"]}
//	← {"v":1,"type":"history","id":"4","messages":[{"id":"1904829270000000000","topic":"chat","from":"alice","payload":"older","timestamp":"2026-03-15T11:59:57Z","persisted":true}],"hasMore":false}
//
// Ping, to check the connection from a browser (the server's own heartbeat
// uses WebSocket ping frames, which browsers answer without help):
//
//	→ {"v":1,"type":"ping","id":"5"}
//	← {"v":1,"type":"pong","id":"5"}
//
// Welcome, the server's first frame, with the identity the credentials
// proved and the limits that apply ("expires" only when the credentials
// expire; "id" only when the auth frame had one):
//
//	← {"v":1,"type":"welcome","clientId":"alice","expires":"2026-03-15T13:00:00Z","heartbeatMs":30000,"maxFrameBytes":65536,"maxSubscriptions":100}
//
// Messages, pushed to a subscriber; one frame carries one or more messages,
// oldest first, of any of the connection's subscriptions (single-topic
// sockets send each message object alone instead). A client never receives
// its own publishes.
//
//	← {"v":1,"type":"messages","messages":[{"id":"1904829283928846336","topic":"chat","from":"alice","payload":{"text":"hi"},"timestamp":"2026-03-15T12:00:00.123Z","persisted":true}]}
//
// Error, in reply to a request (with its id) or about the connection (without
// one, just before the server closes it). "code" is one of the pubsub.Code
// strings, the same ones Go callers see; "retryAfterMs" comes with
// RATE_LIMIT_EXCEEDED.
//
//	← {"v":1,"type":"error","id":"1","error":{"code":"PERMISSION_DENIED","message":"publish to mods-only: not a moderator"}}
//	← {"v":1,"type":"error","id":"6","error":{"code":"RATE_LIMIT_EXCEEDED","message":"…","retryAfterMs":1000}}
//	← {"v":1,"type":"error","error":{"code":"INVALID_REQUEST","message":"malformed JSON frame: …"}}
//
// # Limits and close codes
//
// A frame larger than [Options.MaxFrameBytes] closes the connection with
// [CloseTooBig] (1009); a binary frame with [CloseUnsupportedData] (1003);
// frames faster than [Options.MaxFrameRate] with [ClosePolicyViolation]
// (1008). Malformed JSON, unknown types, bad ids and invalid fields only get an
// error frame.
//
// A payload is at most 32 KiB and nests arrays and objects at most 64 levels
// ([pubsub.MaxPayloadDepth]); a deeper one fails with INVALID_PAYLOAD, over
// WebSocket and HTTP alike (400), and is stored nowhere. Every frame, event
// and answer wraps a payload in at most 4 more levels (the HTTP history
// answer; an event's data adds 1, a "messages" or "history" frame 3), so
// whatever the server accepts, encoding/json, JSON.parse and any client can
// decode. The Go client does not count on it: a message it cannot decode
// (from a server that breaks these rules, or history stored before them)
// costs only itself. The Room counts it in RoomStats.Undecodable, reports it
// to JoinOptions.OnError as INVALID_PAYLOAD and skips it, live, in a gap
// fill or in a history page; the connection stays, and gap fill goes on from
// past it. A reply it cannot decode fails its call with INVALID_PAYLOAD. The server holds at most [Options.MaxConnections] WebSockets
// and event streams together; beyond that a new one gets HTTP 503 with
// Retry-After before any upgrade. A connection holds at most [Options.MaxSubscriptions]
// subscriptions (TOO_MANY_SUBSCRIPTIONS). Browsers from origins other than the
// server's own need [Options.OriginPatterns].
//
// Deliveries never wait for a slow client: they queue in the hub, in a
// queue that grows on demand up to [Options.QueueBytes] (by default the
// hub's bound, 1 MiB with transport/memory), and a client that lets more
// pile up is closed with [CloseSlowConsumer] (4008), after a SLOW_CONSUMER
// error frame, while everyone else carries on. One that does
// not take a write within [Options.WriteTimeout] is dropped without a close
// frame, which it could not read anyway; its Go client reports
// NETWORK_ERROR. [Server.Shutdown] closes every
// connection with [CloseGoingAway] (1001). When the hub drops a connection
// the server closes it with [CloseHubEnded] (4009), and a temporary client
// socket at its max_dur with [CloseMaxDuration] (4004, max_duration_reached).
// Before a 4xxx close the server sends an error frame without an id that says
// why, and the close reason repeats its code and message; the Go client turns
// it into its Conn's Err.
//
// # Efficiency
//
// Each delivered message is encoded once per server for WebSockets and once
// for event streams, not once per recipient ([Stats].Encoded and
// EncodedEvents count), and whatever has queued for a connection or stream
// goes out in one frame, or one run of events, and one write call. With 1000
// receivers on loopback an event stream delivers about 0.85 times as many
// messages per second as a WebSocket (BenchmarkSSEFanout). An idle connection costs two parked
// goroutines with small stacks, small socket buffers and its hub connection;
// frame buffers come from a shared pool. A hub queue holds no backlog while
// its connection keeps up, whatever its bound: with transport/memory's
// defaults that is about 14 KB of heap and stack per connection
// (BenchmarkIdleConnMemory).
//
// # Observing a server
//
// [Server.Stats] counts connections, streams and encodings; Options.Logger
// logs every connection and event stream as it opens and closes, with its
// room, client id, remote address and (for a WebSocket) close code, and
// never a payload or a credential; Options.OnConnEvent hands the same
// events ([ConnEvent]) to the program, to count them. examples/server wires
// them to Prometheus metrics.
//
// # The Go client's receive path
//
// A [Client] Conn reads its WebSocket on one goroutine. It decodes each
// "messages" frame in one pass without reflection (a frame it does not
// recognize, such as one with escapes in a topic, goes through encoding/json
// with the same result) and queues the messages for the Room, which takes
// all that wait at once and runs the handlers on its own goroutine: no
// other handoff per message. The payloads of a frame get one allocation;
// the Message structs are recycled once the Room has handed them out (a
// handler receives a copy). Frames are read into buffers from a shared
// pool, so an idle Conn holds none. A payload stays valid after its handler
// returns; the payloads of one frame share their memory, so a handler that
// keeps one keeps its frame's payloads (at most some 64 KiB) alive.
//
// The queue is bounded in bytes of encoded messages ([DialOptions].QueueBytes,
// [DefaultClientQueueBytes] by default) and grows only as messages wait. A
// Conn whose handlers fall that far behind ends with SLOW_CONSUMER, as a
// hub connection would, and its Room reconnects (with GapFill, losing nothing
// that was persisted). BenchmarkClientReceive measures the path from a frame
// to the handler, per message.
//
// # Several nodes
//
// Several Servers in front of one scaled-out hub (hubs over one Redis) act
// as one when they share the state a Server keeps between requests: give
// each the same [Options.Sockets] ([SocketStore]: temporary client
// sockets) and [Options.PublishWindow] ([PublishWindow]: the per-minute cap
// of HTTP publishes). Both default to stores in the Server's own memory;
// package statetest is the conformance suite of any other. When a shared
// store cannot be reached, the requests that need it fail with
// NETWORK_ERROR (503, retriable): a cap is never skipped.
//
// A Go client lists the nodes with [NewClientURLs]. Connect tries them one
// at a time, starting from a random node and then from the next one on
// each Connect, so that Rooms spread; a node that failed or dropped a
// connection in the last 30 seconds is tried last, so that a Room whose
// node died reconnects to another. Browsers and Node (plaza.js takes one
// URL) reach the nodes through a load balancer that passes WebSocket
// upgrades and event streams through.
//
// # Concurrency
//
// A Server serves each WebSocket connection with two goroutines: one reads
// and answers requests in order, one writes deliveries. An event stream runs
// on the goroutine net/http gave its request; a plain HTTP request opens a
// hub connection for as long as it takes. Options.Authenticate and
// Options.Authorize are called from many connections at once (and
// Options.OnConnEvent from their goroutines) and should not block for long: a connection handles its next request only when the current
// one is answered. A Server, a Client and its Conns are safe for concurrent
// use; so must be a SocketStore or PublishWindow, which every connection
// and request of a Server may call at once.
package network
