package network

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/plazahq/plaza/pubsub"
)

// maxBatchBytes is how many bytes of queued messages the server packs into
// one "messages" frame, and so into one socket write.
const maxBatchBytes = 64 << 10

// serverConn is one client WebSocket on a Server. Two goroutines serve it:
// the reading one (run, then serve) reads and answers requests, writeLoop
// delivers what the hub queues.
//
// Only the reading goroutine reads the socket, closes the WebSocket with a
// handshake (which reads too) and sends close frames. Other goroutines that
// want the connection closed call requestClose, which wakes it; or drop,
// which cuts the socket off.
type serverConn struct {
	s      *Server
	ws     *websocket.Conn
	nc     net.Conn      // the hijacked socket, for deadlines and cutting off
	br     *bufio.Reader // the WebSocket's read buffer, peeked while idle
	hw     *heldWriter   // under the WebSocket's write buffer
	room   string
	ctx    context.Context // ends when the connection does
	cancel context.CancelFunc

	// Until authentication: the upgrade request and its credential.
	req     *http.Request
	cred    string
	hasCred bool

	// A single-topic socket is subscribed to bound (a topic, or a pattern)
	// on connect, only receives, and gets each message as a WebSocket
	// message of its own instead of in "messages" frames. A temporary client socket's identity is
	// preID, proven by its token, and it closes after maxDur (when
	// positive).
	bound    string
	preID    *Identity
	maxDur   time.Duration
	lifetime pubsub.Timer // guarded by idMu

	idMu   sync.Mutex
	id     Identity
	expiry pubsub.Timer

	hc      pubsub.Conn         // the hub connection; set before writeLoop starts
	subs    map[string]struct{} // run's goroutine only
	limiter *rate.Limiter       // run's goroutine only; nil: no cap

	deadlineMu sync.Mutex
	writers    int // writes in flight, guarded by deadlineMu

	lastSeen atomic.Int64 // Clock time in ns of the last frame or pong received
	pinging  atomic.Bool  // a heartbeat ping is outstanding
	closing  atomic.Bool  // the connection is being closed
	pending  atomic.Pointer[closeRequest]
	readErr  error // why reading ended; the reading goroutine only
}

// closeRequest is a close the reading goroutine is asked to perform.
type closeRequest struct {
	code websocket.StatusCode
	err  *pubsub.Error // sent in an error frame first, unless nil
}

// aLongTimeAgo is a read deadline that has passed: setting it wakes the
// reading goroutine.
var aLongTimeAgo = time.Unix(1, 0)

func (c *serverConn) seen() {
	c.lastSeen.Store(c.s.opts.Clock.Now().UnixNano())
}

func (c *serverConn) clientID() string {
	c.idMu.Lock()
	defer c.idMu.Unlock()
	return c.id.ClientID
}

// run is the connection's first reading goroutine: it authenticates, starts
// the writer and hands reading over to serve.
func (c *serverConn) run() {
	defer c.s.wg.Done()
	if !c.authenticate() {
		c.finish()
		return
	}
	c.s.wg.Add(2)
	go c.writeLoop()
	go c.serve()
}

// serve waits for the next frame and answers it. Answering can take a deep
// stack (JSON, the hub, the socket), and a goroutine keeps its stack until a
// garbage collection shrinks it, and then only by halves; so serve waits for
// each frame on a fresh goroutine, which an idle connection keeps small.
func (c *serverConn) serve() {
	defer c.s.wg.Done()
	if !c.await() {
		c.finish()
		return
	}
	bp, err := c.readFrame()
	if err != nil {
		c.readErr = err
		c.failPending() // if woken in the middle of a frame
		c.finish()
		return
	}
	c.seen()
	if c.limiter != nil && !c.limiter.AllowN(c.s.opts.Clock.Now(), 1) {
		putBuf(bp)
		c.fail(ClosePolicyViolation, pubsub.Errorf(pubsub.CodeRateLimitExceeded, "more than %v frames per second", c.s.opts.MaxFrameRate))
		c.finish()
		return
	}
	ok := c.handle(*bp)
	putBuf(bp)
	if !ok {
		c.finish()
		return
	}
	c.s.wg.Add(1)
	go c.serve()
}

// await waits, without entering the WebSocket library, until a data frame
// has begun to arrive; on the way it lets the library handle control frames
// (pings, pongs, close) and performs requested closes. It reports false when
// the connection is over.
func (c *serverConn) await() bool {
	for {
		if c.failPending() {
			return false
		}
		b, err := c.br.Peek(2)
		if err != nil {
			if !c.woken(err) {
				return false
			}
			continue
		}
		if b[0]&0x0f < 0x8 {
			return true // a data frame (or a continuation, which the library refuses)
		}
		// A control frame: at most 125 bytes of payload and a 4-byte mask.
		n := 2 + int(b[1]&0x7f)
		if b[1]&0x80 != 0 {
			n += 4
		}
		if n > 2+125+4 {
			return true // invalid; the library closes the connection
		}
		if _, err := c.br.Peek(n); err != nil {
			if !c.woken(err) {
				return false
			}
			continue
		}
		if c.br.Buffered() > n {
			return true // a data frame follows; the library handles both
		}
		// Let the library handle the control frame alone: a passed deadline
		// makes it return when it looks for the next frame, which has not
		// arrived, instead of waiting for it.
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
		_, _, err = c.ws.Reader(context.Background())
		if err == nil {
			return true // cannot happen: nothing more was buffered
		}
		if !c.woken(err) {
			return false
		}
		c.seen()
	}
}

// woken tells apart the read errors caused by a passed read deadline, which
// leave the connection usable, and lifts the deadline. It reports false for
// any other error.
func (c *serverConn) woken(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.readErr = err
		return false
	}
	// Lift the deadline before looking for requests (await does next), so
	// that a request made meanwhile is not missed: requestClose stores the
	// request before it sets the deadline.
	_ = c.nc.SetReadDeadline(time.Time{})
	return true
}

// failPending performs a requested close, if there is one, and reports
// whether there was.
func (c *serverConn) failPending() bool {
	r := c.pending.Load()
	if r != nil {
		c.fail(r.code, r.err)
	}
	return r != nil
}

// requestClose asks the reading goroutine to send an error frame for err
// (unless nil) and close the connection with code, once it has answered the
// request it may be handling. Only the first request counts. It does not
// block.
func (c *serverConn) requestClose(code websocket.StatusCode, err *pubsub.Error) {
	if c.pending.CompareAndSwap(nil, &closeRequest{code: code, err: err}) {
		_ = c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// finish releases everything once the reading goroutine is done.
func (c *serverConn) finish() {
	c.closing.Store(true)
	c.cancel()
	_ = c.ws.CloseNow()
	if c.hc != nil {
		_ = c.hc.Close()
		c.s.connEvent(ConnEvent{Closed: true, Protocol: "websocket", Room: c.room, ClientID: c.clientID(), Remote: c.nc.RemoteAddr().String(), Code: closeCode(c.pending.Load(), c.readErr)})
	}
	c.idMu.Lock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if c.lifetime != nil {
		c.lifetime.Stop()
	}
	c.idMu.Unlock()
	c.s.remove(c)
}

// readFrame reads one text frame into a pooled buffer.
func (c *serverConn) readFrame() (*[]byte, error) {
	typ, r, err := c.ws.Reader(context.Background())
	if err != nil {
		if websocket.CloseStatus(err) == CloseTooBig || errors.Is(err, websocket.ErrMessageTooBig) {
			c.closing.Store(true) // the library has sent the close frame
		}
		return nil, err
	}
	if typ != websocket.MessageText {
		c.fail(CloseUnsupportedData, pubsub.Errorf(pubsub.CodeInvalidRequest, "binary frames are not supported: send JSON text frames"))
		return nil, errors.New("binary frame")
	}
	bp := getBuf()
	b := *bp
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			*bp = b
			putBuf(bp)
			if errors.Is(err, websocket.ErrMessageTooBig) {
				c.closing.Store(true)
			}
			return nil, err
		}
	}
	*bp = b
	return bp, nil
}

// authenticate runs the authentication phase: it takes the credential from
// the upgrade request or the first frame, asks Options.Authenticate, connects
// to the hub and sends the welcome. It reports whether the connection may
// proceed; if not, it has been closed.
func (c *serverConn) authenticate() bool {
	o := &c.s.opts
	actx, acancel := context.WithCancel(c.ctx)
	defer acancel()
	timer := o.Clock.AfterFunc(o.AuthTimeout, func() {
		acancel()
		c.requestClose(CloseUnauthenticated, pubsub.Errorf(pubsub.CodeUnauthenticated, "no credentials within %v", o.AuthTimeout))
	})
	defer timer.Stop()

	cred, reqID := c.cred, ""
	if !c.hasCred && c.preID == nil {
		if !c.await() {
			return false
		}
		bp, err := c.readFrame()
		if err != nil {
			c.failPending()
			return false
		}
		req, perr := decodeRequest(*bp)
		putBuf(bp)
		if perr == nil && req.Type != typeAuth {
			perr = pubsub.Errorf(pubsub.CodeUnauthenticated, `the first frame must be {"auth": "<credential>"}`)
		}
		if perr != nil {
			c.fail(CloseUnauthenticated, &pubsub.Error{Code: pubsub.CodeUnauthenticated, Message: perr.Message})
			return false
		}
		cred, reqID = req.Auth, req.ID
		c.seen()
	}
	r := c.req
	c.req, c.cred = nil, ""

	var id Identity
	var err error
	if c.preID != nil {
		id = *c.preID
	} else {
		id, err = o.Authenticate(actx, r, cred)
	}
	if c.failPending() {
		return false // timed out
	}
	if err != nil {
		perr := authError(err)
		o.Logger.Info("network: authentication failed", "room", c.room, "remote", r.RemoteAddr, "err", perr)
		c.fail(CloseUnauthenticated, perr)
		return false
	}
	if err := pubsub.CheckClientID(id.ClientID); err != nil {
		o.Logger.Warn("network: Authenticate returned an invalid client id", "id", id.ClientID, "err", err)
		c.fail(CloseInternal, pubsub.Errorf(pubsub.CodeInternal, "authentication produced an invalid client id"))
		return false
	}
	if !id.Expires.IsZero() && !id.Expires.After(o.Clock.Now()) {
		c.fail(CloseCredentialsExpired, pubsub.Errorf(pubsub.CodeUnauthenticated, "credentials expired"))
		return false
	}
	hc, err := c.s.t.Connect(actx, pubsub.ConnectRequest{Room: c.room, ClientID: id.ClientID, QueueBytes: max(0, o.QueueBytes)})
	if err != nil {
		if c.failPending() {
			return false // timed out
		}
		perr := asPubsubError(err)
		code := CloseHubEnded
		if perr.Code == pubsub.CodeUnauthenticated {
			code = CloseUnauthenticated
		}
		c.fail(code, perr)
		return false
	}
	if !timer.Stop() || c.pending.Load() != nil {
		_ = hc.Close()
		c.failPending()
		return false
	}
	c.hc = hc
	c.subs = make(map[string]struct{}, 1)
	if o.MaxFrameRate > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(o.MaxFrameRate), max(1, int(o.MaxFrameRate)))
	}
	c.idMu.Lock()
	c.id = id
	c.armExpiry()
	c.idMu.Unlock()
	c.s.connEvent(ConnEvent{Protocol: "websocket", Room: c.room, ClientID: id.ClientID, Remote: c.nc.RemoteAddr().String()})
	if c.bound != "" {
		return c.subscribeBound(reqID)
	}
	return c.reply(appendWelcome(nil, reqID, c.welcome(id)))
}

// subscribeBound subscribes a single-topic socket to its topic and sends
// the welcome and the subscribed frame; a refusal closes the connection
// with CloseUnauthenticated. It reports whether the connection may proceed.
func (c *serverConn) subscribeBound(reqID string) bool {
	if err := c.authorize(pubsub.ActionSubscribe, c.bound); err != nil {
		c.fail(CloseUnauthenticated, asPubsubError(err))
		return false
	}
	if err := c.hc.Subscribe(c.ctx, pubsub.SubscribeRequest{Topic: c.bound}); err != nil {
		c.fail(CloseHubEnded, asPubsubError(err))
		return false
	}
	c.subs[c.bound] = struct{}{}
	if c.maxDur > 0 {
		d := c.maxDur
		c.idMu.Lock()
		c.lifetime = c.s.opts.Clock.AfterFunc(d, func() {
			c.requestClose(CloseMaxDuration, pubsub.Errorf(CodeMaxDurationReached, "the connection lasted the client socket's max_dur of %d ms", d.Milliseconds()))
		})
		c.idMu.Unlock()
	}
	return c.reply(appendWelcome(nil, reqID, c.welcome(c.id))) &&
		c.reply(appendTopicReply(nil, typeSubscribed, "", c.bound))
}

func (c *serverConn) welcome(id Identity) welcome {
	o := &c.s.opts
	return welcome{
		ClientID:         id.ClientID,
		Expires:          id.Expires,
		Heartbeat:        o.Heartbeat,
		MaxFrameBytes:    o.MaxFrameBytes,
		MaxSubscriptions: max(0, o.MaxSubscriptions),
	}
}

// authError is the error a client sees when Authenticate refuses it.
func authError(err error) *pubsub.Error {
	var perr *pubsub.Error
	if errors.As(err, &perr) {
		return perr
	}
	return &pubsub.Error{Code: pubsub.CodeUnauthenticated, Message: err.Error(), Err: err}
}

// armExpiry schedules the close of the connection when its credentials
// expire. Call it with idMu held.
func (c *serverConn) armExpiry() {
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	if c.id.Expires.IsZero() {
		return
	}
	clock := c.s.opts.Clock
	c.expiry = clock.AfterFunc(c.id.Expires.Sub(clock.Now()), func() {
		c.idMu.Lock()
		renewed := c.id.Expires.After(clock.Now())
		c.idMu.Unlock()
		if !renewed {
			c.requestClose(CloseCredentialsExpired, pubsub.Errorf(pubsub.CodeUnauthenticated, "credentials expired"))
		}
	})
}

// handle answers one request. It reports false when the connection can no
// longer be written to.
func (c *serverConn) handle(data []byte) bool {
	req, perr := decodeRequest(data)
	if perr != nil {
		return c.replyError(req.ID, perr)
	}
	if c.bound != "" {
		switch {
		case req.Type == typePing:
		case req.Type == typeAuth && c.preID == nil:
		default:
			return c.replyError(req.ID, pubsub.Errorf(pubsub.CodePermissionDenied, "this socket only receives %q", clip(c.bound, 64)))
		}
	}
	switch req.Type {
	case typeAuth:
		return c.reauth(req)
	case typePublish:
		pr := pubsub.PublishRequest{
			Topic:          req.Topic,
			Payload:        req.Payload,
			To:             req.To,
			Metadata:       req.Metadata,
			NoPersist:      req.NoPersist,
			IdempotencyKey: req.IdempotencyKey,
		}
		if err := pubsub.CheckPublish(&pr); err != nil {
			return c.replyError(req.ID, err)
		}
		if err := c.authorize(pubsub.ActionPublish, pr.Topic); err != nil {
			return c.replyError(req.ID, err)
		}
		m, err := c.hc.Publish(c.ctx, pr)
		if err != nil {
			return c.replyError(req.ID, err)
		}
		bp := getBuf()
		*bp = appendPublished(*bp, req.ID, &m)
		return c.replyBuf(bp)
	case typeSubscribe:
		if err := pubsub.CheckSubscribeTopic(req.Topic); err != nil {
			return c.replyError(req.ID, err)
		}
		if !(req.Rate >= 0) || math.IsInf(req.Rate, 0) {
			return c.replyError(req.ID, pubsub.Errorf(pubsub.CodeInvalidRequest, "rate must be a finite number ≥ 0"))
		}
		if err := c.authorize(pubsub.ActionSubscribe, req.Topic); err != nil {
			return c.replyError(req.ID, err)
		}
		_, again := c.subs[req.Topic]
		if max := c.s.opts.MaxSubscriptions; !again && max > 0 && len(c.subs) >= max {
			return c.replyError(req.ID, pubsub.Errorf(pubsub.CodeTooManySubscriptions, "a connection may hold %d subscriptions", max))
		}
		if err := c.hc.Subscribe(c.ctx, pubsub.SubscribeRequest{Topic: req.Topic, Rate: req.Rate}); err != nil {
			return c.replyError(req.ID, err)
		}
		c.subs[req.Topic] = struct{}{}
		return c.reply(appendTopicReply(nil, typeSubscribed, req.ID, req.Topic))
	case typeUnsubscribe:
		if err := pubsub.CheckSubscribeTopic(req.Topic); err != nil {
			return c.replyError(req.ID, err)
		}
		if err := c.hc.Unsubscribe(c.ctx, req.Topic); err != nil {
			return c.replyError(req.ID, err)
		}
		delete(c.subs, req.Topic)
		return c.reply(appendTopicReply(nil, typeUnsubscribed, req.ID, req.Topic))
	case typeHistory:
		hr := pubsub.HistoryRequest{Topic: req.Topic, Before: req.Before, After: req.After, Limit: req.Limit, From: req.From}
		if err := pubsub.CheckHistory(&hr); err != nil {
			return c.replyError(req.ID, err)
		}
		if err := c.authorize(pubsub.ActionHistory, hr.Topic); err != nil {
			return c.replyError(req.ID, err)
		}
		page, err := c.hc.History(c.ctx, hr)
		if err != nil {
			return c.replyError(req.ID, err)
		}
		bp := getBuf()
		*bp = appendHistory(*bp, req.ID, &page)
		return c.replyBuf(bp)
	case typePing:
		return c.reply(appendPong(nil, req.ID))
	}
	return c.replyError(req.ID, pubsub.Errorf(pubsub.CodeInvalidRequest, "unknown frame type"))
}

// reauth renews the connection's credentials. They must prove the same
// client id; the new expiry replaces the old one.
func (c *serverConn) reauth(req request) bool {
	o := &c.s.opts
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	timer := o.Clock.AfterFunc(o.AuthTimeout, cancel)
	defer timer.Stop()
	r := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: "/" + c.room + "/ws"},
		Header:     http.Header{},
		RemoteAddr: c.nc.RemoteAddr().String(),
	}
	r.SetPathValue("room", c.room)
	id, err := o.Authenticate(ctx, r, req.Auth)
	if err != nil {
		return c.replyError(req.ID, authError(err))
	}
	c.idMu.Lock()
	if id.ClientID != c.id.ClientID {
		c.idMu.Unlock()
		return c.replyError(req.ID, pubsub.Errorf(pubsub.CodePermissionDenied, "new credentials are for another client"))
	}
	if !id.Expires.IsZero() && !id.Expires.After(o.Clock.Now()) {
		c.idMu.Unlock()
		return c.replyError(req.ID, pubsub.Errorf(pubsub.CodeUnauthenticated, "credentials expired"))
	}
	c.id = id
	c.armExpiry()
	c.idMu.Unlock()
	return c.reply(appendWelcome(nil, req.ID, c.welcome(id)))
}

// authorize asks the server's authorization about one action.
func (c *serverConn) authorize(action pubsub.Action, topic string) error {
	c.idMu.Lock()
	id := c.id
	c.idMu.Unlock()
	return c.s.authorize(c.ctx, id, pubsub.Access{Action: action, Room: c.room, Topic: topic, ClientID: id.ClientID})
}

func (c *serverConn) replyError(id string, err error) bool {
	bp := getBuf()
	*bp = appendError(*bp, id, err)
	return c.replyBuf(bp)
}

func (c *serverConn) replyBuf(bp *[]byte) bool {
	ok := c.reply(*bp)
	putBuf(bp)
	return ok
}

// reply writes one frame. It reports false, and cuts the connection off, if
// the write failed.
func (c *serverConn) reply(b []byte) bool {
	if !utf8.Valid(b) {
		b = bytes.ToValidUTF8(b, []byte("\uFFFD")) // see encodeCache.get
	}
	if err := c.write(b); err != nil {
		c.s.opts.Logger.Warn("network: write failed", "room", c.room, "client", c.clientID(), "err", err)
		c.drop()
		return false
	}
	return true
}

// write writes one text frame within Options.WriteTimeout.
func (c *serverConn) write(b []byte) error {
	return c.writing(func() error {
		c.hw.hold()
		err := c.ws.Write(context.Background(), websocket.MessageText, b)
		if rerr := c.hw.release(); err == nil {
			err = rerr
		}
		return err
	})
}

// writing runs f, which writes to the socket, under a write deadline of
// Options.WriteTimeout from now. The deadline is lifted once no write is in
// flight, so that none goes stale for the frames the WebSocket library writes
// on its own (pongs, close replies).
func (c *serverConn) writing(f func() error) error {
	c.deadlineMu.Lock()
	c.writers++
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	c.deadlineMu.Unlock()
	err := f()
	c.deadlineMu.Lock()
	c.writers--
	if c.writers == 0 {
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
	c.deadlineMu.Unlock()
	return err
}

// writeLoop delivers what the hub queues for the connection, packing
// whatever has piled up into one frame and one write.
func (c *serverConn) writeLoop() {
	defer c.s.wg.Done()
	msgs, done := c.hc.Messages(), c.hc.Done()
	for {
		select {
		case <-done:
			c.hubEnded()
			return
		case m := <-msgs:
			select {
			case <-done:
				c.hubEnded()
				return
			default:
			}
			if !c.deliver(m, msgs) {
				return
			}
		}
	}
}

// deliver writes m and whatever else is queued, up to maxBatchBytes, in one
// socket write: as one "messages" frame, or on a single-topic socket as one
// WebSocket message per message. It reports false when the connection is
// over.
func (c *serverConn) deliver(m *pubsub.Message, msgs <-chan *pubsub.Message) bool {
	var err error
	if c.bound != "" {
		err = c.writeEach(m, msgs)
	} else {
		err = c.writeBatch(m, msgs)
	}
	if err != nil {
		if !c.closing.Load() {
			c.s.opts.Logger.Warn("network: cutting off a slow or lost connection", "room", c.room, "client", c.clientID(), "err", err)
		}
		c.drop()
		return false
	}
	return true
}

// writeBatch writes m and whatever else is queued, up to maxBatchBytes, as
// one "messages" frame.
func (c *serverConn) writeBatch(m *pubsub.Message, msgs <-chan *pubsub.Message) error {
	bp := getBuf()
	b := append(*bp, messagesHead...)
	b = append(b, c.s.cache.get(m)...)
batch:
	for len(b) < maxBatchBytes {
		select {
		case m := <-msgs:
			b = append(b, ',')
			b = append(b, c.s.cache.get(m)...)
		default:
			break batch
		}
	}
	b = append(b, messagesTail...)
	err := c.write(b)
	*bp = b
	putBuf(bp)
	return err
}

// writeEach writes m and whatever else is queued, up to maxBatchBytes, each
// as a WebSocket message of its own holding the message object, which is
// what the clients of single-topic sockets JSON.parse. The heldWriter
// gathers the frames into one socket write.
func (c *serverConn) writeEach(m *pubsub.Message, msgs <-chan *pubsub.Message) error {
	return c.writing(func() error {
		c.hw.hold()
		var err error
		for n := 0; ; {
			enc := c.s.cache.get(m)
			if err = c.ws.Write(context.Background(), websocket.MessageText, enc); err != nil {
				break
			}
			if n += len(enc); n >= maxBatchBytes {
				break
			}
			select {
			case m = <-msgs:
				continue
			default:
			}
			break
		}
		if rerr := c.hw.release(); err == nil {
			err = rerr
		}
		return err
	})
}

// hubEnded has the connection closed after the hub ended its side.
func (c *serverConn) hubEnded() {
	if c.closing.Load() {
		return // it was us
	}
	perr := asPubsubError(c.hc.Err())
	code := CloseHubEnded
	if perr.Code == pubsub.CodeSlowConsumer {
		code = CloseSlowConsumer
	}
	c.requestClose(code, perr)
}

// fail sends an error frame for err, unless nil, and closes the connection
// with code and a close handshake. Only the reading goroutine calls it.
func (c *serverConn) fail(code websocket.StatusCode, err *pubsub.Error) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	// Turn later close requests away: they would set a read deadline in
	// the middle of the close handshake.
	c.pending.CompareAndSwap(nil, &closeRequest{code: code, err: err})
	reason := "server shutting down"
	if err != nil {
		reason = closeReason(err)
		bp := getBuf()
		*bp = appendError(*bp, "", err)
		werr := c.write(*bp)
		putBuf(bp)
		if werr != nil {
			c.drop()
			return
		}
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	_ = c.writing(func() error { return c.ws.Close(code, reason) })
}

// goAway has the connection closed for Shutdown once its current request
// is answered.
func (c *serverConn) goAway() {
	c.requestClose(CloseGoingAway, nil)
}

// drop cuts the connection off without a close handshake. It does not block.
func (c *serverConn) drop() {
	_ = c.nc.Close()
	c.closing.Store(true)
}

// Buffers for frames, shared by all connections so that an idle one holds
// none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(bp *[]byte) {
	if cap(*bp) > 4*maxBatchBytes {
		return
	}
	*bp = (*bp)[:0]
	bufPool.Put(bp)
}
