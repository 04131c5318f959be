// Package plaza is an embeddable real-time pub/sub engine: rooms whose
// clients publish JSON messages to string topics, subscribe to topics, and
// page through topic history.
//
// This package holds only this overview. The parts:
//
//   - pubsub: the client API. Join a room with pubsub.Join, then Publish,
//     Subscribe and GetHistory on the Room. It also defines the Transport
//     contract that every hub implements, and the error codes.
//   - topic: topic names and subscription patterns, globs as in Redis
//     PSUBSCRIBE ("user:*" matches "user:123:events").
//   - history: where a hub keeps messages (in memory, or durable on disk)
//     and the historytest conformance suite for stores.
//   - transport/memory: the hub, in process. Start here: memory.New gives a
//     pubsub.Transport that Rooms in the same program share, and that tests
//     can use without a network.
//   - transport/network: the same hub served over WebSocket (and HTTP) to
//     other processes and browsers, and a client Transport that reaches it.
//   - transport/transporttest: the conformance suite every Transport passes.
//   - transport/socketio (a module of its own): the hub in the dialect of a
//     Socket.IO service, for socket.io-client subscribers and backends
//     that POST /publish with an App ID and a publish key.
//
// A minimal program:
//
//	hub, _ := memory.New(memory.Options{})
//	defer hub.Close()
//	alice, _ := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "alice"})
//	bob, _ := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "bob"})
//	bob.Subscribe(ctx, "chat", func(m pubsub.Message) { fmt.Println(m.From, string(m.Payload)) })
//	alice.Publish(ctx, "chat", map[string]string{"text": "hi"})
//
// See examples/chat for that program in full.
package plaza
