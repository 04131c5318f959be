package socketio

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/plazahq/plaza/pubsub"
)

// errorBody is the JSON of an HTTP error answer, as transport/network writes
// it: {"error": {"code": "…", "message": "…"}}.
type errorBody struct {
	Error wireError `json:"error"`
}

type wireError struct {
	Code    pubsub.Code `json:"code"`
	Message string      `json:"message,omitempty"`
	// RetryAfterMs comes with RATE_LIMIT_EXCEEDED, as does a Retry-After
	// header in whole seconds.
	RetryAfterMs int64 `json:"retryAfterMs,omitempty"`
}

// toWireError turns any error into the code and message a client sees.
func toWireError(err error) wireError {
	var perr *pubsub.Error
	if !errors.As(err, &perr) {
		return wireError{Code: pubsub.CodeInternal, Message: "internal error"}
	}
	w := wireError{Code: perr.Code, Message: perr.Message}
	if w.Message == "" && perr.Err != nil {
		w.Message = perr.Err.Error()
	}
	if perr.RetryAfter > 0 {
		w.RetryAfterMs = max(1, perr.RetryAfter.Milliseconds())
	}
	return w
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
	case codeNotFound:
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// codeNotFound is the code of the admin API's 404 answers.
const codeNotFound pubsub.Code = "NOT_FOUND"

// fail answers a plain HTTP request with err, with the status its code
// calls for.
func fail(w http.ResponseWriter, err error) {
	failStatus(w, httpStatus(toWireError(err).Code), err)
}

// failStatus answers with err and an explicit status.
func failStatus(w http.ResponseWriter, status int, err error) {
	we := toWireError(err)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if we.RetryAfterMs > 0 {
		h.Set("Retry-After", strconv.FormatInt((we.RetryAfterMs+999)/1000, 10))
	}
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", "Bearer")
	}
	w.WriteHeader(status)
	b, _ := json.Marshal(errorBody{Error: we})
	_, _ = w.Write(append(b, '\n'))
}

// writeData answers with the JSON envelope {"data": v} and status.
func writeData(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(struct {
		Data any `json:"data"`
	}{v})
	if err != nil {
		fail(w, pubsub.Errorf(pubsub.CodeInternal, "encoding the answer: %v", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
// The scheme is case-insensitive (RFC 9110).
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
