package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plazahq/plaza/internal/fakeclock"
	"github.com/plazahq/plaza/internal/testwait"
	"github.com/plazahq/plaza/pubsub"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for something that should happen.
const waitTimeout = testwait.Timeout

// waitGroup waits for wg, failing the test when that takes longer than
// waitTimeout.
var waitGroup = testwait.Group

// t0 is where fake clocks start.
var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// newHub returns a hub on a fake clock (unless opts has a clock) that closes
// when the test ends.
func newHub(tb testing.TB, opts Options) (*Hub, *fakeclock.Clock) {
	tb.Helper()
	var clock *fakeclock.Clock
	if opts.Clock == nil {
		clock = fakeclock.New(t0)
		opts.Clock = clock
	}
	h, err := New(opts)
	if err != nil {
		tb.Fatalf("New(%+v) = %v", opts, err)
	}
	tb.Cleanup(func() {
		if err := h.Close(); err != nil {
			tb.Errorf("Close() = %v", err)
		}
	})
	return h, clock
}

func connect(tb testing.TB, h *Hub, room, id string) pubsub.Conn {
	tb.Helper()
	c, err := h.Connect(context.Background(), pubsub.ConnectRequest{Room: room, ClientID: id})
	if err != nil {
		tb.Fatalf("Connect(%q, %q) = %v", room, id, err)
	}
	return c
}

func subscribe(tb testing.TB, c pubsub.Conn, topic string, rate float64) {
	tb.Helper()
	if err := c.Subscribe(context.Background(), pubsub.SubscribeRequest{Topic: topic, Rate: rate}); err != nil {
		tb.Fatalf("Subscribe(%q, %v) = %v", topic, rate, err)
	}
}

func publish(tb testing.TB, c pubsub.Conn, req pubsub.PublishRequest) pubsub.Message {
	tb.Helper()
	if req.Payload == nil {
		req.Payload = []byte(`{"n":1}`)
	}
	m, err := c.Publish(context.Background(), req)
	if err != nil {
		tb.Fatalf("Publish(%q) = %v", req.Topic, err)
	}
	return m
}

// payload returns the JSON payload {"n":n}.
func payload(n int) []byte { return fmt.Appendf(nil, `{"n":%d}`, n) }

// received drains the messages waiting in c's queue: those in its channel
// and, when c is a hub connection, those its backlog still holds. It waits
// only for the backlog's hand-over, at most waitTimeout.
func received(c pubsub.Conn) []*pubsub.Message {
	var ms []*pubsub.Message
	hc, _ := c.(*conn)
	deadline := time.Now().Add(waitTimeout)
	for {
		select {
		case m := <-c.Messages():
			ms = append(ms, m)
			continue
		default:
		}
		if hc == nil || !hc.pumping() || time.Now().After(deadline) {
			return ms
		}
		select {
		case m := <-c.Messages():
			ms = append(ms, m)
		case <-time.After(time.Millisecond): // the pump is between messages or ending
		}
	}
}

// numbers returns the n of each {"n":n} payload in ms.
func numbers(tb testing.TB, ms []*pubsub.Message) []int {
	tb.Helper()
	ns := make([]int, 0, len(ms))
	for _, m := range ms {
		var p struct{ N int }
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			tb.Fatalf("payload %s: %v", m.Payload, err)
		}
		ns = append(ns, p.N)
	}
	return ns
}

// wantCode fails tb unless err is a *pubsub.Error with code want.
func wantCode(tb testing.TB, what string, err error, want pubsub.Code) {
	tb.Helper()
	var perr *pubsub.Error
	if !errors.As(err, &perr) || perr.Code != want {
		tb.Errorf("%s = %v, want a %s *pubsub.Error", what, err, want)
	}
}

// seq returns from, from+1, …, to-1.
func seq(from, to int) []int {
	s := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// waitFor polls cond until it holds; it fails the test, naming what it
// waited for, after waitTimeout.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up waiting for %s after %v", what, waitTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}
