package network

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/topic"
)

// writeHTTPError answers a plain HTTP request with the JSON error envelope
// {"error": {"code": "…", "message": "…"}}. A RATE_LIMIT_EXCEEDED error with
// a RetryAfter also sets the Retry-After header, in whole seconds.
func writeHTTPError(w http.ResponseWriter, status int, err error) {
	we := toWireError(err)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if we.RetryAfterMs > 0 {
		h.Set("Retry-After", strconv.FormatInt((we.RetryAfterMs+999)/1000, 10))
	}
	w.WriteHeader(status)
	b := append([]byte(`{"error":{"code":`), appendString(nil, string(we.Code))...)
	if we.Message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, we.Message)
	}
	b = append(b, "}}\n"...)
	_, _ = w.Write(b)
}

// httpStatus is the HTTP status that fits an error code.
func httpStatus(c pubsub.Code) int {
	switch c {
	case pubsub.CodeInvalidTopicName, pubsub.CodeInvalidPayload, pubsub.CodeInvalidLimit,
		pubsub.CodeInvalidHistoryOpts, pubsub.CodeInvalidRequest, pubsub.CodeTooManySubscriptions:
		return http.StatusBadRequest
	case pubsub.CodeUnauthenticated:
		return http.StatusUnauthorized
	case pubsub.CodePermissionDenied:
		return http.StatusForbidden
	case pubsub.CodePayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case pubsub.CodeRateLimitExceeded:
		return http.StatusTooManyRequests
	case pubsub.CodeNetworkError, pubsub.CodeNotConnected, pubsub.CodeSlowConsumer:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeData answers a plain HTTP request with the JSON envelope
// {"data": …}; data is the encoded JSON value.
func writeData(w http.ResponseWriter, data []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	b := make([]byte, 0, len(data)+11)
	b = append(b, `{"data":`...)
	b = append(b, data...)
	b = append(b, "}\n"...)
	_, _ = w.Write(b)
}

// fail answers a plain HTTP request with err in the error envelope, with
// the status that fits its code.
func fail(w http.ResponseWriter, err error) {
	we := toWireError(err)
	status := httpStatus(we.Code)
	if s, ok := socketStatus[we.Code]; ok {
		status = s
	}
	writeHTTPError(w, status, err)
}

// httpIdentity authenticates a plain HTTP request (publish, history, SSE,
// client socket creation) with the credential of its Authorization header or
// ?token= parameter; a request without one is asked about with "".
func (s *Server) httpIdentity(r *http.Request) (Identity, *pubsub.Error) {
	cred, _ := credential(r)
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.AuthTimeout)
	defer cancel()
	id, err := s.opts.Authenticate(ctx, r, cred)
	if err != nil {
		perr := authError(err)
		s.opts.Logger.Info("network: authentication failed", "path", r.URL.Path, "remote", r.RemoteAddr, "err", perr)
		return Identity{}, perr
	}
	if err := pubsub.CheckClientID(id.ClientID); err != nil {
		s.opts.Logger.Warn("network: Authenticate returned an invalid client id", "id", id.ClientID, "err", err)
		return Identity{}, pubsub.Errorf(pubsub.CodeInternal, "authentication produced an invalid client id")
	}
	if !id.Expires.IsZero() && !id.Expires.After(s.opts.Clock.Now()) {
		return Identity{}, pubsub.Errorf(pubsub.CodeUnauthenticated, "credentials expired")
	}
	return id, nil
}

// routeTopic reads the {topic} of a route: a topic name, or with ?pattern=true
// a pattern. A wildcard without pattern=true is refused with a hint.
func routeTopic(r *http.Request) (name string, pattern bool, perr *pubsub.Error) {
	name = r.PathValue("topic")
	pattern, perr = queryBool(r.URL.Query(), "pattern")
	if perr != nil {
		return "", false, perr
	}
	if pattern {
		if err := pubsub.CheckSubscribeTopic(name); err != nil {
			return "", false, asPubsubError(err)
		}
		return name, true, nil
	}
	if topic.IsPattern(name) {
		return "", false, pubsub.Errorf(pubsub.CodeInvalidTopicName, "%q is a pattern: add ?pattern=true to subscribe to it", clip(name, 64))
	}
	if err := pubsub.CheckTopic(name); err != nil {
		return "", false, asPubsubError(err)
	}
	return name, false, nil
}

// queryBool reads a boolean query parameter: absent, "", "false" or "0" is
// false; "true" or "1" is true.
func queryBool(q url.Values, name string) (bool, *pubsub.Error) {
	switch v := q.Get(name); v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	default:
		return false, pubsub.Errorf(pubsub.CodeInvalidRequest, "%s must be true or false, not %q", name, clip(v, 16))
	}
}

// queryInt reads an integer query parameter within [lo, hi]; absent means
// def.
func queryInt(q url.Values, name string, def, lo, hi int64, code pubsub.Code) (int64, *pubsub.Error) {
	v, ok := q[name]
	if !ok || len(v) == 0 || v[0] == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, pubsub.Errorf(code, "%s must be an integer from %d to %d, not %q", name, lo, hi, clip(v[0], 24))
	}
	return n, nil
}

// isUpgrade reports whether r asks for a WebSocket.
func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if equalFoldASCII(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// serveNotFound answers requests that match no route: 405 with an Allow
// header when the path exists for another method, 404 otherwise, each in the
// error envelope.
func (s *Server) serveNotFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeHTTPError(w, http.StatusMethodNotAllowed, pubsub.Errorf(pubsub.CodeInvalidRequest, "%s is not allowed here; use %s", r.Method, strings.Join(allow, " or ")))
		return
	}
	writeHTTPError(w, http.StatusNotFound, pubsub.Errorf(pubsub.CodeInvalidRequest, "no route for %s %s", r.Method, clip(r.URL.Path, 128)))
}
