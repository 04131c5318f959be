// Package memory is an in-process Plaza hub: a [pubsub.Transport] whose
// connections live in the same process as the hub that serves them.
//
// Use [New] to create a [Hub], pass it to pubsub.Join (or serve it to remote
// clients with transport/network), and call [Hub.Close] when done. Use
// [Hub.Stats] to watch what the hub does and [Hub.Disconnect] to cut a
// client off as a network failure would, for example to test reconnects.
//
// A publish is validated ([pubsub.CheckPublish]: the topic and payload of a
// request a Room built are not walked a second time), authorized ([Options.Authorize]), checked against
// the room and topic's rate cap ([Options.PublishRate]), deduplicated by its
// idempotency key ([Options.DedupWindow]), stamped with an id and a time,
// appended to history ([Options.Store]) unless it asks not to be, and fanned
// out to every subscribed connection but the publisher's own.
//
// # Delivery and overflow
//
// Every connection has a delivery queue: the channel its Messages method
// returns, which holds [ChannelSlots] (128) messages, and behind it a
// backlog bounded in bytes ([Options.QueueBytes], 1 MiB unless set, or the
// connection's own [pubsub.ConnectRequest].QueueBytes) that grows on demand
// and that a goroutine of the connection moves into the channel, in order,
// while there is one. While the channel has room a delivery is a plain
// send on it; an idle connection holds no more than the channel. A message
// in the backlog counts against the bound with the lengths of its payload,
// topic, sender, recipients and metadata plus [MessageOverhead], so a
// connection holds at most its bound plus 128 messages.
//
// Publish never waits for a subscriber: when a message would take a
// connection beyond its bound, the hub drops that connection instead. Its
// Done channel closes, Err reports SLOW_CONSUMER, its subscriptions end and
// its backlog is let go; other connections are not affected. The Messages
// channel is never closed, because a publisher may be sending on it at that
// moment; select on Done as well. After Done it still holds what was in it,
// at most 128 messages.
//
// The messages of one topic reach every subscriber in id order. A message
// reaches a connection once, even when several of its subscriptions (a
// topic and patterns such as "user:*") match it. Every receiver of one
// publish gets the same *pubsub.Message, so a server that writes them to the
// network can encode each message once; receivers must treat it as
// read-only.
//
// A subscription with a rate ([pubsub.SubscribeRequest].Rate) lets a burst of
// up to the rate through at once and then holds messages, keeping the newest
// second's worth and dropping older ones (see [Stats].CapDropped), and
// releases them as the rate allows.
//
// The hub keeps the Payload, To and Metadata of a [pubsub.PublishRequest] in
// the message it delivers and returns, without copying them: do not modify
// them after Publish.
//
// # Durable history
//
// With a store that waits for stable storage (history.OpenBolt, or any
// history.Pipeliner), a persisted publish does not hold its topic while its
// commit is written: the hub queues it for the store's next commit in id
// order, releases the topic, waits for the commit, and then fans it out
// behind the publishes queued before it. Publishers of one topic (and, with
// history.OpenBolt, of every topic) therefore share fsyncs, messages still reach subscribers in id order, and Publish
// returns only once the message is on disk. A retry of a publish still
// waiting for its commit waits for it and returns the same message.
//
// Idempotency keys survive the hub. With a store that keeps them
// (history.KeyStore, as both stores of package history do), the key of a
// persisted publish is committed with its message, and a hub opened later
// on the same store reads a topic's keys back when the first keyed publish
// reaches that topic: those within the window ([Options.DedupWindow], at
// most [Options.DedupKeys] per topic), newest first. So when a hub commits
// a publish and stops or crashes before its reply is sent, the retry to the
// next hub is confirmed with the stored message instead of being published
// again. Keys are read back only during the new hub's first window, after
// which none of the old ones can still count; the keys of publishes kept
// out of history live in memory only.
//
// # Ids
//
// Message ids are snowflake ids (package github.com/bwmarrin/snowflake)
// with the node of [Options.NodeID] (with a Broker, its lease). Those of one hub strictly increase,
// even when the clock steps back, and always lie above the highest id the
// store held when the hub started, so a restarted hub never reuses an id.
// With a Broker a publish whose id is not above its topic's last one is
// given another id of this hub's generator above it ([Receiver].Propose),
// so ids stay unique across the topics and rooms of every node.
//
// # Several nodes
//
// With a [Broker] ([Options.Broker]; transport/redis has one on Redis) the
// hub is one node of several that behave as one hub. A publish is
// validated, authorized and capped on the node that receives it
// (PublishRate per node, PublishPerMinute for all nodes through
// Broker.Allow), then confirmed by the Broker: deduplicated for every node,
// given an id above the topic's last one whichever node made it, stored in
// the shared history and published to the other nodes. Subscribers on
// every node, this one included, receive it when the Broker delivers it,
// shortly after Publish returns ([Hub.WaitDelivered] waits for it): one
// engine fans out both. History queries read the Broker's store; the node
// id is the Broker's lease, and a hub whose lease is lost refuses to
// publish ([ErrLeaseLost]). A connection's subscriptions take the
// Broker's for their room and topic or pattern, the first subscribing it
// and the last unsubscribing it. When the Broker reports an interrupted
// subscription ([Receiver].Missed), the hub drops the connections that
// hold it with NETWORK_ERROR, so that their Rooms reconnect and fill the
// gap from history. [Hub.Ready] reports whether the Broker can be reached.
//
// # Contexts
//
// Connect and every method of a connection that takes a context check it
// first: when it is done they fail with an error that wraps ctx.Err(), so
// errors.Is(err, context.Canceled) reports true. The context is then passed
// to Options.Authorize and to the Store; the hub itself never waits.
//
// # Concurrency
//
// A Hub and its connections are safe for concurrent use. Publishes to
// different topics run in parallel; publishes to one topic are serialized
// from id assignment through history append to fan-out (for durable stores,
// through the queuing of the append; see above). The hub starts no
// goroutine of its own: the only ones it runs are the timers that release
// messages held by subscription rate caps, the hand-over of a
// connection's backlog, which ends when the backlog is empty or the
// connection ends, and, with a Broker, the teardown of connections its
// deliveries dropped. A Broker delivers on goroutines of its own. Publish blocks only for
// Options.Authorize and the Store; neither should be slow.
package memory
