package redis

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/plazahq/plaza/transport/redis/redistest"
)

// TestScriptNoScript runs a script from many goroutines on a Redis whose
// script cache is empty (after SCRIPT FLUSH and after a restart): every call
// falls back from EVALSHA to EVAL and gets the answer to its own arguments.
func TestScriptNoScript(t *testing.T) {
	c, srv := open(t, redistest.Options{})
	echo := newScript(`return ARGV[1] .. ":" .. KEYS[1]`)
	ctx := ctxT(t)

	run := func(round string) {
		t.Helper()
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 50 {
					arg := round + "-" + strconv.Itoa(g) + "-" + strconv.Itoa(i)
					got, err := echo.Exec(ctx, c.rc, []string{"k" + arg}, []string{arg}).ToString()
					if want := arg + ":k" + arg; err != nil || got != want {
						t.Errorf("Exec(%q) = %q, %v, want %q, nil", arg, got, err, want)
						return
					}
				}
			})
		}
		waitGroup(t, &wg, "the concurrent Execs of round "+round)
	}

	if err := c.rc.Do(ctx, c.rc.B().ScriptFlush().Build()).Error(); err != nil {
		t.Fatalf("SCRIPT FLUSH = %v", err)
	}
	run("flushed")
	srv.Restart()
	// The first calls after a restart may fail with a network error on the
	// dead connection; wait until the client is back.
	for {
		if err := c.rc.Do(ctx, c.rc.B().Ping().Build()).Error(); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("waiting for PING to succeed after the restart: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	run("restarted")
}

// TestScriptReadOnly checks that a read-only script runs with EVAL_RO /
// EVALSHA_RO: Redis refuses it a write.
func TestScriptReadOnly(t *testing.T) {
	c, _ := open(t, redistest.Options{})
	ctx := ctxT(t)
	read := newReadOnlyScript(`return redis.call('GET', KEYS[1])`)
	write := newReadOnlyScript(`return redis.call('SET', KEYS[1], ARGV[1])`)
	if err := c.rc.Do(ctx, c.rc.B().Set().Key("ro").Value("v").Build()).Error(); err != nil {
		t.Fatalf("SET ro = %v", err)
	}
	if got, err := read.Exec(ctx, c.rc, []string{"ro"}, nil).ToString(); err != nil || got != "v" {
		t.Errorf("read-only GET = %q, %v, want \"v\", nil", got, err)
	}
	if err := write.Exec(ctx, c.rc, []string{"ro"}, []string{"w"}).Error(); err == nil {
		t.Errorf("read-only script SET = nil error, want Redis to refuse a write")
	}
}
