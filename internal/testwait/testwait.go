// Package testwait bounds the waits tests make for something that should
// happen, so a deadlock fails the test with a message instead of hanging it.
package testwait

import (
	"sync"
	"testing"
	"time"
)

// Timeout bounds every wait for something that should happen: a deadlock
// guard, generous enough for a loaded machine, not a measurement.
const Timeout = 20 * time.Second

// Group waits for wg; it fails the test, naming what it waited for, when that
// takes longer than Timeout.
func Group(tb testing.TB, wg *sync.WaitGroup, what string) {
	tb.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(Timeout):
		tb.Fatalf("timed out after %v waiting for %s", Timeout, what)
	}
}
