package socketio

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/plazahq/plaza/internal/jsonvalid"
	"github.com/plazahq/plaza/pubsub"
)

// MetadataEvent is the metadata key that carries a message's Socket.IO event
// name on the hub: POST /publish sets it, and a Plaza publish that sets it
// reaches Socket.IO clients under that name.
const MetadataEvent = "event"

// DefaultEvent is the Socket.IO event under which a Plaza message without
// an event name (metadata "event") reaches Socket.IO clients, unless
// Options.DefaultEvent says otherwise: "message", what socket.send emits.
const DefaultEvent = "message"

// MaxEventLen is the longest event name, in bytes.
const MaxEventLen = 128

// publishReadTimeout bounds the time a POST /publish body may take to
// arrive.
const publishReadTimeout = 30 * time.Second

// maxPublishBody bounds the body of POST /publish: the largest data, plus
// room for the channel, the event and JSON escaping.
const maxPublishBody = 2 * pubsub.MaxPayloadBytes

// reservedEvents are the event names a publish cannot use: those Socket.IO
// keeps for itself and those of this package's subscribe protocol.
var reservedEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true, "disconnecting": true,
	"newListener": true, "removeListener": true,
	eventSubscribed: true, eventUnsubscribed: true, eventSubscribeError: true,
}

// publishBody is a decoded POST /publish body.
type publishBody struct {
	Channel string
	Event   string
	Data    json.RawMessage // "null" when the body has none
}

// decodePublishBody decodes the body of POST /publish: a JSON object
// {"channel": "orders.42", "event": "order.updated", "data": <any JSON>}
// of which data is optional. Other members are ignored.
func decodePublishBody(body []byte) (publishBody, *pubsub.Error) {
	var p publishBody
	if !utf8.Valid(body) {
		return p, pubsub.Errorf(pubsub.CodeInvalidPayload, "the body is not valid UTF-8")
	}
	var w struct {
		Channel json.RawMessage `json:"channel"`
		Event   json.RawMessage `json:"event"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return p, pubsub.Errorf(pubsub.CodeInvalidRequest, `the body must be a JSON object {"channel": …, "event": …, "data": …}, not %s`, te.Value)
		}
		if jsonvalid.Check(body, jsonvalid.StdDepth) == jsonvalid.ErrTooDeep {
			// Only "data" may nest: the body fails as its data would have,
			// had encoding/json decoded it, as on Plaza's own HTTP publish.
			return p, pubsub.Errorf(pubsub.CodeInvalidPayload, `the body nests arrays and objects more than %d levels deep; "data" may nest at most %d`, jsonvalid.StdDepth, pubsub.MaxPayloadDepth)
		}
		return p, pubsub.Errorf(pubsub.CodeInvalidRequest, "malformed JSON body: %s", jsonProblem(err))
	}
	var err *pubsub.Error
	if p.Channel, err = stringMember(w.Channel, "channel", pubsub.CodeInvalidTopicName); err != nil {
		return p, err
	}
	if err := pubsub.CheckTopic(p.Channel); err != nil {
		return p, pubsub.Errorf(pubsub.CodeInvalidTopicName, `"channel" %q is not a valid channel name: 1 to 128 characters of [a-zA-Z0-9_-:.]`, clip(p.Channel, 64))
	}
	if p.Event, err = stringMember(w.Event, "event", pubsub.CodeInvalidRequest); err != nil {
		return p, err
	}
	if err := checkEvent(p.Event); err != nil {
		return p, err
	}
	p.Data = w.Data
	if len(p.Data) == 0 {
		p.Data = json.RawMessage("null")
	}
	if err := pubsub.CheckPayload(p.Data); err != nil {
		perr := err.(*pubsub.Error)
		return p, pubsub.Errorf(perr.Code, `"data": %s`, perr.Message)
	}
	return p, nil
}

// stringMember decodes a required string member of the body.
func stringMember(raw json.RawMessage, name string, code pubsub.Code) (string, *pubsub.Error) {
	if raw == nil || string(raw) == "null" {
		return "", pubsub.Errorf(code, "the body has no %q", name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", pubsub.Errorf(code, "%q must be a string", name)
	}
	return s, nil
}

// checkEvent validates an event name: 1 to MaxEventLen bytes of UTF-8
// without control characters, and not a reserved name.
func checkEvent(ev string) *pubsub.Error {
	if ev == "" || len(ev) > MaxEventLen || !utf8.ValidString(ev) {
		return pubsub.Errorf(pubsub.CodeInvalidRequest, `"event" must be 1 to %d bytes of UTF-8`, MaxEventLen)
	}
	if strings.ContainsFunc(ev, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return pubsub.Errorf(pubsub.CodeInvalidRequest, `"event" %q has a control character`, ev)
	}
	if reservedEvents[ev] {
		return pubsub.Errorf(pubsub.CodeInvalidRequest, `"event" %q is reserved: Socket.IO clients could not listen for it`, ev)
	}
	return nil
}

// jsonProblem describes a JSON syntax error without Go type names.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return se.Error() + " at offset " + strconv.FormatInt(se.Offset, 10)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return "not a JSON object"
}

// publishAnswer is the data of a successful POST /publish.
type publishAnswer struct {
	ID        pubsub.ID `json:"id"`
	Channel   string    `json:"channel"`
	Event     string    `json:"event"`
	Timestamp time.Time `json:"timestamp"`
}

// servePublish answers POST /publish: it authenticates the App ID and
// publish key, decodes the body, applies the app's cap and publishes on the
// hub as Options.PublisherID in the room of the App ID, with the data as the
// payload and the event as metadata "event".
func (s *Server) servePublish(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		failStatus(w, http.StatusMethodNotAllowed, pubsub.Errorf(pubsub.CodeInvalidRequest, "use POST /publish"))
		return
	}
	app, perr := s.publishApp(r)
	if perr != nil {
		s.opts.Logger.Info("socketio: publish refused", "remote", r.RemoteAddr, "err", perr)
		fail(w, perr)
		return
	}
	// A body must arrive promptly, whatever the http.Server's timeouts.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(publishReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPublishBody))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			fail(w, pubsub.Errorf(pubsub.CodePayloadTooLarge, "the body is larger than %d bytes", mbe.Limit))
			return
		}
		fail(w, pubsub.Errorf(pubsub.CodeNetworkError, "reading the body: %v", err))
		return
	}
	p, perr := decodePublishBody(body)
	if perr != nil {
		fail(w, perr)
		return
	}
	limit := s.opts.PublishPerMinute
	if app.PublishPerMinute != 0 {
		limit = app.PublishPerMinute
	}
	if limit > 0 {
		if ok, after := s.limiter.Allow(app.ID, limit, s.opts.Clock.Now()); !ok {
			s.stats.rateLimited.Add(1)
			perr := pubsub.Errorf(pubsub.CodeRateLimitExceeded, "more than %d publishes per minute for app %q", limit, app.ID)
			perr.RetryAfter = after
			fail(w, perr)
			return
		}
	}
	ctx := r.Context()
	room, err := s.publisher(ctx, app.ID)
	if err != nil {
		fail(w, err)
		return
	}
	m, err := room.Publish(ctx, p.Channel, p.Data, pubsub.Metadata(map[string]string{MetadataEvent: p.Event}))
	if err != nil {
		fail(w, err)
		return
	}
	s.stats.published.Add(1)
	writeData(w, http.StatusOK, publishAnswer{ID: m.ID, Channel: m.Topic, Event: p.Event, Timestamp: m.Timestamp})
}

// publishApp authenticates a publish: the X-App-Id header and the publish
// key of "Authorization: Bearer <key>".
func (s *Server) publishApp(r *http.Request) (App, *pubsub.Error) {
	id := strings.TrimSpace(r.Header.Get("X-App-Id"))
	if id == "" {
		return App{}, pubsub.Errorf(pubsub.CodeUnauthenticated, "missing the X-App-Id header: send your App ID in it")
	}
	key, ok := bearer(r)
	if !ok {
		return App{}, pubsub.Errorf(pubsub.CodeUnauthenticated, `missing "Authorization: Bearer <publish key>"`)
	}
	app, kind, err := s.reg.Authenticate(id, key)
	switch {
	case errors.Is(err, ErrUnknownApp):
		return App{}, pubsub.Errorf(pubsub.CodeUnauthenticated, "unknown App ID %q in X-App-Id", clip(id, 64))
	case errors.Is(err, ErrWrongKey) && strings.HasPrefix(key, SubscribeKeyPrefix):
		return App{}, pubsub.Errorf(pubsub.CodeUnauthenticated, "wrong key for app %q, and a subscribe key (sub_live_…) never publishes: send the app's publish key (pk_live_…)", id)
	case errors.Is(err, ErrWrongKey):
		return App{}, pubsub.Errorf(pubsub.CodeUnauthenticated, "wrong publish key for app %q", id)
	case err != nil:
		return App{}, asError(err)
	case kind != KeyPublish:
		return App{}, pubsub.Errorf(pubsub.CodePermissionDenied, "this is the subscribe key of app %q: POST /publish needs the publish key (pk_live_…), not the subscribe key", id)
	}
	return app, nil
}

// asError returns err as a *pubsub.Error, INTERNAL_ERROR if it is none.
func asError(err error) *pubsub.Error {
	if perr := (*pubsub.Error)(nil); errors.As(err, &perr) {
		return perr
	}
	return &pubsub.Error{Code: pubsub.CodeInternal, Message: err.Error(), Err: err}
}
