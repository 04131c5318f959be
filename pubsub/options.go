package pubsub

import "time"

// JoinOptions configure a Room. A nil *JoinOptions means all defaults.
type JoinOptions struct {
	// ClientID is the identity the Room asks for: the From of what it
	// publishes. Hubs that authenticate their clients use the identity the
	// Token proves instead. Empty means the hub chooses one; read it back
	// with Room.ClientID.
	ClientID string

	// Token carries credentials for hubs that need them.
	Token string

	// GapFill, when true, makes the Room fetch from history, after every
	// reconnect, the persisted messages it missed while it was away (History
	// with After: the last id it saw on each topic) and hand them to the
	// handlers, in id order across topics and once, before any live
	// message. For a topic that had delivered nothing yet, the gap starts
	// when it was subscribed, by Clock. Pattern subscriptions are not
	// gap-filled. Gap fill leaves out every message from the Room's own
	// client id, whichever connection or Room published it: a Room never
	// sees its own publishes. A live Persist(false) message that arrives
	// during a gap fill is still delivered, after it.
	GapFill bool

	// ReconnectMin and ReconnectMax bound the wait between reconnect
	// attempts, which doubles from min to max with jitter. Zero means 100ms
	// and 5s.
	ReconnectMin, ReconnectMax time.Duration

	// Retries is how many times a publish or history call that failed with
	// NETWORK_ERROR is tried again, with the same idempotency key. Zero
	// means 3; negative means none.
	Retries int

	// RetryDelay is the wait before the first retry; it doubles for each
	// later one, with jitter. Zero means 250ms.
	RetryDelay time.Duration

	// OnError receives errors that no call can return: a topic that could
	// not be subscribed again after a reconnect, a gap fill that failed, a
	// payload a typed handler could not decode, a message the transport
	// received but could not decode (INVALID_PAYLOAD; see Message.Err),
	// live, in a gap fill or in a GetHistory page. It runs on the Room's
	// goroutine and must not block. Nil means such errors are dropped.
	OnError func(error)

	// OnState, when set, is told of every change of the Room's connection
	// (see ConnState): connected, disconnected and why (SLOW_CONSUMER when
	// the Room fell too far behind), reconnected and whether the gap was
	// recovered, stopped. It runs on the Room's goroutine, in order with the
	// handlers: Disconnected after the last message of the lost connection,
	// Reconnected after the gap fill's messages and before the new
	// connection's. It must not block; it may call the Room. Nothing is
	// reported once Leave has been called. Nil means changes are only
	// counted (RoomStats.Reconnects).
	OnState func(StateChange)

	// Clock tells the time for subscription rate caps. Nil means the
	// system clock.
	Clock Clock
}

func (o *JoinOptions) withDefaults() JoinOptions {
	var v JoinOptions
	if o != nil {
		v = *o
	}
	if v.ReconnectMin <= 0 {
		v.ReconnectMin = 100 * time.Millisecond
	}
	if v.ReconnectMax <= 0 {
		v.ReconnectMax = 5 * time.Second
	}
	if v.ReconnectMax < v.ReconnectMin {
		v.ReconnectMax = v.ReconnectMin
	}
	switch {
	case v.Retries == 0:
		v.Retries = 3
	case v.Retries < 0:
		v.Retries = 0
	}
	if v.RetryDelay <= 0 {
		v.RetryDelay = 250 * time.Millisecond
	}
	if v.Clock == nil {
		v.Clock = SystemClock{}
	}
	return v
}

// PublishOption modifies one Publish call.
type PublishOption func(*PublishRequest)

// To restricts delivery to the listed client ids. Such a message appears in
// history only for its sender and its recipients.
func To(clientIDs ...string) PublishOption {
	return func(r *PublishRequest) { r.To = append(r.To, clientIDs...) }
}

// Persist(false) delivers the message live but keeps it out of history, for
// things like cursor positions. Messages are persisted by default.
func Persist(persist bool) PublishOption {
	return func(r *PublishRequest) { r.NoPersist = !persist }
}

// Metadata attaches string key-value pairs that subscribers receive with the
// message, alongside the payload.
func Metadata(md map[string]string) PublishOption {
	return func(r *PublishRequest) {
		if r.Metadata == nil {
			r.Metadata = make(map[string]string, len(md))
		}
		for k, v := range md {
			r.Metadata[k] = v
		}
	}
}

// SubscribeOption modifies one Subscribe call.
type SubscribeOption func(*subscribeConfig)

type subscribeConfig struct {
	rate float64
}

// RateLimit caps the subscription's handler at perSecond messages per second.
// When a burst exceeds the cap the oldest messages of the window are dropped
// and the newest are delivered as the cap allows. Zero or negative means no
// cap.
func RateLimit(perSecond float64) SubscribeOption {
	return func(c *subscribeConfig) {
		if perSecond < 0 {
			perSecond = 0
		}
		c.rate = perSecond
	}
}

// HistoryOption modifies one GetHistory call.
type HistoryOption func(*historyConfig)

// historyConfig is a GetHistory call's options, with which of them were
// given: an option given with a zero value is an error, not the default.
type historyConfig struct {
	req                           HistoryRequest
	limitSet, beforeSet, afterSet bool
}

// Limit sets the page size, 1 to 50; anything else fails with INVALID_LIMIT.
// Without it a page holds 25 messages.
func Limit(n int) HistoryOption {
	return func(c *historyConfig) { c.req.Limit, c.limitSet = n, true }
}

// Before asks for the page of messages just older than id (scrolling up). id
// must be a message id: zero fails with INVALID_HISTORY_OPTS.
func Before(id ID) HistoryOption {
	return func(c *historyConfig) { c.req.Before, c.beforeSet = id, true }
}

// After asks for the page of messages just newer than id (catching up). id
// must be a message id: zero fails with INVALID_HISTORY_OPTS.
func After(id ID) HistoryOption {
	return func(c *historyConfig) { c.req.After, c.afterSet = id, true }
}

// From keeps only messages from these senders; the hub filters before paging,
// so HasMore speaks of the filtered set.
func From(clientIDs ...string) HistoryOption {
	return func(c *historyConfig) { c.req.From = append(c.req.From, clientIDs...) }
}
