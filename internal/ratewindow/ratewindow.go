// Package ratewindow caps events per key over a rolling minute, the way an
// HTTP API caps requests per client: "at most N per minute", without the
// double burst a fixed minute lets through around its boundary.
//
// Every call takes the time explicitly, so tests drive a [Limiter] with any
// clock. A Limiter is safe for concurrent use.
package ratewindow

import (
	"sync"
	"time"
)

// Window is the length of the rolling window.
const Window = time.Minute

const windowSeconds = int64(Window / time.Second)

// window counts events over the last minute in 60 one-second buckets: an
// event at second s counts until second s+60 begins.
type window struct {
	count [windowSeconds]uint32
	sec   [windowSeconds]int64 // the Unix second each bucket counts
	last  int64                // the newest second with an event
}

func newWindow() *window {
	w := &window{}
	for i := range w.sec {
		w.sec[i] = -windowSeconds // before any real second
	}
	return w
}

// total returns the events of the window that ends at second now.
func (w *window) total(now int64) int {
	n := 0
	for i := range w.count {
		if w.sec[i] > now-windowSeconds {
			n += int(w.count[i])
		}
	}
	return n
}

// take records an event at now if fewer than limit events lie in the window;
// otherwise it reports how long after now the oldest of them leaves it.
func (w *window) take(now time.Time, limit int) (bool, time.Duration) {
	sec := now.Unix()
	n := w.total(sec)
	if n < limit {
		i := bucket(sec)
		if w.sec[i] != sec {
			w.sec[i], w.count[i] = sec, 0
		}
		w.count[i]++
		w.last = max(w.last, sec)
		return true, 0
	}
	// Walk the window from its oldest second until enough events have
	// left it for one more to fit.
	for s := sec - windowSeconds + 1; s <= sec; s++ {
		i := bucket(s)
		if w.sec[i] != s {
			continue
		}
		n -= int(w.count[i])
		if n < limit {
			return false, time.Unix(s+windowSeconds, 0).Sub(now)
		}
	}
	return false, Window // limit ≤ 0
}

func bucket(sec int64) int64 {
	i := sec % windowSeconds
	if i < 0 {
		i += windowSeconds
	}
	return i
}

// Limiter holds one rolling window per key. Windows that have been empty
// for a minute are forgotten once a minute, so a Limiter holds at most the
// keys that had events in the last two minutes.
//
// The zero value is a Limiter with no events. It is safe for concurrent use.
type Limiter struct {
	mu        sync.Mutex
	keys      map[string]*window
	nextSweep int64 // Unix second
}

// Allow records an event for key at now if fewer than limit events of key
// lie in the minute before now, and reports true. Otherwise it records
// nothing and returns false and how long after now the oldest of those
// events leaves the window, when one more would fit. A limit of zero or less
// allows nothing.
func (l *Limiter) Allow(key string, limit int, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sec := now.Unix()
	if l.keys == nil {
		l.keys = make(map[string]*window)
	}
	if sec >= l.nextSweep {
		for k, w := range l.keys {
			if w.last <= sec-windowSeconds {
				delete(l.keys, k)
			}
		}
		l.nextSweep = sec + windowSeconds
	}
	w := l.keys[key]
	if w == nil {
		w = newWindow()
		l.keys[key] = w
	}
	return w.take(now, limit)
}

// Forget drops the window of key, as if it had no events.
func (l *Limiter) Forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.keys, key)
}

// Len returns how many keys have a window.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
