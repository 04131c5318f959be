// Package collections serves record-change events over a WebSocket in the
// dialect of backend-as-a-service realtime endpoints: clients connect with
// a token, subscribe to collections with an operations filter, and receive
// one event for every create, update and delete of a record.
//
// Use [NewServer] to serve the events of any pubsub.Transport (normally a
// memory.Hub) as an http.Handler, mounted where clients expect it; use
// [Publish] in the code that writes records, after each commit, to emit
// the change's event:
//
//	hub, _ := memory.New(memory.Options{})
//	v, _ := jwtauth.New(jwtauth.Options{Secret: secret})
//	srv, _ := collections.NewServer(hub, collections.Options{Authenticate: v.Authenticate, Authorize: v.Authorize})
//	http.Handle("/api/v1/realtime/ws", srv)
//
//	room, _ := pubsub.Join(ctx, hub, collections.DefaultRoom, nil)
//	// … after the write of post commits:
//	collections.Publish(ctx, room, "posts", collections.Create, post)
//
// # Events in the hub
//
// Every collection is one topic, named as the collection, of one room
// (Options.Room, default "collections"). An event is a message whose
// payload is the record (for a delete, the record's last state) and whose
// metadata "op" is create, update or delete. The hub assigns its id and
// timestamp and keeps it in history, so a client of the native protocol
// can catch up on a collection with that room's history of that topic.
// Collection names are 1 to 64 of [A-Za-z0-9_-] ([CheckCollection]).
//
// The Server sends every message of those topics that carries an "op" as
// an event, whoever published it: let only the code that writes records
// publish to the room. A network.Server on the same hub should refuse
// pubsub.ActionPublish in that room (examples/collections does), or any
// client of it could forge events.
//
// # Protocol
//
// Connect to ws://host/api/v1/realtime/ws?token=<token> (or send the token
// in an "Authorization: Bearer" header). A token that Options.Authenticate
// refuses gets an error frame, then the close code 4001 with the reason
// "UNAUTHENTICATED: <why>"; when the token expires during the connection,
// the server sends an error frame and closes with 4003, reason
// "UNAUTHENTICATED: token expired". Client frames:
//
//	→ {"action":"subscribe","collection":"posts","operations":["create","update","delete"]}
//	← {"status":"subscribed","collection":"posts"}
//	→ {"action":"unsubscribe","collection":"posts"}
//	← {"status":"unsubscribed","collection":"posts"}
//	→ {"action":"ping"}        (or the bare text ping)
//	← {"type":"pong"}
//
// "operations" is optional and means all three; subscribing again to a
// collection replaces its filter. Server frames, besides the replies:
//
//	← {"type":"heartbeat","timestamp":"2026-01-17T12:34:56.789Z"}
//	← {"type":"posts.create","timestamp":"2026-01-17T12:34:56.789Z","data":{"id":"550e8400-…","title":"New Post",…}}
//
// Heartbeats come every Options.Heartbeat (30 seconds). Events come in
// the order the hub confirmed them, only for the operations the client
// asked for; a delete event carries the record's last state. Timestamps are
// RFC 3339 in UTC with milliseconds; an event's is the time the hub
// confirmed it.
//
// A frame the server cannot serve gets an error frame and the connection
// stays usable:
//
//	← {"type":"error","code":"INVALID_REQUEST","message":"unknown action \"jump\": …","action":"jump"}
//
// with code INVALID_REQUEST (a malformed frame, an unknown action or
// operation, a bad collection name), PERMISSION_DENIED (Options.Authorize
// refused the collection) or TOO_MANY_SUBSCRIPTIONS (more than
// Options.MaxSubscriptions, default 100, collections at once).
//
// A connection that sends more than Options.MaxFrameRate frames per second
// (default 1000) is closed with 1008, one whose frame is larger than
// Options.MaxFrameBytes (default 4096) with 1009.
//
// # Concurrency
//
// Each connection has a goroutine that reads its frames and one that
// writes its events; a client that does not read its events is closed
// (4008) when its hub queue fills or a write takes longer than
// Options.WriteTimeout, and slows nobody else. Authenticate and Authorize
// run on the reading goroutine of the connection they serve.
package collections
