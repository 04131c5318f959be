package redis

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plazahq/plaza/transport/redis/redistest"
)

func TestMain(m *testing.M) {
	// rueidis refreshes its view of a Redis (Cluster) topology after a
	// connection error on a goroutine that first sleeps up to about a
	// second, and Close does not cut that sleep short; the goroutine ends
	// by itself when it wakes up to a closed client.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"))
}

// waitTimeout bounds every wait for something that should happen; it guards
// against deadlocks, generous enough for a loaded machine, and measures
// nothing.
const waitTimeout = 20 * time.Second

// waitGroup waits for wg; it fails the test, naming what it waited for, when
// that takes longer than waitTimeout.
func waitGroup(tb testing.TB, wg *sync.WaitGroup, what string) {
	tb.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	waitClosed(tb, done, what)
}

// waitClosed waits for done to be closed; it fails the test, naming what it
// waited for, when that takes longer than waitTimeout.
func waitClosed(tb testing.TB, done <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		tb.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
}

// ctxT returns a context that ends with the test or after waitTimeout.
func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	tb.Cleanup(cancel)
	return ctx
}

// open starts a redis-server with opts and opens a Client on it, closed
// when the test ends.
func open(tb testing.TB, opts redistest.Options) (*Client, *redistest.Server) {
	tb.Helper()
	srv := redistest.Start(tb, opts)
	return openOn(tb, srv, Options{}), srv
}

// openOn opens a Client on srv with opts (its URL set), closed when the
// test ends.
func openOn(tb testing.TB, srv *redistest.Server, opts Options) *Client {
	tb.Helper()
	opts.URL = srv.URL()
	c, err := Open(ctxT(tb), opts)
	if err != nil {
		tb.Fatalf("Open(%q) = %v", opts.URL, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
