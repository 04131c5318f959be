package ratewindow

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/plazahq/plaza/internal/ratewindow/ratewindowtest"
)

var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

func TestAllow(t *testing.T) {
	t.Parallel()
	for _, tt := range ratewindowtest.Cases() {
		t.Run(tt.Name, func(t *testing.T) {
			var l Limiter
			for i, s := range tt.Steps {
				ok, retry := l.Allow("app", tt.Limit, t0.Add(s.At))
				if ok != s.OK || (!ok && retry != s.Retry) {
					t.Errorf("step %d at +%v: Allow() = %v, %v; want %v, %v", i, s.At, ok, retry, s.OK, s.Retry)
				}
			}
		})
	}
}

func TestAllowBeforeEpoch(t *testing.T) {
	t.Parallel()
	var l Limiter
	at := time.Unix(-30, 0)
	if ok, _ := l.Allow("k", 1, at); !ok {
		t.Fatal("first Allow() before 1970 = false")
	}
	if ok, retry := l.Allow("k", 1, at.Add(time.Second)); ok || retry != 59*time.Second {
		t.Errorf("second Allow() = %v, %v; want false, 59s", ok, retry)
	}
}

func TestKeysAreIndependent(t *testing.T) {
	t.Parallel()
	var l Limiter
	if ok, _ := l.Allow("a", 1, t0); !ok {
		t.Fatal("Allow(a) = false")
	}
	if ok, _ := l.Allow("b", 1, t0); !ok {
		t.Error("Allow(b) = false after a used its limit")
	}
	l.Forget("a")
	if ok, _ := l.Allow("a", 1, t0); !ok {
		t.Error("Allow(a) = false after Forget(a)")
	}
}

func TestForgetsIdleKeys(t *testing.T) {
	t.Parallel()
	var l Limiter
	for i := range 100 {
		l.Allow(fmt.Sprint("key-", i), 10, t0)
	}
	l.Allow("late", 10, t0.Add(2*time.Minute))
	if n := l.Len(); n != 1 {
		t.Errorf("%d keys remembered two minutes on, want 1", n)
	}
}

func TestConcurrentAllow(t *testing.T) {
	t.Parallel()
	var l Limiter
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if ok, _ := l.Allow("k", 250, t0); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 250 {
		t.Errorf("%d of 800 concurrent events allowed under a limit of 250", allowed)
	}
}
