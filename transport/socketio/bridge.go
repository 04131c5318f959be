package socketio

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/plazahq/plaza/pubsub"
)

// bridge is one app's listener: a Room on the hub, in the app's room, as
// Options.ListenerID, subscribed to every channel that has Socket.IO
// subscribers, which fans each message out to the Socket.IO room of its
// channel. The hub encodes nothing per Socket.IO client, and Socket.IO
// encodes each message once for all the clients of its channel.
type bridge struct {
	s   *Server
	app string

	mu       sync.Mutex
	room     *lazyRoom   // nil until the first channel
	hist     pubsub.Conn // reads history for recoveries; nil until one
	channels map[string]*channelSub
	closed   bool

	// fanMu serializes fan-out with the moments a client joins the
	// Socket.IO room of a channel, so that every client sees each message
	// of its channels once: live, or replayed from history when it
	// recovers.
	fanMu sync.Mutex
	// mark is the newest id fanned out, and pos the number of messages
	// fanned out: together, the offset a client that has seen everything
	// so far recovers from (see offset).
	mark pubsub.ID
	pos  uint64
	// late lists, oldest first, the messages fanned out after a newer one
	// (ids increase per channel, not across channels): a client whose
	// offset has a mark above their id but a position before theirs never
	// saw them, and history after the mark does not hold them. Entries go
	// after Options.RecoveryWindow, or to keep them within maxLate and
	// maxLateBytes of payload; lateFloor is the position of the newest one
	// dropped.
	late      []lateMessage
	lateBytes int
	lateFloor uint64
	// skips lists, per channel, the recovering clients that received the
	// channel's history from an id up to another: live messages in that
	// range are not sent to them again.
	skips map[string][]skip
}

// lateMessage is a message fanned out after a newer one.
type lateMessage struct {
	pos uint64
	at  time.Time
	m   pubsub.Message
}

// maxLate and maxLateBytes bound bridge.late.
const (
	maxLate      = 4096
	maxLateBytes = 4 << 20
)

// channelSub is the hub subscription of one channel, shared by every
// Socket.IO client of the channel.
type channelSub struct {
	refs  int
	ready chan struct{} // closed when sub or err is set
	sub   *pubsub.Subscription
	err   error
}

type skip struct {
	sid        socket.SocketId
	from, upTo pubsub.ID // the ids in (from, upTo]
}

// bridge returns the listener of app, creating it if needed.
func (s *Server) bridge(app string) (*bridge, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, errShuttingDown()
	}
	b := s.bridges[app]
	if b == nil {
		b = &bridge{s: s, app: app, channels: make(map[string]*channelSub), skips: make(map[string][]skip)}
		s.bridges[app] = b
	}
	return b, nil
}

func errShuttingDown() error {
	return pubsub.Errorf(pubsub.CodeNetworkError, "the server is shutting down")
}

// acquire holds a hub subscription to channel until release, subscribing
// on first use. When it returns nil, every message the hub confirms on the
// channel from then on is fanned out.
func (b *bridge) acquire(ctx context.Context, channel string) (*channelSub, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, pubsub.Errorf(pubsub.CodeUnauthenticated, "app %q is gone", b.app)
	}
	if c := b.channels[channel]; c != nil {
		c.refs++
		b.mu.Unlock()
		select {
		case <-c.ready:
		case <-ctx.Done():
			b.release(channel, c)
			return nil, pubsub.Errorf(pubsub.CodeNetworkError, "subscribing to %q: %w", channel, ctx.Err())
		}
		if c.err != nil {
			return nil, c.err
		}
		return c, nil
	}
	c := &channelSub{refs: 1, ready: make(chan struct{})}
	b.channels[channel] = c
	if b.room == nil {
		b.room = &lazyRoom{ready: make(chan struct{})}
		go b.join(b.room)
	}
	lr := b.room
	b.mu.Unlock()

	var sub *pubsub.Subscription
	var err error
	select {
	case <-lr.ready:
		err = lr.err
	case <-ctx.Done():
		err = pubsub.Errorf(pubsub.CodeNetworkError, "joining the hub: %w", ctx.Err())
	}
	if err == nil {
		sub, err = lr.room.Subscribe(ctx, channel, b.deliver)
	}
	b.mu.Lock()
	select {
	case <-lr.ready:
		if lr.err != nil && b.room == lr {
			b.room = nil // the next subscribe tries to join again
		}
	default:
	}
	c.sub, c.err = sub, err
	close(c.ready)
	if err != nil && b.channels[channel] == c {
		delete(b.channels, channel)
	}
	gone := err == nil && b.channels[channel] != c // the bridge closed meanwhile
	b.mu.Unlock()
	if gone {
		_ = sub.Unsubscribe(context.WithoutCancel(ctx))
		err = pubsub.Errorf(pubsub.CodeUnauthenticated, "app %q is gone", b.app)
	}
	if err != nil {
		b.s.opts.Logger.Warn("socketio: subscribing on the hub failed", "app", b.app, "channel", channel, "err", err)
		return nil, err
	}
	return c, nil
}

// join joins the app's room on the hub as the listener.
func (b *bridge) join(lr *lazyRoom) {
	s := b.s
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	lr.room, lr.err = pubsub.Join(ctx, s.t, b.app, &pubsub.JoinOptions{
		ClientID: s.opts.ListenerID,
		Token:    s.opts.Token(b.app),
		GapFill:  true,
		OnError: func(err error) {
			s.opts.Logger.Warn("socketio: hub connection", "app", b.app, "err", err)
		},
	})
	close(lr.ready)
}

// joinTimeout bounds the hub calls made for a client.
const joinTimeout = 10 * time.Second

// release gives up one hold of c, the subscription of channel, and ends it
// after the last.
func (b *bridge) release(channel string, c *channelSub) {
	b.mu.Lock()
	if b.channels[channel] != c {
		b.mu.Unlock()
		return // failed, or the bridge closed
	}
	c.refs--
	last := c.refs == 0
	if last {
		delete(b.channels, channel)
	}
	b.mu.Unlock()
	if !last {
		return
	}
	<-c.ready // the last hold is never released before its acquire returns
	if c.sub != nil {
		ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
		defer cancel()
		_ = c.sub.Unsubscribe(ctx)
	}
}

// close leaves the hub; the bridge refuses new subscriptions.
func (b *bridge) close(ctx context.Context) {
	b.mu.Lock()
	b.closed = true
	lr, hist := b.room, b.hist
	b.channels = map[string]*channelSub{}
	b.hist = nil
	b.mu.Unlock()
	if hist != nil {
		hist.Close()
	}
	if lr != nil {
		lr.leave(ctx)
	}
}

// deliver fans a message out to the Socket.IO room of its channel. It runs
// on the listener Room's goroutine, one message at a time, in the order the
// hub confirmed them.
func (b *bridge) deliver(m pubsub.Message) {
	s := b.s
	room := channelRoom(b.app, m.Topic)
	b.fanMu.Lock()
	defer b.fanMu.Unlock()
	b.pos++
	if m.ID < b.mark && s.recover != nil {
		b.addLate(m)
	}
	b.mark = max(b.mark, m.ID)
	op := s.io.To(room)
	if sk := b.skips[m.Topic]; len(sk) > 0 {
		keep := sk[:0]
		for _, k := range sk {
			if m.ID <= k.upTo {
				if m.ID > k.from {
					op = op.Except(socket.Room(k.sid))
				}
				keep = append(keep, k)
			}
		}
		if len(keep) == 0 {
			delete(b.skips, m.Topic)
		} else {
			b.skips[m.Topic] = keep
		}
	}
	if n := s.roomSize(room); n > 0 {
		s.stats.delivered.Add(uint64(n))
	}
	_ = op.Emit(s.eventOf(&m), s.eventArgs(m.Payload, b.offset())...)
}

// offset is the offset of a client that has seen every message fanned out
// so far. Call it with fanMu held.
func (b *bridge) offset() offset { return offset{mark: b.mark, pos: b.pos} }

// addLate records m, fanned out at b.pos after a newer message, and
// forgets the entries no recovering client can need any more. Call it with
// fanMu held.
func (b *bridge) addLate(m pubsub.Message) {
	now := b.s.opts.Clock.Now()
	drop := 0
	for drop < len(b.late) && (len(b.late)-drop >= maxLate || b.lateBytes+len(m.Payload) > maxLateBytes || now.Sub(b.late[drop].at) >= b.s.opts.RecoveryWindow) {
		b.lateBytes -= len(b.late[drop].m.Payload)
		drop++
	}
	if drop > 0 {
		b.lateFloor = b.late[drop-1].pos
		b.late = append(b.late[:0], b.late[drop:]...)
	}
	b.late = append(b.late, lateMessage{pos: b.pos, at: now, m: m})
	b.lateBytes += len(m.Payload)
}

// eventOf is the Socket.IO event name of m: its metadata "event", or
// Options.DefaultEvent when it has none, or none a client could listen for.
func (s *Server) eventOf(m *pubsub.Message) string {
	if ev, ok := m.Metadata[MetadataEvent]; ok && checkEvent(ev) == nil {
		return ev
	}
	return s.opts.DefaultEvent
}

// eventArgs are the arguments of a delivered event: the payload, and, with
// recovery on, the offset a client that saw it recovers from, which
// socket.io-client records and sends back when it reconnects.
func (s *Server) eventArgs(payload json.RawMessage, off offset) []any {
	if s.recover == nil {
		return []any{payload}
	}
	return []any{payload, off.String()}
}

// roomSize is the number of Socket.IO clients in room.
func (s *Server) roomSize(room socket.Room) int {
	if ids, ok := s.io.Sockets().Adapter().Rooms().Load(room); ok {
		return ids.Len()
	}
	return 0
}

// channelRoom is the Socket.IO room of a channel of an app. App IDs and
// channels have no '/', so names never collide.
func channelRoom(app, channel string) socket.Room { return socket.Room(app + "/" + channel) }

// appRoom is the Socket.IO room of every client of an app.
func appRoom(app string) socket.Room { return socket.Room(app) }
