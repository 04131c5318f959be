package network

import (
	"sync"
	"time"
)

// windowSeconds is the length of the publish rate window.
const windowSeconds = 60

// rollingWindow counts events over the last minute in 60 one-second buckets:
// an event at second s counts until second s+60 begins. Unlike a fixed
// minute it never lets twice the limit through around a minute boundary.
type rollingWindow struct {
	count [windowSeconds]uint32
	sec   [windowSeconds]int64 // the Unix second each bucket counts
	last  int64                // the newest second with an event
}

// total returns the events of the window that ends at second now.
func (w *rollingWindow) total(now int64) int {
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
func (w *rollingWindow) take(now time.Time, limit int) (bool, time.Duration) {
	sec := now.Unix()
	n := w.total(sec)
	if n < limit {
		i := sec % windowSeconds
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
		i := s % windowSeconds
		if w.sec[i] != s {
			continue
		}
		n -= int(w.count[i])
		if n < limit {
			return false, time.Unix(s+windowSeconds, 0).Sub(now)
		}
	}
	return false, time.Second // limit ≤ 0; not reached by callers
}

// publishLimiter holds one rolling window per room. Windows that have been
// empty for a minute are forgotten once a minute, so it holds at most the
// rooms that published in the last two minutes. It is safe for concurrent
// use.
type publishLimiter struct {
	mu        sync.Mutex
	rooms     map[string]*rollingWindow
	nextSweep int64 // Unix second
}

// allow records an HTTP publish to room at now under a cap of limit per
// rolling minute. When the cap is reached it returns false and how long
// until a publish would be allowed.
func (l *publishLimiter) allow(room string, limit int, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sec := now.Unix()
	if l.rooms == nil {
		l.rooms = make(map[string]*rollingWindow)
	}
	if sec >= l.nextSweep {
		for r, w := range l.rooms {
			if w.last <= sec-windowSeconds {
				delete(l.rooms, r)
			}
		}
		l.nextSweep = sec + windowSeconds
	}
	w := l.rooms[room]
	if w == nil {
		w = &rollingWindow{}
		for i := range w.sec {
			w.sec[i] = -windowSeconds // before any real second
		}
		l.rooms[room] = w
	}
	return w.take(now, limit)
}

// size returns how many rooms have a window, for tests.
func (l *publishLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.rooms)
}
