package ratewindow

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

func TestAllow(t *testing.T) {
	t.Parallel()
	type step struct {
		at    time.Duration // after t0
		ok    bool
		retry time.Duration // when refused
	}
	tests := []struct {
		name  string
		limit int
		steps []step
	}{
		{"limit one", 1, []step{
			{0, true, 0}, {time.Second, false, 59 * time.Second}, {59*time.Second + 999*time.Millisecond, false, time.Millisecond},
			{60 * time.Second, true, 0},
		}},
		{"spread out", 3, []step{
			{0, true, 0}, {10 * time.Second, true, 0}, {20 * time.Second, true, 0},
			{30 * time.Second, false, 30 * time.Second}, {60 * time.Second, true, 0},
			{65 * time.Second, false, 5 * time.Second}, {70 * time.Second, true, 0},
		}},
		{"no double burst at a minute boundary", 2, []step{
			{59 * time.Second, true, 0}, {59 * time.Second, true, 0},
			{61 * time.Second, false, 58 * time.Second}, {119 * time.Second, true, 0},
		}},
		{"a long pause empties the window", 2, []step{
			{0, true, 0}, {0, true, 0}, {time.Hour, true, 0}, {time.Hour, true, 0}, {time.Hour, false, time.Minute},
		}},
		{"zero limit allows nothing", 0, []step{
			{0, false, time.Minute},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l Limiter
			for i, s := range tt.steps {
				ok, retry := l.Allow("app", tt.limit, t0.Add(s.at))
				if ok != s.ok || (!ok && retry != s.retry) {
					t.Errorf("step %d at +%v: Allow() = %v, %v; want %v, %v", i, s.at, ok, retry, s.ok, s.retry)
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
