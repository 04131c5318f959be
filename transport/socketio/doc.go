// Package socketio serves a Plaza hub in the dialect of a hosted real-time
// service: backends publish with POST /publish, browsers and apps subscribe
// with the stock socket.io-client (Socket.IO v4), and each app has an App ID,
// a publish key and a subscribe key. Code written for that service works
// against it as it is.
//
// Use [OpenRegistry] to keep the apps and their keys, [New] to serve them
// over any pubsub.Transport (usually a transport/memory hub), and [NewAdmin]
// for the admin API that creates, lists, rotates and deletes apps. A [Server]
// is an http.Handler for [Path] (/socket.io/) and [PublishPath] (/publish):
//
//	reg, _ := socketio.OpenRegistry("data/apps.db", socketio.RegistryOptions{})
//	srv, _ := socketio.New(hub, reg, socketio.Options{})
//	admin, _ := socketio.NewAdmin(reg, socketio.AdminOptions{Key: adminKey})
//	mux.Handle(socketio.Path, srv)
//	mux.Handle(socketio.PublishPath, srv)
//	mux.Handle("/admin/", http.StripPrefix("/admin", admin))
//	// on exit: srv.Close(), then the http.Server, the hub, reg.Close()
//
// examples/socketio is a complete program built this way.
//
// # Apps and keys
//
// An app is a Plaza room named by its App ID ("app_" and 16 characters). Its
// publish key ("pk_live_…") authorizes POST /publish and belongs on servers;
// its subscribe key ("sub_live_…") authorizes Socket.IO connections and never
// publishes. Keys carry 160 random bits, are stored as SHA-256 hashes and
// compared in constant time; [Registry.Create] and [Registry.Rotate] are the
// only times a key is seen in full. After a rotation the old key is refused;
// rotating the subscribe key, or deleting the app, also disconnects the app's
// Socket.IO clients.
//
// # Publishing
//
//	curl -X POST "$BASE/publish" \
//	  -H "Content-Type: application/json" \
//	  -H "X-App-Id: app_…" \
//	  -H "Authorization: Bearer pk_live_…" \
//	  -d '{"channel":"orders.42","event":"order.updated","data":{"id":42}}'
//
// The body is a JSON object: "channel" (a Plaza topic name: 1 to 128
// characters of [a-zA-Z0-9_-:.]), "event" (1 to [MaxEventLen] bytes, not one
// of the names Socket.IO or this package reserve, such as "connect" or
// "subscribed") and, optionally, "data" (any JSON, up to
// pubsub.MaxPayloadBytes). It answers {"data": {"id", "channel", "event",
// "timestamp"}}, or {"error": {"code", "message"}} with a status that fits:
// 401 UNAUTHENTICATED for a missing or unknown App ID or a wrong key, 403
// PERMISSION_DENIED for the subscribe key ("not the subscribe key"), 400 for
// a bad body, 413 for a large one, 429 RATE_LIMIT_EXCEEDED with Retry-After
// beyond the app's cap ([Options.PublishPerMinute], per rolling minute).
//
// # Subscribing
//
//	const socket = io(origin, {
//	  transports: ["websocket", "polling"],
//	  auth: { appId: "app_…", subscribeKey: "sub_live_…" },
//	});
//	socket.emit("subscribe", "orders.42");
//	socket.on("subscribed", (p) => console.log("Joined", p.channel));
//	socket.on("order.updated", (data) => console.log(data));
//
// Credentials go in the handshake auth. A bad one is refused with
// connect_error: err.message says why, err.data.code is UNAUTHENTICATED (no
// credentials, unknown app, wrong key) or PERMISSION_DENIED (the publish key,
// which must stay on servers). A client emits "subscribe" and "unsubscribe"
// with a channel name (or {channel}); the server answers "subscribed" or
// "unsubscribed" with {channel}, or "subscribe_error" with {channel, code,
// message}, and calls the acknowledgement callback, when there is one, with
// the same object ({channel, error} for a failure). Subscribing twice is
// subscribing once. Events arrive under the name of the publish's "event",
// with its "data" as the first argument (null when the publish had none).
// The Server serves the client bundle of socket.io-client [ClientVersion] at
// /socket.io/socket.io.js, as the Node server does.
//
// Browsers from origins other than the server's own need
// [Options.OriginPatterns]; their requests get 403 otherwise, on WebSocket
// and polling alike.
//
// # Plaza's view
//
// Everything goes through the hub, so Plaza's own clients (a Room, SSE, a
// WebSocket of transport/network) see the same messages: room = App ID,
// topic = channel, payload = data, metadata "event" ([MetadataEvent]) = event,
// From = [Options.PublisherID] ("publish-api"), and history keeps them. The
// other way round, a message a Plaza client publishes to topic T of room A
// reaches the Socket.IO clients of app A subscribed to channel T, under the
// event of its metadata "event", or [Options.DefaultEvent] ("message") when
// it has none, or none a client can listen for.
//
// # Reconnecting
//
// A socket.io-client whose connection drops reconnects by itself; the
// Server implements Socket.IO's connection state recovery with the hub's
// history instead of an in-memory packet buffer. Every event carries, as
// its last argument, an offset (the newest message id fanned out and a
// count, as "id.count") that socket.io-client keeps and sends back when it
// reconnects; a client that comes back within
// [Options.RecoveryWindow] (2 minutes) is subscribed again to its channels,
// without emitting "subscribe", and receives from history what was published
// to them meanwhile (at most [Options.RecoveryLimit] per channel, the newest),
// then live messages, each once and in order; socket.recovered is true.
// That includes a message of one of its channels that reached the Server
// after a newer one of another channel, and after the connection dropped
// (ids increase per channel, not across channels). Its key is checked
// again first. A client away longer, or after a restart of the
// server (sessions live in memory), connects as a new one and subscribes
// again. A handler written as (data) => … ignores the extra argument.
//
// # Limits
//
// A client holds at most [Options.MaxSubscriptions] channels
// (TOO_MANY_SUBSCRIPTIONS). Deliveries never wait for a slow client: one
// with more than [Options.SendQueue] packets waiting is disconnected, as a
// lost connection would be, and recovers what it missed when it reconnects.
// A client may send at most 64 KiB at once.
//
// All the clients of an app share one hub connection (see Efficiency), so a
// hub's limit on the subscriptions of one connection (memory.Options or
// network.Options MaxSubscriptions) caps the distinct channels of the whole
// app: once one client has subscribed to that many, the others' subscribes
// to new channels fail with TOO_MANY_SUBSCRIPTIONS. Serve this dialect from a
// hub without that limit, as memory.New's zero Options are.
//
// # Efficiency
//
// The Server holds one hub connection per app that has had Socket.IO
// clients since it started, as [Options.ListenerID], subscribed once to
// each channel that has clients now, and hands each message to Socket.IO once per channel, which
// encodes it once for all of them. Most of the cost per delivery is the
// library's: on loopback, with 1000 clients of one channel, the Server spends
// about four times the CPU per delivery of transport/network's protocol on
// the same hub (BenchmarkFanout).
//
// # Concurrency
//
// A Server, a Registry and the admin handler are safe for concurrent use. A
// Server starts goroutines of its own and of its Socket.IO library; Close
// ends its clients and hub connections. Close Servers before their Registry.
//
// The library (engine/v3 v3.0.6) refuses a WebSocket handshake that
// outlived its upgrade timeout (10 s), or whose connection closed, by
// writing a close frame while the transport's own goroutine may still be
// writing the OPEN packet it had queued: two concurrent writers on one
// gorilla/websocket connection, a data race (and at times its "concurrent
// write" panic, which net/http recovers). The Server avoids it by making
// each WebSocket handshake wait until its OPEN packet was written (at most
// 2 seconds, or 100 ms once the connection closed), before the library
// decides; the fix upstream would be for
// the handshake to drain or close the transport's write queue before
// writing the close frame.
//
// The Socket.IO protocol is github.com/zishang520/socket.io/servers/socket/v3.
package socketio
