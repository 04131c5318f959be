// Package transporttest is the conformance suite for pubsub.Transport
// implementations.
//
// Use [Run] from a test of the implementation's package, with a function that
// builds a fresh hub for each subtest:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, func(t *testing.T, cfg transporttest.Config) transporttest.Harness {
//			hub, err := memory.New(memory.Options{Clock: cfg.Clock, PublishRate: cfg.PublishRate, ...})
//			...
//			return transporttest.Harness{Transport: hub, Disconnect: func(room, id string) { hub.Disconnect(room, id) }}
//		})
//	}
//
// The suite drives pubsub.Rooms over the Transport and checks the behaviour
// users depend on: topic and payload validation on both sides (size, JSON,
// nesting depth), no self-echo,
// targeted delivery, non-persisted messages, metadata, refcounted
// subscriptions, rate caps on the hub and in the Room, history paging and
// filters, the publish rate cap, authorization, handler ordering, slow
// handlers, retries without duplicates, and reconnection with gap fill.
//
// The hub must take its time from Config.Clock, a manual clock the suite moves
// forward, so that every rate-dependent check is exact. Subtests run in
// parallel, each with its own hub.
package transporttest

import (
	"context"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
)

// Config is the hub configuration a subtest needs. The harness must pass
// every field to the hub it builds.
type Config struct {
	// Clock is the hub's clock: ids, timestamps, rate caps and history
	// retention must all read it.
	Clock pubsub.Clock
	// PublishRate caps publishes per room and topic per second, with
	// PublishBurst at once. Zero means no cap.
	PublishRate  float64
	PublishBurst int
	// Authorize, when set, is the hub's authorization hook.
	Authorize func(ctx context.Context, a pubsub.Access) error
	// QueueBytes bounds the hub's per-connection delivery queue, in bytes
	// (see memory.Options.QueueBytes). Zero means the hub's default.
	QueueBytes int
}

// Harness is a Transport under test plus the controls the suite needs.
type Harness struct {
	Transport pubsub.Transport
	// Disconnect drops every live connection of clientID in room the way a
	// network failure would: the Conns report NETWORK_ERROR. It returns
	// once the hub no longer delivers to them. Only the connections live
	// when it is called go: a Room that reconnects meanwhile keeps its new
	// connection, also when the transport is several hubs told one after
	// another (the Reconnect case counts the re-subscriptions of one
	// reconnection).
	Disconnect func(room, clientID string)
	// Delivered, if set, waits until the transport has offered the
	// messages of room's topic up to id to every connection subscribed to
	// it, for transports that may deliver after Publish returns (several
	// nodes behind a broker). The cases whose outcome depends on when a
	// message reaches a subscriber's hub (rate caps on a manual clock)
	// call it before they move the clock. Nil means that every
	// subscriber's hub has a message when Publish returns.
	Delivered func(ctx context.Context, room, topic string, id pubsub.ID) error
	// PerTopicIDs says that ids increase per topic only: two publishes
	// one after the other to different topics may get decreasing ids, as
	// on several nodes whose clocks differ (within a topic, ids always
	// increase). False means ids increase across the topics of a room.
	PerTopicIDs bool
}

// NewHarness builds a fresh hub configured by cfg and returns its harness.
// It registers its own cleanup with t.Cleanup.
type NewHarness func(t *testing.T, cfg Config) Harness

// waitTimeout bounds every wait for something that should happen; it is a
// deadlock guard, generous enough for a loaded machine, not a measurement.
const waitTimeout = 20 * time.Second

// Run runs the conformance suite against the transports newHarness builds.
func Run(t *testing.T, newHarness NewHarness) {
	tests := []struct {
		name string
		cfg  Config
		f    func(*testing.T, *env)
	}{
		{"TopicRules", Config{}, testTopicRules},
		{"PayloadLimits", Config{}, testPayloadLimits},
		{"PayloadDepth", Config{}, testPayloadDepth},
		{"HubValidatesAgain", Config{}, testHubValidatesAgain},
		{"NoSelfEcho", Config{}, testNoSelfEcho},
		{"To", Config{}, testTo},
		{"NotPersisted", Config{}, testNotPersisted},
		{"Metadata", Config{}, testMetadata},
		{"UnusedTopic", Config{}, testUnusedTopic},
		{"Refcount", Config{}, testRefcount},
		{"WireRateIsMaxOfCaps", Config{}, testWireRate},
		{"LocalRateCapKeepsNewest", Config{}, testLocalRateCap},
		{"HubHonoursWireRateCap", Config{}, testHubRateCap},
		{"HistoryPaging", Config{}, testHistoryPaging},
		{"HistoryWalk", Config{}, testHistoryWalk},
		{"HistoryFrom", Config{}, testHistoryFrom},
		{"HistoryErrors", Config{}, testHistoryErrors},
		{"PublishRateLimit", Config{PublishRate: 1, PublishBurst: 2}, testPublishRateLimit},
		{"Authorize", Config{Authorize: modsOnly}, testAuthorize},
		{"HandlerOrder", Config{}, testHandlerOrder},
		{"SlowHandler", Config{QueueBytes: 1024}, testSlowHandler},
		{"RetryDeduplicates", Config{}, testRetryDeduplicates},
		{"RetryGivesUp", Config{}, testRetryGivesUp},
		{"Reconnect", Config{}, testReconnect},
		{"ReconnectGapFill", Config{}, testReconnectGapFill},
		{"IDsIncrease", Config{}, testIDsIncrease},
		{"Leave", Config{}, testLeave},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.f(t, newEnv(t, newHarness, tt.cfg))
		})
	}
}
