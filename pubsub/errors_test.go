package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/plazahq/plaza/pubsub"
)

func TestErrorIsAndAs(t *testing.T) {
	t.Parallel()
	base := pubsub.Errorf(pubsub.CodeNetworkError, "dial: %w", io.ErrUnexpectedEOF)
	wrapped := fmt.Errorf("sending chat: %w", base)

	if !errors.Is(wrapped, pubsub.ErrNetwork) {
		t.Errorf("errors.Is(%v, ErrNetwork) = false", wrapped)
	}
	if errors.Is(wrapped, pubsub.ErrRateLimitExceeded) {
		t.Errorf("errors.Is(%v, ErrRateLimitExceeded) = true", wrapped)
	}
	if !errors.Is(wrapped, io.ErrUnexpectedEOF) {
		t.Errorf("the cause is not reachable through %v", wrapped)
	}
	var perr *pubsub.Error
	if !errors.As(wrapped, &perr) || perr.Code != pubsub.CodeNetworkError || !perr.Retriable() {
		t.Errorf("errors.As(%v) = %+v", wrapped, perr)
	}
	if got, want := base.Error(), "pubsub: NETWORK_ERROR: dial: unexpected EOF"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got := pubsub.CodeOf(wrapped); got != pubsub.CodeNetworkError {
		t.Errorf("CodeOf() = %q", got)
	}
	if got := pubsub.CodeOf(io.EOF); got != "" {
		t.Errorf("CodeOf(io.EOF) = %q, want \"\"", got)
	}
}

func TestRetriableCodes(t *testing.T) {
	t.Parallel()
	retriable := map[pubsub.Code]bool{
		pubsub.CodeRateLimitExceeded: true,
		pubsub.CodeNetworkError:      true,
		pubsub.CodeSlowConsumer:      true,
	}
	for _, c := range []pubsub.Code{
		pubsub.CodeInvalidTopicName, pubsub.CodePayloadTooLarge, pubsub.CodeInvalidPayload,
		pubsub.CodeNotConnected, pubsub.CodeRateLimitExceeded, pubsub.CodePermissionDenied,
		pubsub.CodeNetworkError, pubsub.CodeInvalidLimit, pubsub.CodeInvalidHistoryOpts,
		pubsub.CodeUnauthenticated, pubsub.CodeTooManySubscriptions, pubsub.CodeSlowConsumer,
		pubsub.CodeInvalidRequest, pubsub.CodeInternal,
	} {
		if got := c.Retriable(); got != retriable[c] {
			t.Errorf("%s.Retriable() = %v, want %v", c, got, retriable[c])
		}
	}
}

func TestParseID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want pubsub.ID
		ok   bool
	}{
		{"1", 1, true},
		{"1288834974657", 1288834974657, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false},
		{"", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{" 1", 0, false},
		{"1e3", 0, false},
		{"0x10", 0, false},
		{"12345678901234567890", 0, false},
	}
	for _, tt := range tests {
		got, err := pubsub.ParseID(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseID(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, pubsub.ErrInvalidRequest) {
			t.Errorf("ParseID(%q) error %v is not INVALID_REQUEST", tt.in, err)
		}
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "0", "-5", "9223372036854775807", "99999999999999999999", "abc", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := pubsub.ParseID(s)
		if err != nil {
			return
		}
		if id < 0 || id.String() != trimZeros(s) {
			t.Fatalf("ParseID(%q) = %v, which prints as %q", s, id, id.String())
		}
	})
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	r := join(t, hub, "alice", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Publish(ctx, "chat", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish(canceled ctx) = %v, want context.Canceled", err)
	}
	if _, err := r.GetHistory(ctx, "chat"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetHistory(canceled ctx) = %v, want context.Canceled", err)
	}
}
