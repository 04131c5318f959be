package socketio

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/plazahq/plaza/pubsub"
)

// Connection state recovery, Plaza's way.
//
// Socket.IO's own recovery keeps every packet sent in the last two minutes
// in memory and loses a client's rooms when nothing was sent to them in
// that time. Here the hub's history does that job: the adapter below keeps
// only which channels a lost client held; every event carries, as its last
// argument, the offset socket.io-client sends back when it reconnects (the
// newest id fanned out so far and how many messages were); and a recovered
// client gets the messages of its channels after that offset: those fanned
// out after it but older than its id (ids increase per channel, so messages
// of two channels may reach the listener out of id order), then history
// after its id, then live ones, each once.

// adapterBuilder makes the Server's Socket.IO adapter.
type adapterBuilder struct{ s *Server }

func (b *adapterBuilder) New(nsp socket.Namespace) socket.Adapter {
	a := &adapter{Adapter: socket.MakeAdapter(), s: b.s}
	a.Prototype(a)
	a.Construct(nsp)
	return a
}

// adapter is Socket.IO's in-memory adapter with the Server's session store.
type adapter struct {
	socket.Adapter
	s *Server
}

// PersistSession keeps what a client whose connection was lost held.
func (a *adapter) PersistSession(ps *socket.SessionToPersist) { a.s.recover.persist(ps) }

// RestoreSession finds the session of a reconnecting client. Its rooms are
// joined later, by resume, once the client has authenticated again.
func (a *adapter) RestoreSession(pid socket.PrivateSessionId, offset string) (*socket.Session, error) {
	return a.s.recover.restore(pid, offset), nil
}

// resumeState is what a recovered client held when its connection was
// lost.
type resumeState struct {
	channels map[string]pubsub.ID // channel → its socketChannel.since
	offset   offset               // the last offset the client saw
}

// sessions are the lost clients that may still recover.
type sessions struct {
	window time.Duration
	clock  pubsub.Clock

	mu        sync.Mutex
	byPID     map[socket.PrivateSessionId]*session
	nextSweep time.Time
}

type session struct {
	sid      socket.SocketId
	app      string
	channels map[string]pubsub.ID
	lost     time.Time
}

func newSessions(window time.Duration, clock pubsub.Clock) *sessions {
	return &sessions{window: window, clock: clock, byPID: make(map[socket.PrivateSessionId]*session)}
}

func (ss *sessions) persist(ps *socket.SessionToPersist) {
	st, ok := ps.Data.(*socketState)
	if !ok {
		return
	}
	st.mu.Lock()
	channels := make(map[string]pubsub.ID, len(st.channels))
	for name, sc := range st.channels {
		channels[name] = sc.since
	}
	st.mu.Unlock()
	now := ss.clock.Now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !now.Before(ss.nextSweep) {
		for pid, se := range ss.byPID {
			if now.Sub(se.lost) >= ss.window {
				delete(ss.byPID, pid)
			}
		}
		ss.nextSweep = now.Add(ss.window)
	}
	ss.byPID[ps.Pid] = &session{sid: ps.Sid, app: st.app, channels: channels, lost: now}
}

// restore returns the session of pid, once, unless it expired or offset is
// not one the Server handed out.
func (ss *sessions) restore(pid socket.PrivateSessionId, offsetArg string) *socket.Session {
	off, ok := parseOffset(offsetArg)
	if !ok {
		return nil
	}
	ss.mu.Lock()
	se := ss.byPID[pid]
	delete(ss.byPID, pid)
	ss.mu.Unlock()
	if se == nil || ss.clock.Now().Sub(se.lost) >= ss.window {
		return nil
	}
	st := &socketState{
		app:      se.app,
		channels: make(map[string]*socketChannel),
		resume:   &resumeState{channels: se.channels, offset: off},
	}
	return &socket.Session{
		SessionToPersist: &socket.SessionToPersist{Sid: se.sid, Pid: pid, Rooms: types.NewSet[socket.Room](), Data: st},
	}
}

func (ss *sessions) forgetApp(app string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for pid, se := range ss.byPID {
		if se.app == app {
			delete(ss.byPID, pid)
		}
	}
}

// resume subscribes a recovered client to its channels again and sends it
// what it missed.
func (s *Server) resume(sock *socket.Socket, st *socketState) {
	rs := st.resume
	st.resume = nil
	b, err := s.bridge(st.app)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	held := make(map[string]*socketChannel, len(rs.channels))
	for _, name := range sortedChannels(rs.channels) {
		c, err := b.acquire(ctx, name)
		if err != nil {
			replier{s: s, sock: sock, channel: name}.fail(err)
			continue
		}
		held[name] = &socketChannel{sub: c, since: rs.channels[name]}
	}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		for name, sc := range held {
			b.release(name, sc.sub)
		}
		return
	}
	for name, sc := range held {
		st.channels[name] = sc
	}
	st.mu.Unlock()

	b.fanMu.Lock()
	defer b.fanMu.Unlock()
	// First the messages fanned out after the client's offset but older
	// than its mark, which history after the mark leaves out, in the order
	// they were fanned out; then history after the mark, in id order.
	if rs.offset.pos < b.lateFloor {
		s.opts.Logger.Warn("socketio: a recovering client may miss messages fanned out out of id order", "app", st.app)
	}
	n := 0
	for _, l := range b.late {
		sc := held[l.m.Topic]
		if l.pos <= rs.offset.pos || l.m.ID > rs.offset.mark || sc == nil || l.m.ID <= sc.since || l.m.From == s.opts.ListenerID {
			continue
		}
		_ = sock.Emit(s.eventOf(&l.m), s.eventArgs(l.m.Payload, offset{mark: rs.offset.mark, pos: l.pos})...)
		n++
	}
	var missed []pubsub.Message
	for _, name := range sortedChannels(held) {
		from := max(rs.offset.mark, held[name].since)
		msgs, err := b.history(ctx, name, from)
		if err != nil {
			s.opts.Logger.Warn("socketio: reading missed messages", "app", st.app, "channel", name, "err", err)
		}
		if len(msgs) > 0 {
			b.skips[name] = append(b.skips[name], skip{sid: sock.Id(), from: from, upTo: msgs[len(msgs)-1].ID})
		}
		missed = append(missed, msgs...)
	}
	slices.SortFunc(missed, func(x, y pubsub.Message) int { return cmp.Compare(x.ID, y.ID) })
	for i := range missed {
		m := &missed[i]
		_ = sock.Emit(s.eventOf(m), s.eventArgs(m.Payload, offset{mark: max(rs.offset.mark, m.ID), pos: b.pos})...)
	}
	s.stats.delivered.Add(uint64(n + len(missed)))
	for name := range held {
		sock.Join(channelRoom(st.app, name))
	}
	s.stats.recovered.Add(1)
}

// history returns, oldest first, the newest Options.RecoveryLimit messages
// of channel after the id after that the listener would have fanned out.
func (b *bridge) history(ctx context.Context, channel string, after pubsub.ID) ([]pubsub.Message, error) {
	conn, err := b.historyConn(ctx)
	if err != nil {
		return nil, err
	}
	limit := b.s.opts.RecoveryLimit
	var msgs []pubsub.Message // newest first
	var before pubsub.ID
	for len(msgs) < limit {
		page, err := conn.History(ctx, pubsub.HistoryRequest{Topic: channel, Before: before, Limit: min(pubsub.MaxHistoryLimit, limit-len(msgs))})
		if err != nil {
			slices.Reverse(msgs)
			return msgs, err
		}
		done := !page.HasMore || len(page.Messages) == 0
		for i := len(page.Messages) - 1; i >= 0; i-- {
			m := page.Messages[i]
			if m.ID <= after {
				done = true
				break
			}
			if m.From != b.s.opts.ListenerID { // never delivered live either
				msgs = append(msgs, m)
			}
		}
		if done {
			break
		}
		before = page.Messages[0].ID
	}
	slices.Reverse(msgs)
	return msgs, nil
}

// historyConn returns the connection through which the bridge reads
// history: its own, as the listener, so that it sees what the listener
// sees, and so that reading it never waits for the listener's goroutine.
func (b *bridge) historyConn(ctx context.Context) (pubsub.Conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hist != nil {
		select {
		case <-b.hist.Done():
			b.hist.Close()
			b.hist = nil
		default:
			return b.hist, nil
		}
	}
	if b.closed {
		return nil, pubsub.Errorf(pubsub.CodeUnauthenticated, "app %q is gone", b.app)
	}
	conn, err := b.s.t.Connect(ctx, pubsub.ConnectRequest{Room: b.app, ClientID: b.s.opts.ListenerID, Token: b.s.opts.Token(b.app)})
	if err != nil {
		return nil, err
	}
	b.hist = conn
	return conn, nil
}

// offset is what a client has seen of an app's messages: every message
// the listener fanned out up to position pos (counted from the listener's
// start), whose newest id was mark. It travels as "mark.pos" in decimal.
type offset struct {
	mark pubsub.ID
	pos  uint64
}

func (o offset) String() string {
	b := strconv.AppendInt(make([]byte, 0, 40), int64(o.mark), 10)
	b = append(b, '.')
	return string(strconv.AppendUint(b, o.pos, 10))
}

// parseOffset parses an offset as String writes it.
func parseOffset(s string) (offset, bool) {
	ms, ps, ok := strings.Cut(s, ".")
	if !ok || ps == "" || len(ps) > 20 || strings.TrimLeft(ps, "0123456789") != "" {
		return offset{}, false
	}
	mark, err := pubsub.ParseID(ms)
	if err != nil {
		return offset{}, false
	}
	pos, err := strconv.ParseUint(ps, 10, 64)
	if err != nil {
		return offset{}, false
	}
	return offset{mark: mark, pos: pos}, true
}
