// Package ratecap caps a stream of deliveries to a rate, keeping the newest
// messages of a burst.
//
// A Cap with rate r lets up to ceil(r) messages through at once and r per
// second after that (a token bucket from golang.org/x/time/rate). Messages
// that arrive without a token wait in a ring of ceil(r) slots; when the ring
// is full the oldest waiting message is dropped. So a burst beyond the cap
// keeps the newest second's worth of messages, the behaviour a subscriber to
// cursor positions or typing indicators wants.
//
// Every method takes the current time explicitly; the owner arms its own timer
// with [Cap.Next] and calls [Cap.Release] when it fires.
package ratecap

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// Cap is a rate cap with a hold ring. It is not safe for concurrent use; the
// owner serializes calls.
type Cap[T any] struct {
	r       float64
	lim     *rate.Limiter
	held    []T // ring
	head, n int
	dropped uint64
}

// New returns a Cap of perSecond messages per second, which must be > 0.
func New[T any](perSecond float64, now time.Time) *Cap[T] {
	c := &Cap[T]{}
	c.SetRate(perSecond, now)
	return c
}

// Rate returns the cap in messages per second.
func (c *Cap[T]) Rate() float64 { return c.r }

// SetRate changes the rate. Held messages stay held, up to the new ring size
// (the oldest go first).
func (c *Cap[T]) SetRate(perSecond float64, now time.Time) {
	burst := int(math.Ceil(perSecond))
	if burst < 1 {
		burst = 1
	}
	c.r = perSecond
	if c.lim == nil {
		c.lim = rate.NewLimiter(rate.Limit(perSecond), burst)
	} else {
		c.lim.SetLimitAt(now, rate.Limit(perSecond))
		c.lim.SetBurstAt(now, burst)
	}
	old := c.drain(nil)
	c.held = make([]T, burst)
	c.head, c.n = 0, 0
	for _, v := range old {
		c.push(v)
	}
}

// Offer presents v at now. It returns true if v may be delivered now; otherwise
// v is held (perhaps pushing out the oldest held message) for Release.
func (c *Cap[T]) Offer(now time.Time, v T) bool {
	if c.Pass(now) {
		return true
	}
	c.Hold(v)
	return false
}

// Pass is the first half of Offer: it reports whether a message that
// arrives at now may be delivered now, and if so takes its token. A message
// that may not is for Hold; an owner that hands in messages it must copy
// before keeping them copies only those.
func (c *Cap[T]) Pass(now time.Time) bool {
	return c.n == 0 && c.lim.AllowN(now, 1)
}

// Hold keeps v for Release, as Offer does when v may not go now (perhaps
// pushing out the oldest held message).
func (c *Cap[T]) Hold(v T) { c.push(v) }

func (c *Cap[T]) push(v T) {
	if c.n == len(c.held) {
		var zero T
		c.held[c.head] = zero
		c.head = (c.head + 1) % len(c.held)
		c.n--
		c.dropped++
	}
	c.held[(c.head+c.n)%len(c.held)] = v
	c.n++
}

func (c *Cap[T]) drain(dst []T) []T {
	var zero T
	for ; c.n > 0; c.n-- {
		dst = append(dst, c.held[c.head])
		c.held[c.head] = zero
		c.head = (c.head + 1) % len(c.held)
	}
	return dst
}

// Drain appends every held message to dst, oldest first, whatever the rate
// allows, and returns it. The cap's tokens are untouched.
func (c *Cap[T]) Drain(dst []T) []T { return c.drain(dst) }

// Release appends to dst the held messages that may go out at now, oldest
// first, and returns it.
func (c *Cap[T]) Release(now time.Time, dst []T) []T {
	var zero T
	for c.n > 0 && c.lim.AllowN(now, 1) {
		dst = append(dst, c.held[c.head])
		c.held[c.head] = zero
		c.head = (c.head + 1) % len(c.held)
		c.n--
	}
	return dst
}

// Next reports whether messages are held and, if so, how long after now the
// next one may be released.
func (c *Cap[T]) Next(now time.Time) (time.Duration, bool) {
	if c.n == 0 {
		return 0, false
	}
	tokens := c.lim.TokensAt(now)
	if tokens >= 1 {
		return 0, true
	}
	d := time.Duration(math.Ceil((1 - tokens) / c.r * float64(time.Second)))
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d, true
}

// Held returns how many messages wait.
func (c *Cap[T]) Held() int { return c.n }

// Dropped returns how many messages the cap has dropped since it was made.
func (c *Cap[T]) Dropped() uint64 { return c.dropped }
