package redis

import (
	"testing"

	"github.com/plazahq/plaza/transport/redis/redistest"
)

// Stats count the round trips a Client makes and those that failed: a
// secret is two commands; with Redis gone, a ping is one more, failed.
func TestStats(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c := openOn(t, srv, Options{})
	before := c.Stats()
	if _, err := c.Secret(ctxT(t), "s", 8); err != nil {
		t.Fatalf("Secret = %v", err)
	}
	after := c.Stats()
	if got := after.Commands - before.Commands; got != 2 {
		t.Errorf("Secret made %d commands, want 2 (SET NX, GET)", got)
	}
	if after.Errors != before.Errors {
		t.Errorf("Errors went from %d to %d on commands that worked", before.Errors, after.Errors)
	}
	srv.Kill()
	if err := c.Ping(ctxT(t)); err == nil {
		t.Fatal("Ping with Redis killed = nil")
	}
	if got := c.Stats(); got.Errors <= after.Errors || got.Commands <= after.Commands {
		t.Errorf("after a failed Ping, Stats = %+v, want more Commands and Errors than %+v", got, after)
	}
}
