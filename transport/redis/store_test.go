package redis

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/plazahq/plaza/history"
	"github.com/plazahq/plaza/history/historytest"
	"github.com/plazahq/plaza/transport/redis/internal/redistest"
)

func TestStore(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	var n atomic.Int64
	historytest.Run(t, func(t *testing.T, opts history.Options) history.Store {
		// Each subtest gets a key space of its own on the one server.
		c := openOn(t, srv, Options{Prefix: fmt.Sprintf("t%d", n.Add(1))})
		s := c.Store(StoreOptions{Retention: opts})
		t.Cleanup(func() { s.Close() })
		return s
	})
}
