package network

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/topic"
)

// publishBody is a decoded HTTP publish request body.
type publishBody struct {
	Message        json.RawMessage
	To             []string
	Metadata       map[string]string
	NoPersist      bool
	IdempotencyKey string
}

// wirePublishBody is the JSON body of an HTTP publish, every member raw so
// that each is decoded with the error code that fits it.
type wirePublishBody struct {
	Message        json.RawMessage `json:"message"`
	To             json.RawMessage `json:"to"`
	Metadata       json.RawMessage `json:"metadata"`
	Persist        json.RawMessage `json:"persist"`
	IdempotencyKey json.RawMessage `json:"idempotencyKey"`
}

// decodePublishBody decodes the body of POST …/publish. With a Content-Type
// of text/plain the whole body is the message, a string; otherwise the body
// is a JSON object {"message": <any JSON>, "to": [...], "metadata": {...},
// "persist": bool, "idempotencyKey": "..."} of which only "message" is
// required.
func decodePublishBody(contentType string, body []byte) (publishBody, *pubsub.Error) {
	var p publishBody
	if !utf8.Valid(body) {
		return p, pubsub.Errorf(pubsub.CodeInvalidPayload, "body is not valid UTF-8")
	}
	if mt, _, err := mime.ParseMediaType(contentType); err == nil && mt == "text/plain" {
		if len(body) > pubsub.MaxPayloadBytes {
			return p, pubsub.Errorf(pubsub.CodePayloadTooLarge, "message is %d bytes, more than %d", len(body), pubsub.MaxPayloadBytes)
		}
		p.Message = appendString(nil, string(body))
		return p, nil
	}
	var w wirePublishBody
	if err := json.Unmarshal(body, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return p, pubsub.Errorf(pubsub.CodeInvalidRequest, `the body must be a JSON object {"message": …}, not %s`, te.Value)
		}
		if perr := tooDeep("body", body); perr != nil {
			return p, perr
		}
		return p, pubsub.Errorf(pubsub.CodeInvalidRequest, "malformed JSON body: %s", jsonProblem(err))
	}
	if w.Message == nil {
		return p, pubsub.Errorf(pubsub.CodeInvalidPayload, `the body has no "message"`)
	}
	var persist *bool
	if err := firstError(
		field(w.To, &p.To, pubsub.CodeInvalidRequest, "to"),
		field(w.Metadata, &p.Metadata, pubsub.CodeInvalidPayload, "metadata"),
		field(w.Persist, &persist, pubsub.CodeInvalidRequest, "persist"),
		field(w.IdempotencyKey, &p.IdempotencyKey, pubsub.CodeInvalidRequest, "idempotencyKey"),
	); err != nil {
		return p, err
	}
	p.Message = w.Message
	p.NoPersist = persist != nil && !*persist
	return p, nil
}

// servePublish answers POST /{room}/pubsub/{topic}/publish (and the legacy
// POST /{room}/publish/{topic}): it publishes the body's message and
// answers with the message as the hub confirmed it.
func (s *Server) servePublish(w http.ResponseWriter, r *http.Request) {
	room, name := r.PathValue("room"), r.PathValue("topic")
	id, perr := s.httpIdentity(r)
	if perr != nil {
		fail(w, perr)
		return
	}
	if topic.IsPattern(name) {
		fail(w, pubsub.Errorf(pubsub.CodeInvalidTopicName, "cannot publish to the pattern %q: patterns are for subscribing", clip(name, 64)))
		return
	}
	if err := pubsub.CheckTopic(name); err != nil {
		fail(w, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxFrameBytes))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			fail(w, pubsub.Errorf(pubsub.CodePayloadTooLarge, "body is larger than %d bytes", mbe.Limit))
			return
		}
		fail(w, lostError("reading the body", err))
		return
	}
	p, perr := decodePublishBody(r.Header.Get("Content-Type"), body)
	if perr != nil {
		fail(w, perr)
		return
	}
	if p.IdempotencyKey == "" {
		p.IdempotencyKey = r.Header.Get("Idempotency-Key")
	}
	req := pubsub.PublishRequest{
		Topic:          name,
		Payload:        p.Message,
		To:             p.To,
		Metadata:       p.Metadata,
		NoPersist:      p.NoPersist,
		IdempotencyKey: p.IdempotencyKey,
	}
	if err := pubsub.CheckPublish(&req); err != nil {
		fail(w, err)
		return
	}
	ctx := r.Context()
	if err := s.authorize(ctx, id, pubsub.Access{Action: pubsub.ActionPublish, Room: room, Topic: name, ClientID: id.ClientID}); err != nil {
		fail(w, err)
		return
	}
	if limit := s.publishLimit(room); limit > 0 {
		ok, after, err := s.opts.PublishWindow.Allow(ctx, room, limit, s.opts.Clock.Now())
		if err != nil {
			fail(w, storeError("counting the publish window", err))
			return
		}
		if !ok {
			perr := pubsub.Errorf(pubsub.CodeRateLimitExceeded, "more than %d publishes per minute in this room", limit)
			perr.RetryAfter = after
			fail(w, perr)
			return
		}
	}
	s.answerThroughHub(ctx, w, room, id, func(hc pubsub.Conn, b []byte) ([]byte, error) {
		m, err := hc.Publish(ctx, req)
		return appendMessage(b, &m), err
	})
}
