package pubsub

import (
	"errors"
	"fmt"
	"time"
)

// Code is the machine-readable kind of an [Error]. Codes are the same strings
// everywhere: in Go errors, on the wire, and in HTTP JSON bodies.
type Code string

// The codes. The table in the package documentation says where each comes from.
const (
	CodeInvalidTopicName     Code = "INVALID_TOPIC_NAME"
	CodePayloadTooLarge      Code = "PAYLOAD_TOO_LARGE"
	CodeInvalidPayload       Code = "INVALID_PAYLOAD"
	CodeNotConnected         Code = "NOT_CONNECTED"
	CodeRateLimitExceeded    Code = "RATE_LIMIT_EXCEEDED"
	CodePermissionDenied     Code = "PERMISSION_DENIED"
	CodeNetworkError         Code = "NETWORK_ERROR"
	CodeInvalidLimit         Code = "INVALID_LIMIT"
	CodeInvalidHistoryOpts   Code = "INVALID_HISTORY_OPTS"
	CodeUnauthenticated      Code = "UNAUTHENTICATED"
	CodeTooManySubscriptions Code = "TOO_MANY_SUBSCRIPTIONS"
	CodeSlowConsumer         Code = "SLOW_CONSUMER"
	CodeInvalidRequest       Code = "INVALID_REQUEST"
	CodeInternal             Code = "INTERNAL_ERROR"
)

// Retriable reports whether an operation that failed with c may succeed if it
// is tried again unchanged.
func (c Code) Retriable() bool {
	switch c {
	case CodeRateLimitExceeded, CodeNetworkError, CodeSlowConsumer:
		return true
	}
	return false
}

// Error is the error every Plaza operation returns. Test for a kind with
// errors.Is against a sentinel:
//
//	if errors.Is(err, pubsub.ErrRateLimitExceeded) { ... }
//
// or read the details with errors.As:
//
//	var perr *pubsub.Error
//	if errors.As(err, &perr) && perr.Retriable() { ... }
//
// Two Errors are equal under errors.Is when their codes are equal. Err, when
// set, is the underlying cause (for example context.Canceled or a socket
// error) and is reachable with errors.Is and errors.As too.
type Error struct {
	Code    Code
	Message string // human-readable; may be empty

	// RetryAfter, when positive, says how long to wait before trying again
	// (set with RATE_LIMIT_EXCEEDED).
	RetryAfter time.Duration

	Err error // the cause, if any
}

// Errorf returns an *Error with code c and a formatted message. A %w verb in
// format sets Err.
func Errorf(c Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: c, Message: err.Error(), Err: errors.Unwrap(err)}
}

func (e *Error) Error() string {
	switch {
	case e.Message != "":
		return "pubsub: " + string(e.Code) + ": " + e.Message
	case e.Err != nil:
		return "pubsub: " + string(e.Code) + ": " + e.Err.Error()
	}
	return "pubsub: " + string(e.Code)
}

// Retriable reports whether the failed operation may succeed if tried again.
func (e *Error) Retriable() bool { return e.Code.Retriable() }

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Sentinels, one per code, for errors.Is.
var (
	ErrInvalidTopicName     = &Error{Code: CodeInvalidTopicName}
	ErrPayloadTooLarge      = &Error{Code: CodePayloadTooLarge}
	ErrInvalidPayload       = &Error{Code: CodeInvalidPayload}
	ErrNotConnected         = &Error{Code: CodeNotConnected}
	ErrRateLimitExceeded    = &Error{Code: CodeRateLimitExceeded}
	ErrPermissionDenied     = &Error{Code: CodePermissionDenied}
	ErrNetwork              = &Error{Code: CodeNetworkError}
	ErrInvalidLimit         = &Error{Code: CodeInvalidLimit}
	ErrInvalidHistoryOpts   = &Error{Code: CodeInvalidHistoryOpts}
	ErrUnauthenticated      = &Error{Code: CodeUnauthenticated}
	ErrTooManySubscriptions = &Error{Code: CodeTooManySubscriptions}
	ErrSlowConsumer         = &Error{Code: CodeSlowConsumer}
	ErrInvalidRequest       = &Error{Code: CodeInvalidRequest}
	ErrInternal             = &Error{Code: CodeInternal}
)

// CodeOf returns the code of the first *Error in err's chain, or "" if there
// is none.
func CodeOf(err error) Code {
	var perr *Error
	if errors.As(err, &perr) {
		return perr.Code
	}
	return ""
}
