package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"

	"github.com/redis/rueidis"
)

// script is a Lua script run with EVALSHA, and with EVAL when Redis answers
// NOSCRIPT (its script cache is empty after a restart or SCRIPT FLUSH).
//
// It replaces rueidis.Lua, whose commands come from rueidis's command pool
// and go back to it when Do returns with Redis's answer. After a Redis
// restart, the background writer of a connection can still be reading such
// a command (the EVAL sent after NOSCRIPT) when Do recycles it, and the next
// command built from the pool overwrites it: a data race, and possibly a
// garbled command on the wire. Every command built here is pinned, so the
// client never recycles it; the garbage collector frees it once nothing
// holds it.
//
// A script is immutable and safe for concurrent use. Its zero value is not
// usable; make one with newScript or newReadOnlyScript.
type script struct {
	src      string
	sha1     string
	readOnly bool
}

// newScript returns a script that runs with EVALSHA / EVAL.
func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, sha1: hex.EncodeToString(sum[:])}
}

// newReadOnlyScript returns a script that runs with EVALSHA_RO / EVAL_RO,
// which Redis refuses to run if the script writes.
func newReadOnlyScript(src string) *script {
	s := newScript(src)
	s.readOnly = true
	return s
}

// Exec runs the script on c with keys and args: EVALSHA first, then EVAL,
// built afresh, if Redis does not know the script. Cross-slot keys are
// refused on a cluster client.
func (s *script) Exec(ctx context.Context, c rueidis.Client, keys, args []string) rueidis.RedisResult {
	res := c.Do(ctx, s.evalsha(c, keys, args))
	if err, ok := rueidis.IsRedisErr(res.Error()); ok && err.IsNoScript() {
		res = c.Do(ctx, s.eval(c, keys, args))
	}
	return res
}

func (s *script) evalsha(c rueidis.Client, keys, args []string) rueidis.Completed {
	n := int64(len(keys))
	if s.readOnly {
		return c.B().EvalshaRo().Sha1(s.sha1).Numkeys(n).Key(keys...).Arg(args...).Build().Pin()
	}
	return c.B().Evalsha().Sha1(s.sha1).Numkeys(n).Key(keys...).Arg(args...).Build().Pin()
}

func (s *script) eval(c rueidis.Client, keys, args []string) rueidis.Completed {
	n := int64(len(keys))
	if s.readOnly {
		return c.B().EvalRo().Script(s.src).Numkeys(n).Key(keys...).Arg(args...).Build().Pin()
	}
	return c.B().Eval().Script(s.src).Numkeys(n).Key(keys...).Arg(args...).Build().Pin()
}
