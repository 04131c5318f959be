package redis

import (
	"context"
	_ "embed"
	"strconv"
	"time"
)

var (
	//go:embed lua/rate.lua
	rateLua    string
	rateScript = newScript(rateLua)
)

// RateWindow caps events per key over a rolling minute for every hub on
// one Redis, with the semantics of the hub's own per-minute caps: at most
// limit events in any minute, counted in one-second buckets, without the
// double burst a fixed minute lets through at its boundary. Each key is
// one hash of at most 60 fields (prefix:rate:{key}) that expires a minute
// after its last event, on the shard of its own hash tag.
//
// The caller passes the time, so that every hub counts on the same clock
// as far as their clocks agree (run NTP), and tests can drive it.
//
// Get one with [Client.RateWindow]; the zero value is not usable. A
// RateWindow is safe for concurrent use.
type RateWindow struct {
	c *Client
}

// RateWindow returns the cluster-wide rate windows of c.
func (c *Client) RateWindow() *RateWindow { return &RateWindow{c: c} }

// Allow records an event for key at now if fewer than limit events of key
// lie in the minute before now, across every hub, and reports true.
// Otherwise it records nothing and returns false and how long after now
// the oldest of those events leaves the window. A limit of zero or less
// allows nothing. It fails only when Redis does (NETWORK_ERROR while
// unreachable): the caller decides whether to fail open or closed.
func (w *RateWindow) Allow(ctx context.Context, key string, limit int, now time.Time) (bool, time.Duration, error) {
	sec := now.Unix()
	vals, err := rateScript.Exec(ctx, w.c.rc, []string{w.c.prefix + ":rate:{" + key + "}"},
		[]string{strconv.FormatInt(sec, 10), strconv.Itoa(limit)}).ToArray()
	if err != nil {
		return false, 0, classify(w.c.addr, "counting a rate window on", err)
	}
	if ok, _ := vals[0].AsInt64(); ok == 1 {
		return true, 0, nil
	}
	s, err := vals[1].AsInt64()
	if err != nil { // 'none': the limit allows nothing
		return false, time.Minute, nil
	}
	return false, time.Unix(s+60, 0).Sub(now), nil
}
