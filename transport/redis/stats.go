package redis

import (
	"context"
	"sync/atomic"

	"github.com/redis/rueidis"
)

// Stats are a Client's counters since Open: a snapshot copied out by
// [Client.Stats]. The zero value is a Client that has sent nothing.
type Stats struct {
	// Commands counts the round trips to Redis: every command and script
	// call (a pipelined batch counts each of its commands), not counting
	// the subscription connection's pushes.
	Commands uint64
	// Errors counts those that failed for any reason but a nil answer:
	// Redis unreachable, a refused command, a script error, a full Redis.
	Errors uint64
}

// Stats returns the Client's counters. It is safe to call at any time, and
// costs two atomic loads.
func (c *Client) Stats() Stats {
	return Stats{Commands: c.counted.commands.Load(), Errors: c.counted.errors.Load()}
}

// countedClient is a rueidis.Client that counts what passes through Do and
// DoMulti, which is every command the package sends, scripts included
// (script.Exec calls Do).
type countedClient struct {
	rueidis.Client
	commands, errors atomic.Uint64
}

func (c *countedClient) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	r := c.Client.Do(ctx, cmd)
	c.commands.Add(1)
	if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
		c.errors.Add(1)
	}
	return r
}

func (c *countedClient) DoMulti(ctx context.Context, cmds ...rueidis.Completed) []rueidis.RedisResult {
	rs := c.Client.DoMulti(ctx, cmds...)
	c.commands.Add(uint64(len(cmds)))
	for _, r := range rs {
		if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
			c.errors.Add(1)
		}
	}
	return rs
}
