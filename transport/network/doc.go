// Package network serves a Plaza hub to other processes over WebSocket, and
// reaches such a hub from Go.
//
// Use [NewServer] to serve any [pubsub.Transport], normally a memory.Hub, as
// an http.Handler; use [NewClient] for a pubsub.Transport that Rooms in
// another process join through:
//
//	// The hub's process.
//	hub, _ := memory.New(memory.Options{})
//	srv := network.NewServer(hub, network.Options{Authenticate: checkToken})
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
//	GET /{room}/ws    WebSocket for the frame protocol below
//
// {room} is a room name with the characters of a topic name. Mount the Server
// under a prefix with http.StripPrefix and give the Client the same prefix:
// NewClient("ws://127.0.0.1:8080/plaza", nil).
//
// # Authentication
//
// [Options.Authenticate] turns a credential into an [Identity]; the hub sees
// the identity's ClientID and nothing the client claims. The credential comes
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
// [Options.Authorize] is asked before each publish, subscribe and history
// request; a refusal fails that request with PERMISSION_DENIED and leaves the
// connection open.
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
// Subscribe to a topic or a pattern ("user:*", "user:>"); "rate" caps
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
// "hasMore" says whether more messages lie beyond the page in the direction
// asked.
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
// oldest first, of any of the connection's subscriptions. A client never
// receives its own publishes.
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
// error frame. A connection holds at most [Options.MaxSubscriptions]
// subscriptions (TOO_MANY_SUBSCRIPTIONS). Browsers from origins other than the
// server's own need [Options.OriginPatterns].
//
// Deliveries never wait for a slow client: they queue, and a client that
// lets more than [Options.SendQueue] messages pile up, or does not take a
// write within [Options.WriteTimeout], is closed with [CloseSlowConsumer]
// (4008) while everyone else carries on. [Server.Shutdown] closes every
// connection with [CloseGoingAway] (1001). When the hub drops a connection
// the server closes it with [CloseHubEnded] (4009). Before a 4xxx close the
// server sends an error frame without an id that says why; the Go client
// turns it into its Conn's Err.
//
// # Efficiency
//
// Each delivered message is encoded once per server, not once per recipient
// ([Stats].Encoded counts), and whatever has queued for a connection goes out
// in one frame and one write call. An idle connection costs two parked
// goroutines with small stacks, small socket buffers and its hub connection;
// frame buffers come from a shared pool. With a hub queue of 256 messages that
// is about 11 KB of heap and stack per connection (BenchmarkIdleConnMemory).
//
// # Concurrency
//
// A Server serves each connection with two goroutines: one reads and
// answers requests in order, one writes deliveries. Options.Authenticate and
// Options.Authorize are called from many connections at once and should not
// block for long: a connection handles its next request only when the current
// one is answered. A Server, a Client and its Conns are safe for concurrent
// use.
package network
