package network

import (
	"net/http"
	"strconv"

	"github.com/plazahq/plaza/pubsub"
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
