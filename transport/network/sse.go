package network

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/plazahq/plaza/pubsub"
)

// sseStream is one Server-Sent Events response: a hub connection subscribed
// to one topic or pattern, whose deliveries the request's goroutine writes
// as events.
type sseStream struct {
	cancel context.CancelFunc // of the stream's context
	s      *Server
	w      http.ResponseWriter
	rc     *http.ResponseController
	hc     pubsub.Conn
	room   string
	topic  string
	id     Identity
	// floor is the newest id the stream has sent, or the client had seen,
	// when it started live delivery: older live messages are duplicates,
	// except non-persisted ones newer than seen, which history never held.
	floor pubsub.ID
	seen  pubsub.ID // the client's Last-Event-ID

	beat chan struct{}      // the server's heartbeat pokes it
	stop chan *pubsub.Error // ends the stream with an error event
}

// sseHeartbeat is a comment line: EventSource ignores it; proxies and the
// server's write deadline see traffic.
const sseHeartbeat = ":\n\n"

// appendEvent appends m as one SSE event: its id and, on one data line, the
// message's JSON object. JSON outside strings may hold line breaks, which
// would end the data line; they are white space there, so they become
// spaces.
func appendEvent(b []byte, m *pubsub.Message) []byte {
	b = append(b, "id: "...)
	b = strconv.AppendInt(b, int64(m.ID), 10)
	b = append(b, "\ndata: "...)
	start := len(b)
	b = appendMessage(b, m)
	for i := start; i < len(b); i++ {
		if b[i] == '\n' || b[i] == '\r' {
			b[i] = ' '
		}
	}
	return append(b, "\n\n"...)
}

// appendErrorEvent appends an "error" event whose data is the error
// envelope {"error": {"code": …, "message": …}}.
func appendErrorEvent(b []byte, err error) []byte {
	we := toWireError(err)
	b = append(b, "event: error\ndata: {\"error\":{\"code\":"...)
	b = appendString(b, string(we.Code))
	if we.Message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, we.Message)
	}
	return append(b, "}}\n\n"...)
}

// serveSSE answers GET /{room}/pubsub/{topic}/subscribe (and the legacy
// GET /{room}/subscribe/{topic}) with a stream of Server-Sent Events.
//
// It subscribes first, then, for a client that resumes (Last-Event-ID, or
// ?lastEventId=), sends what history holds after that id, and then the live
// messages, leaving out those at or below the last one sent: nothing is lost
// in between and nothing comes twice.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	id, perr := s.httpIdentity(r)
	if perr != nil {
		fail(w, perr)
		return
	}
	name, pattern, perr := routeTopic(r)
	if perr != nil {
		fail(w, perr)
		return
	}
	var last pubsub.ID
	lastRaw := r.Header.Get("Last-Event-ID")
	if lastRaw == "" {
		lastRaw = r.URL.Query().Get("lastEventId")
	}
	if lastRaw != "" {
		var err error
		if last, err = pubsub.ParseID(lastRaw); err != nil {
			fail(w, pubsub.Errorf(pubsub.CodeInvalidHistoryOpts, "Last-Event-ID %q is not a message id", clip(lastRaw, 24)))
			return
		}
	}
	// Shutdown cancels ctx when its own deadline passes, so that a stream
	// waiting on a slow history replay cannot hold it.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	access := pubsub.Access{Action: pubsub.ActionSubscribe, Room: room, Topic: name, ClientID: id.ClientID}
	if err := s.authorize(ctx, id, access); err != nil {
		fail(w, err)
		return
	}
	replay := last != 0 && !pattern
	if replay {
		access.Action = pubsub.ActionHistory
		if err := s.authorize(ctx, id, access); err != nil {
			fail(w, err)
			return
		}
	}
	if err := s.admit(); err != nil {
		fail(w, err)
		return
	}
	hc, err := s.t.Connect(ctx, pubsub.ConnectRequest{Room: room, ClientID: id.ClientID, QueueBytes: max(0, s.opts.QueueBytes)})
	if err != nil {
		fail(w, err)
		return
	}
	defer hc.Close()
	if err := hc.Subscribe(ctx, pubsub.SubscribeRequest{Topic: name}); err != nil {
		fail(w, err)
		return
	}
	st := &sseStream{
		s: s, w: w, rc: http.NewResponseController(w), hc: hc,
		room: room, topic: name, id: id, floor: last, seen: last,
		beat: make(chan struct{}, 1), stop: make(chan *pubsub.Error, 1),
		cancel: cancel,
	}
	if !s.addStream(st) {
		fail(w, pubsub.Errorf(pubsub.CodeNetworkError, "server is shutting down"))
		return
	}
	defer s.removeStream(st)
	s.connEvent(ConnEvent{Protocol: "sse", Room: room, ClientID: id.ClientID, Remote: r.RemoteAddr})
	defer s.connEvent(ConnEvent{Closed: true, Protocol: "sse", Room: room, ClientID: id.ClientID, Remote: r.RemoteAddr})
	if !id.Expires.IsZero() {
		t := s.opts.Clock.AfterFunc(id.Expires.Sub(s.opts.Clock.Now()), func() {
			st.end(pubsub.Errorf(pubsub.CodeUnauthenticated, "credentials expired"))
		})
		defer t.Stop()
	}

	// The stream outlives any read or write timeout of the http.Server:
	// lift the read deadline (net/http would cancel the request when it
	// passes) and give each write its own.
	_ = st.rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // tell proxies not to buffer the stream
	w.WriteHeader(http.StatusOK)
	if st.write([]byte(sseHeartbeat)) != nil {
		return
	}
	if replay && !st.replay(ctx) {
		return
	}
	st.run(ctx)
}

// replay sends the messages history holds after st.floor, page by page,
// and raises the floor to the last one. It reports false when the stream is
// over.
func (st *sseStream) replay(ctx context.Context) bool {
	for {
		page, err := st.hc.History(ctx, pubsub.HistoryRequest{Topic: st.topic, After: st.floor, Limit: pubsub.MaxHistoryLimit})
		if err != nil {
			st.writeError(err)
			return false
		}
		if len(page.Messages) == 0 {
			return true
		}
		bp := getBuf()
		for i := range page.Messages {
			*bp = appendEvent(*bp, &page.Messages[i])
		}
		err = st.write(*bp)
		putBuf(bp)
		if err != nil {
			return false
		}
		st.floor = page.Messages[len(page.Messages)-1].ID
		if !page.HasMore {
			return true
		}
	}
}

// run writes live deliveries, heartbeats and, at the end, the reason, until
// the stream is over.
func (st *sseStream) run(ctx context.Context) {
	msgs, done := st.hc.Messages(), st.hc.Done()
	for {
		select {
		case m := <-msgs:
			if !st.deliver(m, msgs) {
				return
			}
		case <-st.beat:
			if st.write([]byte(sseHeartbeat)) != nil {
				return
			}
		case err := <-st.stop:
			st.writeError(err)
			return
		case <-done:
			st.writeError(st.hc.Err())
			return
		case <-ctx.Done():
			return
		}
	}
}

// fresh reports whether a live message is news to the client: newer than
// everything sent, or a non-persisted message (which a replay never holds)
// newer than what the client had seen.
func (st *sseStream) fresh(m *pubsub.Message) bool {
	return m.ID > st.floor || (!m.Persisted && m.ID > st.seen)
}

// deliver writes m and whatever else is queued, up to maxBatchBytes, in one
// write. It reports false when the stream is over because the write failed.
// (A client that lets more than Options.QueueBytes pile up is dropped by the
// hub; run then writes the SLOW_CONSUMER error.)
func (st *sseStream) deliver(m *pubsub.Message, msgs <-chan *pubsub.Message) bool {
	bp := getBuf()
	b := *bp
	if st.fresh(m) {
		b = append(b, st.s.sseCache.get(m)...)
	}
batch:
	for len(b) < maxBatchBytes {
		select {
		case m := <-msgs:
			if st.fresh(m) {
				b = append(b, st.s.sseCache.get(m)...)
			}
		default:
			break batch
		}
	}
	var err error
	if len(b) > 0 {
		err = st.write(b)
	}
	*bp = b
	putBuf(bp)
	if err != nil {
		st.s.opts.Logger.Warn("network: cutting off a slow or lost event stream", "room", st.room, "client", st.id.ClientID, "err", err)
		return false
	}
	return true
}

// write writes b and flushes it within Options.WriteTimeout. The deadline
// is lifted afterwards, so that no deadline, the http.Server's WriteTimeout
// included, can end a stream that is idle but healthy.
func (st *sseStream) write(b []byte) error {
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.s.opts.WriteTimeout))
	_, err := st.w.Write(b)
	if err == nil {
		err = st.rc.Flush()
	}
	_ = st.rc.SetWriteDeadline(time.Time{})
	return err
}

// writeError writes an error event, as the last one of the stream.
func (st *sseStream) writeError(err error) {
	_ = st.write(appendErrorEvent(nil, err))
}

// end asks the stream to finish with err. It does not block; only the first
// call counts.
func (st *sseStream) end(err *pubsub.Error) {
	select {
	case st.stop <- err:
	default:
	}
}

// poke asks for a heartbeat. It does not block.
func (st *sseStream) poke() {
	select {
	case st.beat <- struct{}{}:
	default:
	}
}
