package network

import (
	"errors"
	"strings"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
)

// Close codes the server uses when it ends a WebSocket connection. Codes below
// 4000 are the standard ones of RFC 6455; codes from 4000 are Plaza's own.
// Before closing with a 4xxx code the server sends an error frame (without an
// id) whose code says why, so a client need not know this table; the Go client
// reports that code as its Conn's Err.
const (
	// CloseNormal (1000): the client closed the connection.
	CloseNormal = websocket.StatusNormalClosure
	// CloseGoingAway (1001): the server is shutting down (Server.Shutdown).
	// Reconnect, later or to another server. Go client: NETWORK_ERROR.
	CloseGoingAway = websocket.StatusGoingAway
	// CloseUnsupportedData (1003): the client sent a binary frame; the
	// protocol is JSON text frames only. Go client: INVALID_REQUEST.
	CloseUnsupportedData = websocket.StatusUnsupportedData
	// ClosePolicyViolation (1008): the client sent frames faster than
	// Options.MaxFrameRate. Go client: RATE_LIMIT_EXCEEDED.
	ClosePolicyViolation = websocket.StatusPolicyViolation
	// CloseTooBig (1009): the client sent a frame larger than
	// Options.MaxFrameBytes. Go client: PAYLOAD_TOO_LARGE.
	CloseTooBig = websocket.StatusMessageTooBig
	// CloseInternal (1011): the server failed. Go client: INTERNAL_ERROR.
	CloseInternal = websocket.StatusInternalError

	// CloseUnauthenticated (4001): no credentials, bad credentials, a first
	// frame that was not {"auth": …}, no credentials within
	// Options.AuthTimeout, or, on a single-topic socket, credentials that
	// may not subscribe to its topic (the error frame then says
	// PERMISSION_DENIED). Go client: UNAUTHENTICATED.
	CloseUnauthenticated websocket.StatusCode = 4001
	// CloseCredentialsExpired (4003): the credentials expired
	// (Identity.Expires) and were not renewed with a new auth frame. Go
	// client: UNAUTHENTICATED.
	CloseCredentialsExpired websocket.StatusCode = 4003
	// CloseMaxDuration (4004): a connection to a temporary client socket
	// lasted the max_dur the socket was created with; the error frame and
	// the close reason say max_duration_reached ([CodeMaxDurationReached]).
	// Not an authentication failure: connect again, with the same path
	// while it has uses left or with a new one. Go client:
	// max_duration_reached.
	CloseMaxDuration websocket.StatusCode = 4004
	// CloseSlowConsumer (4008): the client did not read its messages fast
	// enough: more than Options.QueueBytes of messages waited for it (the
	// hub dropped its connection), or a write took longer than
	// Options.WriteTimeout. Go client: SLOW_CONSUMER.
	CloseSlowConsumer websocket.StatusCode = 4008
	// CloseHubEnded (4009): the hub refused or ended the connection; the
	// error frame before the close says why (NETWORK_ERROR when the hub
	// dropped it, for example). Go client: that code.
	CloseHubEnded websocket.StatusCode = 4009
)

// closeCodeError maps a close code to the error a Go client reports when the
// server gave no error frame before closing.
func closeCodeError(code websocket.StatusCode, reason string) *pubsub.Error {
	c := pubsub.CodeNetworkError
	switch code {
	case CloseUnsupportedData:
		c = pubsub.CodeInvalidRequest
	case ClosePolicyViolation:
		c = pubsub.CodeRateLimitExceeded
	case CloseTooBig:
		c = pubsub.CodePayloadTooLarge
	case CloseInternal:
		c = pubsub.CodeInternal
	case CloseUnauthenticated, CloseCredentialsExpired:
		c = pubsub.CodeUnauthenticated
	case CloseMaxDuration:
		c = CodeMaxDurationReached
	case CloseSlowConsumer:
		c = pubsub.CodeSlowConsumer
	}
	if reason == "" {
		reason = "connection closed with status " + code.String()
	}
	return &pubsub.Error{Code: c, Message: reason}
}

// closeReason is the close frame reason for err: its code and message, cut to
// the 123 bytes a close frame allows.
func closeReason(err *pubsub.Error) string {
	s := string(err.Code)
	if err.Message != "" {
		s += ": " + err.Message
	}
	return clip(s, 120)
}

// lostError wraps a transport failure as NETWORK_ERROR.
func lostError(msg string, err error) *pubsub.Error {
	return &pubsub.Error{Code: pubsub.CodeNetworkError, Message: msg, Err: err}
}

// asPubsubError returns err as a *pubsub.Error, wrapping anything else as
// INTERNAL_ERROR.
func asPubsubError(err error) *pubsub.Error {
	var perr *pubsub.Error
	if errors.As(err, &perr) {
		return perr
	}
	return &pubsub.Error{Code: pubsub.CodeInternal, Message: "internal error", Err: err}
}

// statusError maps the HTTP status of a refused WebSocket handshake to an
// error.
func statusError(status int, body string) *pubsub.Error {
	body = strings.TrimSpace(clip(body, 200))
	switch {
	case status == 401:
		return &pubsub.Error{Code: pubsub.CodeUnauthenticated, Message: body}
	case status == 403:
		return &pubsub.Error{Code: pubsub.CodePermissionDenied, Message: body}
	case status == 429:
		return &pubsub.Error{Code: pubsub.CodeRateLimitExceeded, Message: body}
	case status >= 400 && status < 500 && status != 404 && status != 408:
		return &pubsub.Error{Code: pubsub.CodeInvalidRequest, Message: body}
	}
	return &pubsub.Error{Code: pubsub.CodeNetworkError, Message: body}
}
