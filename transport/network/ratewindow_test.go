package network

import (
	"fmt"
	"testing"
	"time"
)

func TestRollingWindow(t *testing.T) {
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l publishLimiter
			for i, s := range tt.steps {
				ok, retry := l.allow("room", tt.limit, t0.Add(s.at))
				if ok != s.ok || (!ok && retry != s.retry) {
					t.Errorf("step %d at +%v: allow() = %v, %v; want %v, %v", i, s.at, ok, retry, s.ok, s.retry)
				}
			}
		})
	}
}

func TestPublishLimiterForgetsRooms(t *testing.T) {
	t.Parallel()
	var l publishLimiter
	for i := range 100 {
		l.allow(fmt.Sprint("room-", i), 10, t0)
	}
	l.allow("late", 10, t0.Add(2*time.Minute))
	if n := l.size(); n != 1 {
		t.Errorf("%d rooms remembered two minutes on, want 1", n)
	}
}
