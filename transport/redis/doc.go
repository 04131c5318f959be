// Package redis holds the Redis building blocks that let several Plaza hubs
// behave, for every client on every node, as one hub: one history, one id
// sequence per topic, one deduplication index, cluster-wide rate windows,
// client sockets usable on any node, and node ids that no two hubs share.
// It is a module of its own (github.com/plazahq/plaza/transport/redis), so
// that only programs that import it link the Redis client
// (github.com/redis/rueidis).
//
// Use [Open] to connect to Redis (7.0 or newer), then [NewBroker] for the
// hub's seam: set the [Broker] in memory.Options.Broker, and every hub on
// the same Redis and Prefix is a node of one hub:
//
//	rc, err := redis.Open(ctx, redis.Options{URL: "redis://127.0.0.1:6379"})
//	broker, err := redis.NewBroker(ctx, redis.BrokerOptions{Client: rc, NodeID: -1})
//	hub, err := memory.New(memory.Options{Broker: broker})
//	...
//	hub.Close(); broker.Close(); rc.Close()
//
// The Broker is built from parts that can be used on their own:
//
//   - [Client.Store] for the history every hub shares, a [history.KeyStore],
//     and for [Store.Publish], which confirms a message for every hub;
//   - [Client.Subscriber] to receive what any hub published on the topics
//     and patterns this hub's connections subscribe to;
//   - [Client.AcquireNode] to lease a snowflake node id;
//   - [Client.RateWindow] for per-minute caps counted across hubs;
//   - [Client.Sockets] for temporary client sockets any hub accepts;
//   - [Client.Ping] for a readiness probe.
//
// The hub keeps validation, authorization and local fan-out; the Broker
// confirms (deduplication, id, history, publish) and delivers every
// node's messages, this node's own included, to the hubs whose
// connections subscribed, in id order per topic. See memory.Broker for
// the contract.
//
// On one Redis server every subscription of a hub shares one connection,
// so a hub receives the messages of all topics in the order Redis
// published them: two publishes one after the other, to different topics
// of a room, reach every subscriber in that order. On Redis Cluster the
// order holds per topic (each topic is on one shard, and shards are
// independent).
//
// # Keys and sharding
//
// Everything about one room and topic lives under one hash tag,
// prefix:{len:room:topic}, so that on Redis Cluster a topic is on one
// shard and one Lua script (declared keys only, no cross-slot access)
// confirms a message atomically; its channel, prefix:{…}:c, is a sharded
// channel (SPUBLISH/SSUBSCRIBE) on the same shard. Topics spread over the
// shards by their hash slots, so adding shards adds publish and fan-out
// capacity; no key is shared by all topics on the publish path. See
// [Store] for the keys of a topic, [RateWindow] and [SocketStore] for
// theirs.
//
// Sharded pub/sub has no pattern form. A pattern subscription reads the
// room's classic channels instead, prefix:p:len:room:topic, through
// PSUBSCRIBE with the pattern in place of the topic (topic patterns are
// Redis globs, one to one). Publish feeds those channels only with
// StoreOptions.Patterns, for one more PUBLISH per message; on Redis Cluster
// a classic PUBLISH is broadcast to every node, so patterns cost in
// proportion to the cluster's size, and deployments that use them much
// should keep them to a few rooms.
//
// # Ordering: history order is delivery order
//
// The publish script runs atomically on the topic's shard: it reads the
// topic's last id and, if the proposed id is above it, gives the message
// that id, stores it, trims, and publishes it before any other script of
// that topic can run. If the proposed id is at or below the last one (the
// hub's clock is behind another's), the script stores nothing and answers
// with the last id; the hub's generator then proposes an id above it
// ([memory.Receiver].Propose), and [Store.Publish] runs the script again,
// deduplication checked first each time (16 attempts at most: each fails
// only if another publish of the topic came in between; then
// RATE_LIMIT_EXCEEDED, and nothing was stored). Ids therefore strictly
// increase per topic across hubs, and every subscriber of the topic, on
// any hub, receives its messages in id order, which is history's order:
// After(lastSeen) gap fill and Last-Event-ID resume never skip a message
// published by a hub with an older clock. Ids stay snowflakes,
// time-ordered and unique across every room and topic: every id carries
// the node id of the hub that made it, which only that hub holds (the
// lease), and a hub's generator never hands out an id twice. A raised id
// is ahead of its hub's clock by the few milliseconds that separate two
// hubs' clocks. (A [Store] used without a hub raises the id itself to the
// smallest id above the last with the proposed id's node bits; see
// Publication.Propose.)
//
// Messages published with Persist(false) get an id the same way and are
// published, but not stored.
//
// # Deduplication
//
// A publish with an idempotency key stores, in the same script, a key
// prefix:{…}:d:len:client:key that expires after the dedup window and holds
// the confirmed message. A retry of the publish, on the same hub or any
// other (for example after the first hub died before answering), finds it
// and gets the original message back: one copy in history, one delivery.
// The key also holds persisted messages' copy so that a retry is answered
// even after retention dropped the message; it costs the message's size
// for the window.
//
// # Failover
//
// While Redis cannot be reached every call fails with NETWORK_ERROR,
// which is retriable: a Room retries its publish with the same key, and
// the retry is confirmed once whichever hub it reaches. The client
// reconnects by itself (the first command on each connection that broke
// may still fail with NETWORK_ERROR once Redis is back, and is retried
// like the others); a [Subscriber] subscribes again and reports it
// (SubscriberOptions.OnResubscribe), since messages published in between
// were not delivered and must be filled from history: a hub with a
// [Broker] drops the connections holding those subscriptions, and their
// Rooms reconnect and fill the gap (pubsub.JoinOptions.GapFill). A
// publish whose reply an outage cut off may have been confirmed: its
// error is NETWORK_ERROR, and a retry with the same key returns the
// message rather than publish it twice. What Redis
// confirmed is as durable as its persistence: run it with appendonly yes
// and appendfsync always where a confirmed message must survive a crash
// of Redis itself, and with replicas (Sentinel or Cluster) where it must
// survive the loss of the machine.
//
// # Beyond one Redis
//
// One Redis serves on the order of hundreds of thousands of messages a
// second. Beyond that, Redis Cluster shards the topics by hash slot: each
// topic's publish script, history and channel stay on one shard, so
// shards add capacity until a single topic is the bottleneck (a topic's
// ids are one sequence, confirmed on one shard). The deployment-wide key
// that [Store.MaxID] reads is written only by Append (the history.Store
// path), never by Publish.
//
// # Concurrency
//
// Every type here is safe for concurrent use. Commands issued at the same
// time share connections and round trips (the client pipelines them). The
// callbacks of a [Subscriber] run on the Redis client's goroutines and
// must not block.
package redis
